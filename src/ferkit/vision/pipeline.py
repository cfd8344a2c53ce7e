"""Frame -> faces -> crops -> one batched model call -> `Face` values.

The one object the CLI, the video tool, the batch tool and the web app all use. A photo is
one call (`pipeline(frame)`); a video or live stream is a `Stream` (`pipeline.stream()`),
which adds tracking and smoothing on top of the same detection and classification.
"""

from __future__ import annotations

import numpy as np

from ferkit.errors import FerkitError
from ferkit.media.images import MAX_PIXELS
from ferkit.model.recognizer import FacialExpressionModel
from ferkit.vision.align import CROPS, face_crop
from ferkit.vision.detections import Detections
from ferkit.vision.detectors import Detector, make_detector
from ferkit.vision.face import MIN_DETECTION, Face
from ferkit.vision.stream import Stream


class Pipeline:
    """A model and a detector; safe to share between threads (the web app serves many at once).

    `detector` is a `--detector` name (centerface, haar, none) or a detector object; `crop`
    is how a face becomes the model's input: the box made square with a 5% margin (default,
    the best measured), aligned to FER2013's framing by its landmarks, or the bare box.
    `min_detection`: faces the detector rates lower are dropped (0 keeps all it returns).
    """

    def __init__(
        self,
        model: FacialExpressionModel | None = None,
        detector: Detector | str = "centerface",
        crop: str = "square",
        min_face: float | None = None,
        min_detection: float = MIN_DETECTION,
    ):
        if crop not in CROPS:
            raise FerkitError(f"unknown crop '{crop}': choose one of {', '.join(CROPS)}")
        if not 0 <= min_detection <= 1:
            raise FerkitError(f"--min-detection must be from 0 to 1, got {min_detection}")
        self.min_detection = min_detection
        self.model = model or FacialExpressionModel.load()
        self.detector = make_detector(detector, min_face) if isinstance(detector, str) else detector
        self.crop = crop

    def __call__(self, frame: np.ndarray) -> list[Face]:
        """Every face in one photo, numbered left to right."""
        self.check(frame)
        faces = self.classify(frame, self.find(frame))
        faces.sort(key=lambda f: (f.box[0], f.box[1]))
        return [f.with_(face_id=i + 1) for i, f in enumerate(faces)]

    def find(self, frame: np.ndarray) -> Detections:
        """The faces of one photo: a second, finer look when the first finds none (a photo
        is worth it; a stream searches again a few frames later anyway)."""
        found = self.confident(self.detector.detect(frame))
        return found if len(found) else self.confident(self.detector.look_again(frame))

    def confident(self, found: Detections) -> Detections:
        """The detections rated at least `min_detection`."""
        return found.select(found.scores >= self.min_detection)

    def stream(self, **options) -> Stream:
        """A stream's state (tracking, smoothing) over this pipeline; see ferkit.vision.stream."""
        return Stream(self, **options)

    def check(self, frame: np.ndarray) -> None:
        if frame.size == 0:
            raise FerkitError("empty image")
        if frame.shape[0] * frame.shape[1] > MAX_PIXELS:
            height, width = frame.shape[:2]
            raise FerkitError(f"image too large: {width}x{height} (limit {MAX_PIXELS:,} pixels)")

    def classify(self, frame: np.ndarray, found: Detections) -> list[Face]:
        """The emotion scores of every detected face, in one batched model call."""
        marks = found.landmarks if found.landmarks is not None else [None] * len(found)
        crops = [face_crop(frame, b, m, self.crop) for b, m in zip(found.boxes, marks, strict=True)]
        scores = self.model.predict_scores(crops)
        return [
            Face(tuple(int(round(v)) for v in box), s, float(d), m)
            for box, s, d, m in zip(found.boxes, scores, found.scores, marks, strict=True)
        ]
