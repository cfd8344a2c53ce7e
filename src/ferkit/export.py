"""Export a model folder to ONNX, so serving runs on ONNX Runtime without TensorFlow."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ferkit.files import temp_path
from ferkit.labels import IMAGE_SIZE
from ferkit.serialize import JSON_NAME, ONNX_NAME, WEIGHTS_NAME, load_keras_model


def export_onnx(folder: str | Path) -> Path:
    """Write `model.onnx` beside `model.json` (temporary name, then rename)."""
    folder = Path(folder)
    model = load_keras_model(folder / JSON_NAME, folder / WEIGHTS_NAME)
    model(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), dtype="float32"))  # export needs a built call
    tmp = temp_path(folder / ONNX_NAME)
    model.export(str(tmp), format="onnx", verbose=False)
    os.replace(tmp, folder / ONNX_NAME)
    return folder / ONNX_NAME
