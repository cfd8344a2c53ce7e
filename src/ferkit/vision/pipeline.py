"""Frame -> faces -> crops -> one batched model call -> `Face` values.

The one object the CLI, the video tool, the batch tool and the web app all use. A photo is
one call (`pipeline(frame)`); a video or live stream is a `Stream` (`pipeline.stream()`),
which adds tracking and smoothing on top of the same detection and classification.

A `Stream` is the state of one video, live camera or server stream, frame after frame.

Saved videos, the live page and the MJPEG stream all go through it, so all three get the
same stable face numbers, smoothed labels and false faces left out (ferkit.vision.tracking).
Detection follows the faces: each known face is looked for near its last box (a small,
cheap pass), and the whole frame is searched every `refresh` frames (a new face shows up
within half a second at 30 fps) or as soon as a face is lost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np

from ferkit.errors import FerkitError
from ferkit.media.images import MAX_PIXELS
from ferkit.model.recognizer import FacialExpressionModel
from ferkit.vision.align import CROPS, face_crop
from ferkit.vision.detections import Detections
from ferkit.vision.detectors import Detector, make_detector
from ferkit.vision.face import MIN_DETECTION, Face, reading_order
from ferkit.vision.tracking import Tracker


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
        """Every face in one photo, numbered in reading order (rows from the top, each left
        to right)."""
        self.check(frame)
        faces = self.classify(frame, self.find(frame))
        order = reading_order([f.box for f in faces])
        return [faces[j].with_(face_id=i + 1) for i, j in enumerate(order)]

    def find(self, frame: np.ndarray) -> Detections:
        """The faces of one photo: a second, finer look when the first finds none (a photo
        is worth it; a stream searches again a few frames later anyway)."""
        found = self.confident(self.detector.detect(frame))
        return found if len(found) else self.confident(self.detector.look_again(frame))

    def confident(self, found: Detections) -> Detections:
        """The detections rated at least `min_detection`."""
        return found.select(found.scores >= self.min_detection)

    def stream(self, **options) -> Stream:
        """A stream's state (tracking, smoothing) over this pipeline; see Stream below."""
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


class Stream:
    def __init__(
        self,
        pipeline: Pipeline,
        smooth: bool = True,
        refresh: int = 15,
        min_frames: int = 3,
        min_detection: float = 0.4,
    ):
        self.pipeline = pipeline
        self.tracker = Tracker(
            alpha=0.3 if smooth else 1.0, min_frames=min_frames, min_detection=min_detection
        )
        self.refresh = refresh
        self._found = Detections.empty()
        self._since_full = 0

    def __call__(self, frame: np.ndarray) -> list[Face]:
        """The confirmed faces in this frame, numbered and smoothed."""
        self.pipeline.check(frame)
        found = self.pipeline.confident(self.detect(frame))
        return self.tracker.update(self.pipeline.classify(frame, found))

    def detect(self, frame: np.ndarray) -> Detections:
        """Near the faces followed, or the whole frame when it is time or a face was lost."""
        detector = self.pipeline.detector
        self._since_full += 1
        if len(self._found) and self._since_full < self.refresh:
            near = detector.detect_near(frame, self._found.boxes)
            if all(len(n) for n in near):
                best = [n.select(np.array([int(np.argmax(n.scores))])) for n in near]
                self._found = Detections.merge(best)
                return self._found
        self._since_full = 0
        self._found = detector.detect(frame)
        return self._found

    def frames(
        self, frames: Iterable[tuple[int, float, np.ndarray]], every: int = 1
    ) -> Iterator[tuple[int, float, np.ndarray, list[Face]]]:
        """A saved video's (n, t, image) frames with their faces, every `every`-th frame
        classified (and the first), the others showing the last faces found.

        Frames come out a few classified frames late: a face is numbered only once its track
        is confirmed, and the frames it was seen in before that get it too, so a video and
        its tables show a face from its first frame.
        """
        window: deque = deque()  # [n, t, image, faces, update] not yet handed out
        faces: list[Face] = []
        for n, t, image in frames:
            if self.tracker.updates == 0 or n % every == 0:  # the first frame, then every N-th
                faces = self(image)
                for entry in window:
                    entry[3] = entry[3] + [f for u, f in self.tracker.late if u == entry[4]]
                oldest = self.tracker.updates - self.tracker.min_frames + 1
                while window and window[0][4] < oldest:
                    yield tuple(window.popleft()[:4])
            window.append([n, t, image, faces, self.tracker.updates])
        while window:
            yield tuple(window.popleft()[:4])
