"""ferkit: facial expression recognition on FER2013, from data to a web app.

The public API, imported on first use (so `ferkit --help` never loads OpenCV or ONNX
Runtime):

    from ferkit import Pipeline
    faces = Pipeline()(image)  # a BGR array: list of Face (box, scores, emotion, ...)
"""

from __future__ import annotations

from importlib import import_module, metadata
from typing import TYPE_CHECKING

from ferkit.labels import EMOTIONS

if TYPE_CHECKING:
    from ferkit.model.recognizer import FacialExpressionModel
    from ferkit.vision.face import Face
    from ferkit.vision.pipeline import Pipeline, Stream
    from ferkit.vision.result import ImageResult

__version__ = metadata.version("ferkit")  # pyproject.toml's, the one place it is set
_LAZY = {
    "FacialExpressionModel": "ferkit.model.recognizer",
    "Face": "ferkit.vision.face",
    "ImageResult": "ferkit.vision.result",
    "Pipeline": "ferkit.vision.pipeline",
    "Stream": "ferkit.vision.pipeline",
}
__all__ = ["EMOTIONS", "FacialExpressionModel", "Face", "ImageResult", "Pipeline", "Stream"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ferkit' has no attribute {name!r}")
