"""Crowded photos: what the labels cover, and the detection threshold that keeps false faces out.

On group photos assembled here (tests/assets.py `group_photo`: 7, 8 and 28 faces from
scikit-image's astronaut and cameraman, matplotlib's Grace Hopper and `lfw_subset`'s faces,
side by side in rows, at several sizes):
- layout: the share of every face's box covered by any label or score bars (its own
  included) and the pairs of labels/bars that overlap, computed from `overlay.layout` as
  the annotated PNGs and the server stream draw it (with a legend) and as a video draws it
  (without: every label on the picture);
- detection: for each `--min-detection` threshold, the faces kept (recall against the faces
  pasted) and the false faces per 20 of bench/detect.py's no-face pictures (as they are and
  3x larger), a photo searched as `Pipeline.find` searches it (a second look when the first
  finds nothing).

    .venv/bin/python bench/crowded.py
"""

from __future__ import annotations

import cv2
import numpy as np
import skimage.data
from common import report
from detect import NO_FACE, to_bgr
from media import group_photo

from ferkit.vision.face import DOUBTFUL, MIN_DETECTION
from ferkit.vision.overlay import clashes, layout
from ferkit.vision.pipeline import Pipeline

GROUPS = [(7, (1600, 600)), (7, (640, 360)), (8, (1200, 900)), (8, (2400, 1800))]
GROUPS += [(28, (1400, 1000)), (28, (800, 600))]
THRESHOLDS = [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]


def searched(pipe: Pipeline, image: np.ndarray):
    """The detector's two looks at a photo, unfiltered (thresholds are applied after)."""
    return pipe.detector.detect(image), pipe.detector.look_again(image)


def kept(looks, threshold: float):
    first, again = (d.select(d.scores >= threshold) for d in looks)
    return first if len(first) else again


def matched(found, truth) -> int:
    """Faces found: a box whose centre is within a third of the true face's side."""
    used, hits = set(), 0
    for x, y, w, h in truth:
        for i, (bx, by, bw, bh) in enumerate(found.boxes):
            near = np.hypot(bx + bw / 2 - x - w / 2, by + bh / 2 - y - h / 2) < max(w, h) / 3
            if i not in used and near:
                used.add(i)
                hits += 1
                break
    return hits


def main() -> None:
    pipe = Pipeline(min_detection=0.0)
    groups = [(n, size, *group_photo(n, size)) for n, size in GROUPS]
    rows = []

    looks = [searched(pipe, image) for *_, image, _ in groups]
    pictures = [to_bgr(getattr(skimage.data, n)()) for n in NO_FACE]
    pictures += [cv2.resize(p, None, fx=3, fy=3) for p in pictures]
    blank = [searched(pipe, p) for p in pictures]
    total = sum(n for n, *_ in groups)
    for t in THRESHOLDS:
        found = [kept(look, t) for look in looks]
        hits = sum(matched(f, g[3]) for f, g in zip(found, groups, strict=True))
        doubtful = sum(int((f.scores < DOUBTFUL).sum()) for f in found)
        false = sum(len(kept(look, t)) for look in blank)
        rows.append({
            "test": "threshold", "min_detection": t, "faces": total, "recall": hits / total,
            "doubtful": doubtful, "false_per_20": 20 * false / len(pictures),
        })  # fmt: skip
        print(rows[-1], flush=True)

    shipped = Pipeline(pipe.model, pipe.detector, min_detection=MIN_DETECTION)
    for n, size, image, _ in groups:
        faces = shipped(image)
        for legend in (True, False):
            shares, pairs = clashes(layout(image.shape, faces, legend=legend))
            rows.append({
                "test": f"layout {n} faces {size[0]}x{size[1]}",
                "drawn": "legend" if legend else "on picture", "faces": len(faces),
                "max_covered": max(shares, default=0.0), "mean_covered": float(np.mean(shares)),
                "faces_covered": sum(s > 0 for s in shares), "overlaps": pairs,
            })  # fmt: skip
            print(rows[-1], flush=True)
    columns = ["test", "min_detection", "drawn", "faces", "recall", "doubtful", "false_per_20"]
    columns += ["max_covered", "mean_covered", "faces_covered", "overlaps"]
    report("crowded", columns, rows, {"default_min_detection": MIN_DETECTION})


if __name__ == "__main__":
    main()
