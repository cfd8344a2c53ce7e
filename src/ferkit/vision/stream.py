"""`Stream`: the state of one video, live camera or server stream, frame after frame.

Saved videos, the live page and the MJPEG stream all go through it, so all three get the
same stable face numbers, smoothed labels and false faces left out (ferkit.vision.tracking).
Detection follows the faces: each known face is looked for near its last box (a small,
cheap pass), and the whole frame is searched every `refresh` frames (a new face shows up
within half a second at 30 fps) or as soon as a face is lost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from ferkit.vision.detections import Detections
from ferkit.vision.face import Face
from ferkit.vision.tracking import Tracker

if TYPE_CHECKING:  # the pipeline makes streams: no import at run time
    from ferkit.vision.pipeline import Pipeline


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
