"""Draw faces on a frame: a numbered box, the label with its score, labelled score bars.

Text and lines are sized from the frame (and the face), so a label stays readable on a
6000 px photo shown scaled down as on a 640 px webcam frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from ferkit.face import Face
from ferkit.labels import EMOTIONS
from ferkit.preprocess import to_bgr8

# One BGR colour per emotion, so a label change is visible at a glance; the chart and the
# web pages use the same colours (`hex_colors`).
COLORS = {
    "angry": (40, 40, 220),
    "disgust": (40, 140, 40),
    "fear": (160, 60, 160),
    "happy": (40, 200, 240),
    "sad": (200, 120, 40),
    "surprise": (230, 200, 40),
    "neutral": (180, 180, 180),
}
FONT = cv2.FONT_HERSHEY_SIMPLEX


def hex_colors() -> dict[str, str]:
    """The colours as CSS/matplotlib hex strings (#rrggbb)."""
    return {k: "#{:02x}{:02x}{:02x}".format(*reversed(bgr)) for k, bgr in COLORS.items()}


def draw(frame: np.ndarray, faces: list[Face], bars: bool = True) -> np.ndarray:
    """A BGR copy of the frame with every face annotated."""
    out = to_bgr8(frame)
    out = out.copy() if out is frame else out
    # about 1/45 of the frame's long side for the label text: ~14 px at 640, ~130 px at 6000
    scale = max(out.shape[:2]) / 1100
    thick = max(1, round(2 * scale))
    for face in faces:
        x, y, w, h = face.box
        color = COLORS[face.emotion]
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thick)
        label = f"#{face.face_id} {face.emotion} {face.score:.0%}"
        _label(out, label, (x, y), scale * 0.9, color, above=True)
        if bars:
            _score_bars(out, face.scores, x, y + h + thick, max(w, int(160 * scale)), scale)
    return out


def _label(out, text, origin, font_scale, color, above) -> int:
    """A filled tag with black text; returns its height."""
    font_scale = max(0.35, font_scale)
    weight = max(1, round(font_scale * 1.5))
    (tw, th), base = cv2.getTextSize(text, FONT, font_scale, weight)
    pad = max(2, th // 4)
    x, y = origin
    top = max(0, y - th - 2 * pad) if above else y
    x = max(0, min(x, out.shape[1] - tw - 2 * pad))  # never cut at the right edge
    cv2.rectangle(out, (x, top), (x + tw + 2 * pad, top + th + 2 * pad), color, -1)
    cv2.putText(
        out, text, (x + pad, top + th + pad), FONT, font_scale, (0, 0, 0), weight, cv2.LINE_AA
    )
    return th + 2 * pad


def _score_bars(
    out: np.ndarray, scores: np.ndarray, x: int, y: int, width: int, scale: float
) -> None:
    """One bar per emotion under the box, each with its name, so the scores can be read."""
    font_scale = max(0.3, 0.45 * scale)
    (name_w, th), _ = cv2.getTextSize("surprise", FONT, font_scale, 1)
    bar_h = th + 4
    x = max(0, min(x, out.shape[1] - width))
    for i, name in enumerate(EMOTIONS):
        top = y + i * (bar_h + 1)
        if top + bar_h >= out.shape[0]:
            break
        cv2.rectangle(out, (x, top), (x + width, top + bar_h), (40, 40, 40), -1)
        bar_x = x + name_w + 6
        filled = int((width - name_w - 6) * float(scores[i]))
        cv2.rectangle(out, (bar_x, top), (bar_x + filled, top + bar_h), COLORS[name], -1)
        cv2.putText(
            out, name, (x + 3, top + th + 2), FONT, font_scale, (255, 255, 255), 1, cv2.LINE_AA
        )
