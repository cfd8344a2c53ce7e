"""Draw results on a frame: a box, the label with its score, and a small bar per emotion."""

from __future__ import annotations

import cv2
import numpy as np

from ferkit.labels import EMOTIONS
from ferkit.preprocess import to_bgr8

# One BGR colour per emotion, so a label change is visible at a glance.
COLORS = {
    "angry": (40, 40, 220),
    "disgust": (40, 140, 40),
    "fear": (160, 60, 160),
    "happy": (40, 200, 240),
    "sad": (200, 120, 40),
    "surprise": (230, 200, 40),
    "neutral": (180, 180, 180),
}


def draw(frame: np.ndarray, results: list[dict], bars: bool = True) -> np.ndarray:
    """A BGR copy of the frame with every face annotated."""
    out = to_bgr8(frame)
    out = out.copy() if out is frame else out
    scale = max(0.4, min(1.2, out.shape[1] / 900))
    for r in results:
        x, y, w, h = r["box"]
        color = COLORS.get(r["emotion"], (255, 255, 255))
        cv2.rectangle(out, (x, y), (x + w, y + h), color, max(1, int(2 * scale)))
        label = f"{r['emotion']} {r['scores'][r['emotion']]:.0%}"
        if "face_id" in r:
            label = f"#{r['face_id']} {label}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, 1)
        top = max(0, y - th - 8)
        cv2.rectangle(out, (x, top), (x + tw + 6, top + th + 8), color, -1)
        cv2.putText(
            out,
            label,
            (x + 3, top + th + 3),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6 * scale,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
        if bars:
            _score_bars(out, r["scores"], x, y + h + 4, max(w, 60), scale)
    return out


def _score_bars(out: np.ndarray, scores: dict, x: int, y: int, width: int, scale: float) -> None:
    bar_h = max(3, int(5 * scale))
    for i, name in enumerate(EMOTIONS):
        top = y + i * (bar_h + 1)
        if top + bar_h >= out.shape[0]:
            break
        cv2.rectangle(out, (x, top), (x + width, top + bar_h), (50, 50, 50), -1)
        cv2.rectangle(out, (x, top), (x + int(width * scores[name]), top + bar_h), COLORS[name], -1)
