"""Draw faces on a frame: a numbered box, the label with its score, labelled score bars.

Text and lines are sized from the frame (and the face), so a label stays readable on a
6000 px photo shown scaled down as on a 640 px webcam frame.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ferkit.errors import FerkitError
from ferkit.face import Face
from ferkit.files import write_atomic
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
    # Sized from the frame's long side (never less than for a 900 px frame), so a 640 px
    # frame shown on a 390 px phone still has ~10 px labels, and a 6000 px photo ~100 px.
    scale = max(900, *out.shape[:2]) / 1100
    thick = max(1, round(2 * scale))
    for face in faces:
        x, y, w, h = face.box
        color = COLORS[face.emotion]
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thick)
        label = f"#{face.face_id} {face.emotion} {face.score:.0%}"
        _label(out, label, (x, y), scale * 0.9, color)
        if bars:
            _score_bars(out, face.scores, face.box, thick, scale)
    return out


def write_annotated(path: Path, image: np.ndarray, faces: list[Face]) -> None:
    """`image` with its faces drawn, as a PNG at `path` (written whole or not at all)."""
    ok, png = cv2.imencode(".png", draw(image, faces))
    if not ok:
        raise FerkitError(f"{path}: could not encode the annotated image")
    write_atomic(path, png.tobytes())


def _label(out, text, origin, font_scale, color) -> None:
    """A filled tag with black text above `origin` (below the top edge when there is no room)."""
    weight = max(1, round(font_scale * 1.5))
    (tw, th), base = cv2.getTextSize(text, FONT, font_scale, weight)
    pad = max(2, th // 4)
    x, y = origin
    top = max(0, y - th - base - 2 * pad)
    x = max(0, min(x, out.shape[1] - tw - 2 * pad))  # never cut at the right edge
    cv2.rectangle(out, (x, top), (x + tw + 2 * pad, top + th + base + 2 * pad), color, -1)
    cv2.putText(
        out, text, (x + pad, top + th + pad), FONT, font_scale, (0, 0, 0), weight, cv2.LINE_AA
    )


def _score_bars(out: np.ndarray, scores: np.ndarray, box, gap: int, scale: float) -> None:
    """One labelled bar per emotion: under the box, or beside it when the frame ends there."""
    font_scale = 0.5 * scale
    weight = max(1, round(font_scale * 1.5))
    (name_w, th), base = cv2.getTextSize("surprise", FONT, font_scale, weight)
    row = th + base + 4
    width = max(box[2], name_w * 3)
    x, y = _bars_place(out.shape, box, width, len(EMOTIONS) * (row + 1), gap)
    for i, name in enumerate(EMOTIONS):
        top = y + i * (row + 1)
        cv2.rectangle(out, (x, top), (x + width, top + row), (40, 40, 40), -1)
        bar_x = x + name_w + 6
        filled = int((width - name_w - 6) * float(scores[i]))
        cv2.rectangle(out, (bar_x, top), (bar_x + filled, top + row), COLORS[name], -1)
        cv2.putText(
            out, name, (x + 3, top + th + 2), FONT, font_scale, (255, 255, 255), weight, cv2.LINE_AA
        )


def _bars_place(shape, box, width: int, height: int, gap: int) -> tuple[int, int]:
    """Top-left corner for the bars: below the box, else right of it, else left, else as low
    as they fit; never outside the frame, so no row is cut."""
    frame_h, frame_w = shape[:2]
    x, y, w, h = box
    beside_y = int(np.clip(y, 0, max(0, frame_h - height)))
    if y + h + gap + height <= frame_h:
        return int(np.clip(x, 0, max(0, frame_w - width))), y + h + gap
    if x + w + gap + width <= frame_w:
        return x + w + gap, beside_y
    if x - gap - width >= 0:
        return x - gap - width, beside_y
    return int(np.clip(x, 0, max(0, frame_w - width))), max(0, frame_h - height)
