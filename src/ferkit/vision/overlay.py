"""Draw faces on a frame: a numbered box, the label with its score, labelled score bars.

Text and lines are sized from the frame (and the face), so a label stays readable on a
6000 px photo shown scaled down as on a 640 px webcam frame. A crowded picture (more than
CROWDED faces, or labels that cannot all go beside their faces) keeps only the numbers on
the picture and lists every face below it, in a legend strip (`legend=True`), so no label
ever covers a face. A doubtful face (ferkit.vision.face.DOUBTFUL) has a dashed box and a "?".
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
CROWDED = 4  # more faces than this: numbers on the picture, labels and scores in a list


Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 in the frame's pixels


@dataclass
class Placement:
    """Where one face's label and score bars go. `text` is the whole label, or only the
    face's number when nothing else fits without covering another face or label; `bars` is
    where the score bars go, None when they would cover another face (the scores are in the
    CSV and JSON all the same); `listed`: the label and scores are in the legend instead."""

    face: Face
    text: str
    label: Rect
    bars: Rect | None
    listed: bool = False


def label_text(face: Face) -> str:
    """ "#3 happy 81%", with a "?" when the face is doubtful (the web pages write the same)."""
    return f"#{face.face_id} {face.emotion} {face.score:.0%}{'?' if face.doubtful else ''}"


def draw(
    frame: np.ndarray, faces: list[Face], bars: bool = True, legend: bool = False
) -> np.ndarray:
    """A BGR copy of the frame with every face annotated (see `layout`); with `legend`, a
    crowded picture comes back taller, its faces listed in a strip below it (a photo, a
    server stream), else every label is on the picture (a video keeps its frame size)."""
    out = to_bgr8(frame)
    out = out.copy() if out is frame else out
    scale = _scale(out.shape)
    thick = max(1, round(2 * scale))
    places = layout(out.shape, faces, bars, legend)
    for place in places:
        color = COLORS[place.face.emotion]
        _box(out, _rect(place.face.box), color, thick, place.face.doubtful)
        _label(out, place.text, place.label, scale * 0.9, color)
        if place.bars is not None:
            _score_bars(out, place.face.scores, place.bars)
    listed = [p.face for p in places if p.listed]
    return np.vstack([out, _legend(out.shape[1], listed, scale)]) if listed else out


def layout(
    shape: tuple[int, ...], faces: list[Face], bars: bool = True, legend: bool = False
) -> list[Placement]:
    """Labels and score bars that cover no other face and no earlier label or bars.

    A whole label goes above its box, else below it; else its number alone goes beside it
    (`_number`), where it covers no face if it can; failing that (without `legend` only: a
    video frame has nowhere else) the whole label goes inside the box's top, else the number
    where it covers the least of any face. The bars go
    below the box, else right of it, else left, else as low as they fit, and only where they
    cover no face, no label and no bars.

    With `legend` nothing covers a face, not even its own: beyond CROWDED faces, or as soon
    as one label has no room, every face gets only its number (`listed`: its label and
    scores go to the legend below the picture). On group photos that covers no face at all
    (bench/crowded.py).
    """
    if legend and len(faces) > CROWDED:
        return _numbers(shape, faces)
    frame_h, frame_w = shape[:2]
    scale = _scale(shape)
    boxes = [_rect(f.box) for f in faces]
    taken: list[Rect] = []
    placements = []
    for i, face in enumerate(faces):
        x, y, w, h = face.box
        others = boxes[:i] + boxes[i + 1 :] + taken  # above or below never meet its own box
        text = label_text(face)
        tw, th = _label_size(text, scale * 0.9)
        left = max(0, min(x, frame_w - tw))  # never cut at the right edge
        tags = [(left, top, left + tw, top + th) for top in (y - th, y + h)]
        label = next((r for r in tags if _free(r, others, frame_w, frame_h)), None)
        if label is None and legend:
            return _numbers(shape, faces)
        if label is None:  # a video frame: its number beside it, else the label on its top
            text, label = _number(shape, face, boxes, taken)
            inside = (left, y, left + tw, y + th)
            clear = _covered_area(label, boxes) == 0 and _free(label, taken, frame_w, frame_h)
            if not clear and _free(inside, others, frame_w, frame_h):
                text, label = label_text(face), inside
        taken.append(label)
        spot = None
        if bars:
            bw, bh = _bars_size(face.box, scale)
            spots = [(cx, cy, cx + bw, cy + bh) for cx, cy in _bars_spots(shape, face.box, bw, bh)]
            spot = next((r for r in spots if _free(r, boxes + taken, frame_w, frame_h)), None)
            if spot is not None:
                taken.append(spot)
        placements.append(Placement(face, text, label, spot))
    return placements


def _numbers(shape, faces: list[Face]) -> list[Placement]:
    """Every face with only its number on the picture, its label listed in the legend."""
    boxes = [_rect(f.box) for f in faces]
    taken: list[Rect] = []
    placements = []
    for face in faces:
        text, label = _number(shape, face, boxes, taken)
        taken.append(label)
        placements.append(Placement(face, text, label, None, listed=True))
    return placements


def _number(shape, face: Face, boxes: list[Rect], taken: list[Rect]) -> tuple[str, Rect]:
    """A face's number ("#3", "#3?" when doubtful) beside its box: above or below it
    (centred, or at either edge), left or right of it, or a row further out: the first place
    that covers no face and nothing in `taken`, else the one covering the least face, then
    the fewest of `taken`."""
    frame_h, frame_w = shape[:2]
    x, y, w, h = face.box
    text = f"#{face.face_id}{'?' if face.doubtful else ''}"
    tw, th = _label_size(text, _scale(shape) * 0.9)
    mid = x + (w - tw) // 2
    xs = [int(np.clip(v, 0, max(0, frame_w - tw))) for v in (mid, x, x + w - tw)]
    corners = [(cx, cy) for cy in (y - th, y + h) for cx in xs]
    corners += [(x - tw, y + (h - th) // 2), (x + w, y + (h - th) // 2)]
    corners += [(xs[0], y - 2 * th), (xs[0], y + h + th)]
    rects = [
        (cx, cy, cx + tw, cy + th)
        for cx, cy in corners
        if cx >= 0 and cy >= 0 and cx + tw <= frame_w and cy + th <= frame_h
    ]
    top = max(0, min(y, frame_h - th))
    rects = rects or [(xs[1], top, xs[1] + tw, top + th)]  # a frame smaller than the number
    cost = lambda r: (_covered_area(r, boxes), sum(_overlap(r, t) for t in taken))  # noqa: E731
    return text, min(rects, key=cost)


def _free(rect: Rect, taken: list[Rect], frame_w: int, frame_h: int) -> bool:
    inside = rect[0] >= 0 and rect[1] >= 0 and rect[2] <= frame_w and rect[3] <= frame_h
    return inside and not any(_overlap(rect, o) for o in taken)


def _covered_area(rect: Rect, boxes: list[Rect]) -> int:
    return sum(
        max(0, min(rect[2], b[2]) - max(rect[0], b[0]))
        * max(0, min(rect[3], b[3]) - max(rect[1], b[1]))
        for b in boxes
    )


def clashes(placements: list[Placement]) -> tuple[list[float], int]:
    """What a layout covers: the share of each face's box under any label or bars (its own
    included), and how many pairs of labels and bars overlap. Both 0 for a readable picture."""
    drawn = [p.label for p in placements] + [p.bars for p in placements if p.bars is not None]
    shares = []
    for place in placements:
        x0, y0, x1, y1 = _rect(place.face.box)
        mask = np.zeros((max(1, y1 - y0), max(1, x1 - x0)), bool)
        for r in drawn:
            mask[max(0, r[1] - y0) : max(0, r[3] - y0), max(0, r[0] - x0) : max(0, r[2] - x0)] = 1
        shares.append(float(mask.mean()))
    pairs = sum(_overlap(a, b) for i, a in enumerate(drawn) for b in drawn[i + 1 :])
    return shares, pairs


def _floor2(value: float) -> str:
    """0.497 as "0.49": rounded down, so a doubtful face never reads as 0.50."""
    return f"{np.floor(value * 100) / 100:.2f}"


def _box(out: np.ndarray, rect: Rect, color, thick: int, dashed: bool) -> None:
    """A face's box; dashed for a doubtful face."""
    x0, y0, x1, y1 = rect
    if not dashed:
        cv2.rectangle(out, (x0, y0), (x1, y1), color, thick)
        return
    dash = max(4, 4 * thick)
    for a, b in (
        ((x0, y0), (x1, y0)),
        ((x0, y1), (x1, y1)),
        ((x0, y0), (x0, y1)),
        ((x1, y0), (x1, y1)),
    ):
        length = max(abs(b[0] - a[0]), abs(b[1] - a[1]))
        for start in range(0, length, 2 * dash):
            t0, t1 = start / max(length, 1), min(start + dash, length) / max(length, 1)
            p0 = (round(a[0] + (b[0] - a[0]) * t0), round(a[1] + (b[1] - a[1]) * t0))
            p1 = (round(a[0] + (b[0] - a[0]) * t1), round(a[1] + (b[1] - a[1]) * t1))
            cv2.line(out, p0, p1, color, thick)


def _legend(width: int, faces: list[Face], scale: float) -> np.ndarray:
    """A strip `width` wide listing the faces in number order, in columns: a swatch of the
    label's colour, "#3 happy 81%", the detection confidence ("doubtful" below DOUBTFUL) and
    the seven scores as one bar split in the emotions' colours."""
    faces = sorted(faces, key=lambda f: f.face_id)
    texts = [
        f"{label_text(f)}  detected {_floor2(f.detection)}{' doubtful' if f.doubtful else ''}"
        for f in faces
    ]
    font_scale = 0.55 * scale
    for _ in range(2):  # a second pass smaller when one column is wider than the picture
        weight, _, th, base = _text(texts[0], font_scale)
        text_w = max(_text(t, font_scale)[1] for t in texts)
        pad, row = max(3, th // 2), th + base + max(6, th)
        bar_w = max(40, 5 * th)
        col_w = pad + th + pad + text_w + pad + bar_w + 2 * pad
        font_scale *= min(1.0, width / col_w)
    cols = max(1, width // col_w)
    rows = -(-len(faces) // cols)
    strip = np.full((rows * row + 2 * pad, width, 3), 255, np.uint8)
    for i, (face, text) in enumerate(zip(faces, texts, strict=True)):
        r, c = i % rows, i // rows  # down each column first: numbers read top to bottom
        x, y = pad + c * col_w, pad + r * row
        mid = y + row // 2
        cv2.rectangle(strip, (x, mid - th // 2), (x + th, mid + th // 2), COLORS[face.emotion], -1)
        cv2.putText(
            strip,
            text,
            (x + th + pad, mid + th // 2),
            FONT,
            font_scale,
            (0, 0, 0),
            weight,
            cv2.LINE_AA,
        )
        bx = x + th + 2 * pad + text_w
        for name, p in zip(EMOTIONS, face.scores, strict=True):
            step = int(round(bar_w * float(p)))
            cv2.rectangle(strip, (bx, mid - th // 2), (bx + step, mid + th // 2), COLORS[name], -1)
            bx += step
    return strip


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
    """`image` with its faces drawn (a crowded one with its legend below), as a PNG at
    `path` (written whole or not at all)."""
    ok, png = cv2.imencode(".png", draw(image, faces, legend=True))
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
