"""Draw faces on a frame: a numbered box, the label with its score, labelled score bars.

Text and lines are sized from the frame (and the face), so a label stays readable on a
6000 px photo shown scaled down as on a 640 px webcam frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ferkit.errors import FerkitError
from ferkit.files import write_atomic
from ferkit.labels import COLORS, EMOTIONS
from ferkit.model.preprocess import to_bgr8
from ferkit.vision.face import Face

FONT = cv2.FONT_HERSHEY_SIMPLEX


Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 in the frame's pixels


@dataclass
class Placement:
    """Where one face's label and score bars go. `text` is the whole label, or only the
    face's number when nothing else fits without covering another face or label; `bars` is
    where the score bars go, None when they would cover another face (the scores are in the
    CSV and JSON all the same)."""

    face: Face
    text: str
    label: Rect
    bars: Rect | None


def draw(frame: np.ndarray, faces: list[Face], bars: bool = True) -> np.ndarray:
    """A BGR copy of the frame with every face annotated (see `layout`)."""
    out = to_bgr8(frame)
    out = out.copy() if out is frame else out
    scale = _scale(out.shape)
    thick = max(1, round(2 * scale))
    for place in layout(out.shape, faces, bars):
        x, y, w, h = place.face.box
        color = COLORS[place.face.emotion]
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thick)
        _label(out, place.text, place.label, scale * 0.9, color)
        if place.bars is not None:
            _score_bars(out, place.face.scores, place.bars)
    return out


def layout(shape: tuple[int, ...], faces: list[Face], bars: bool = True) -> list[Placement]:
    """Labels and score bars that cover no other face and no earlier label or bars.

    A label goes above its box, else below it, else inside its top; failing all three with
    the whole text, the number alone is tried the same way (and drawn above the box when even
    that finds no room). The bars go below the box, else right of it, else left, else as low
    as they fit, and are left out when every place covers something.
    """
    frame_h, frame_w = shape[:2]
    scale = _scale(shape)
    boxes = [_rect(f.box) for f in faces]
    taken: list[Rect] = []
    placements = []
    for i, face in enumerate(faces):
        x, y, w, h = face.box
        others = boxes[:i] + boxes[i + 1 :] + taken

        def free(rect: Rect, others=others) -> bool:
            inside = rect[0] >= 0 and rect[1] >= 0 and rect[2] <= frame_w and rect[3] <= frame_h
            return inside and not any(_overlap(rect, o) for o in others)

        number = f"#{face.face_id}"
        tags = []
        for text in (f"{number} {face.emotion} {face.score:.0%}", number):
            tw, th = _label_size(text, scale * 0.9)
            left = max(0, min(x, frame_w - tw))  # never cut at the right edge
            tops = (y - th, y + h, y, max(0, y - th))  # the last: the fallback, above or at 0
            tags += [(text, (left, top, left + tw, top + th)) for top in tops]
        text, label = next((tag for tag in tags[:-1] if free(tag[1])), tags[-1])
        taken.append(label)
        spot = None
        if bars:
            bw, bh = _bars_size(face.box, scale)
            spots = [(cx, cy, cx + bw, cy + bh) for cx, cy in _bars_spots(shape, face.box, bw, bh)]
            spot = next((r for r in spots if free(r)), None)
            if spot is not None:
                taken.append(spot)
        placements.append(Placement(face, text, label, spot))
    return placements


def _scale(shape: tuple[int, ...]) -> float:
    """Text and lines sized from the frame's long side (never less than for a 900 px frame),
    so a 640 px frame shown on a 390 px phone still has ~10 px labels, and a 6000 px photo
    ~100 px."""
    return max(900, *shape[:2]) / 1100


def _rect(box) -> Rect:
    x, y, w, h = box
    return (x, y, x + w, y + h)


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def write_annotated(path: Path, image: np.ndarray, faces: list[Face]) -> None:
    """`image` with its faces drawn, as a PNG at `path` (written whole or not at all)."""
    ok, png = cv2.imencode(".png", draw(image, faces))
    if not ok:
        raise FerkitError(f"{path}: could not encode the annotated image")
    write_atomic(path, png.tobytes())


def _text(text: str, font_scale: float) -> tuple[int, int, int, int]:
    """Stroke weight, width, height and baseline of `text` at `font_scale`: what both the
    layout (sizes) and the drawing (positions) need, measured one way."""
    weight = max(1, round(font_scale * 1.5))
    (width, height), base = cv2.getTextSize(text, FONT, font_scale, weight)
    return weight, width, height, base


def _label_size(text: str, font_scale: float) -> tuple[int, int]:
    """The filled tag's width and height for `text`."""
    _, tw, th, base = _text(text, font_scale)
    pad = max(2, th // 4)
    return tw + 2 * pad, th + base + 2 * pad


def _label(out, text: str, rect: Rect, font_scale: float, color) -> None:
    """A filled tag with black text filling `rect` (from `_label_size`)."""
    weight, _, th, _ = _text(text, font_scale)
    pad = max(2, th // 4)
    x0, y0, x1, y1 = rect
    cv2.rectangle(out, (x0, y0), (x1, y1), color, -1)
    cv2.putText(
        out, text, (x0 + pad, y0 + th + pad), FONT, font_scale, (0, 0, 0), weight, cv2.LINE_AA
    )


def _bar_rows(scale: float) -> tuple[float, int, int, int, int]:
    """Font scale, weight, name column width, text height and row height of the bars."""
    font_scale = 0.5 * scale
    weight, name_w, th, base = _text("surprise", font_scale)
    return font_scale, weight, name_w, th, th + base + 4


def _bars_size(box, scale: float) -> tuple[int, int]:
    """Width and height of the seven labelled bars for a face's box."""
    _, _, name_w, _, row = _bar_rows(scale)
    return max(box[2], name_w * 3), len(EMOTIONS) * (row + 1)


def _score_bars(out: np.ndarray, scores: np.ndarray, rect: Rect) -> None:
    """One labelled bar per emotion, in `rect` (from `_bars_size`)."""
    font_scale, weight, name_w, th, row = _bar_rows(_scale(out.shape))
    x, y, width = rect[0], rect[1], rect[2] - rect[0]
    for i, name in enumerate(EMOTIONS):
        top = y + i * (row + 1)
        cv2.rectangle(out, (x, top), (x + width, top + row), (40, 40, 40), -1)
        bar_x = x + name_w + 6
        filled = int((width - name_w - 6) * float(scores[i]))
        cv2.rectangle(out, (bar_x, top), (bar_x + filled, top + row), COLORS[name], -1)
        cv2.putText(
            out, name, (x + 3, top + th + 2), FONT, font_scale, (255, 255, 255), weight, cv2.LINE_AA
        )


def _bars_spots(shape, box, width: int, height: int) -> list[tuple[int, int]]:
    """Top-left corners for the bars, best first: below the box, right of it, left of it, as
    low as they fit; those that leave the frame are dropped (no row is ever cut)."""
    frame_h, frame_w = shape[:2]
    x, y, w, h = box
    gap = max(1, round(2 * _scale(shape)))
    beside_y = int(np.clip(y, 0, max(0, frame_h - height)))
    spots = [
        (int(np.clip(x, 0, max(0, frame_w - width))), y + h + gap),
        (x + w + gap, beside_y),
        (x - gap - width, beside_y),
        (int(np.clip(x, 0, max(0, frame_w - width))), max(0, frame_h - height)),
    ]
    return [
        (sx, sy) for sx, sy in spots if sx >= 0 and sx + width <= frame_w and sy + height <= frame_h
    ]
