"""Frame -> faces -> crops -> one batched model call -> results.

The one function the CLI, the video tool and the web app all call. A result per face:
``{"box": [x, y, w, h], "emotion": "happy", "scores": {7 labels: probability}}``.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from ferkit.errors import FerkitError
from ferkit.faces import Detector, HaarDetector, TrackingDetector, crop, detect_faces
from ferkit.images import MAX_PIXELS
from ferkit.labels import EMOTIONS
from ferkit.recognizer import FacialExpressionModel


class Pipeline:
    """A model and a detector, safe to share between threads (the web app serves many at once).

    The model is thread-safe by itself. Without a given detector each thread gets its own
    Haar detector, so requests detect in parallel; a given detector (which may keep state,
    like a tracking one) is used by one thread at a time.
    """

    def __init__(
        self,
        model: FacialExpressionModel | None = None,
        detector: Detector | None = None,
        margin: float = 0.0,
    ):
        self.model = model or FacialExpressionModel.load()
        self.margin = margin
        self._shared = detector
        self._lock = threading.Lock() if detector is not None else None
        self._local = threading.local()

    @property
    def detector(self) -> Detector:
        if self._shared is not None:
            return self._shared
        if not hasattr(self._local, "detector"):
            self._local.detector = HaarDetector()
        return self._local.detector

    def __call__(self, frame: np.ndarray) -> list[dict]:
        return recognize(frame, self.model, self.detector, self.margin, self._lock)

    def for_stream(self) -> Pipeline:
        """For one video or live stream: the same model, a detector that follows the faces."""
        return Pipeline(self.model, TrackingDetector(), self.margin)


def recognize(
    frame: np.ndarray,
    model: FacialExpressionModel,
    detector: Detector,
    margin: float = 0.0,
    lock: threading.Lock | None = None,
) -> list[dict]:
    """Every face in the frame with its emotion and the 7 scores behind it."""
    if frame.size == 0:
        raise FerkitError("empty image")
    if frame.shape[0] * frame.shape[1] > MAX_PIXELS:
        raise FerkitError(
            f"image too large: {frame.shape[1]}x{frame.shape[0]} pixels (limit {MAX_PIXELS})"
        )
    with lock or contextlib.nullcontext():
        boxes = detect_faces(frame, detector)
    scores = model.predict_scores([crop(frame, b, margin) for b in boxes])
    return [result(box, s) for box, s in zip(boxes, scores, strict=True)]


def result(box, scores: np.ndarray) -> dict:
    """The JSON-ready result for one face: plain ints and rounded floats."""
    return {
        "box": [int(v) for v in box],
        "emotion": EMOTIONS[int(np.argmax(scores))],
        "scores": {name: round(float(p), 4) for name, p in zip(EMOTIONS, scores, strict=True)},
    }
