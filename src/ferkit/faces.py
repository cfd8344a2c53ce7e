"""Face detection with OpenCV: boxes (x, y, w, h) in the frame's own pixels.

Detection runs on a gray copy downscaled to at most `max_side` pixels (Haar is 3-10x
faster at 320 px than at 640 px) and boxes are mapped back. Any object with a
`detect(gray) -> np.ndarray (N, 4)` method can stand in for the Haar detector.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from ferkit.preprocess import to_gray8


class Detector(Protocol):
    def detect(self, gray: np.ndarray) -> np.ndarray: ...


class HaarDetector:
    """OpenCV's frontal-face Haar cascade, shipped inside opencv-python: nothing to download."""

    def __init__(
        self,
        max_side: int = 320,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 24,
        cascade: str = "haarcascade_frontalface_default.xml",
    ):
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + cascade)
        if self.cascade.empty():
            raise RuntimeError(f"OpenCV could not load its cascade {cascade}")
        self.max_side, self.scale_factor = max_side, scale_factor
        self.min_neighbors, self.min_size = min_neighbors, min_size

    def detect(self, gray: np.ndarray) -> np.ndarray:
        scale = min(1.0, self.max_side / max(gray.shape[:2]))
        return self._detect(gray, scale, max(12, int(self.min_size * scale)), 0)

    def detect_near(self, gray: np.ndarray, box) -> np.ndarray:
        """Look for a face of about `box`'s size around it: a few scales on a small image."""
        x, y, w, h = (int(v) for v in box)
        x0, y0 = max(0, x - w // 2), max(0, y - h // 2)
        roi = gray[y0 : y + h + h // 2, x0 : x + w + w // 2]
        scale = min(1.0, 48 / max(w, 1))  # the face becomes ~48 px: the cascade's sweet spot
        found = self._detect(roi, scale, int(w * scale * 0.7), int(w * scale * 1.4) + 1)
        return found + np.array([x0, y0, 0, 0], dtype=np.int32)

    def _detect(self, gray: np.ndarray, scale: float, min_side: int, max_side: int) -> np.ndarray:
        small = (
            gray
            if scale == 1.0
            else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        )
        boxes = self.cascade.detectMultiScale(
            small,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(min_side, min_side),
            maxSize=(max_side, max_side),
        )
        if len(boxes) == 0:
            return np.zeros((0, 4), dtype=np.int32)
        return np.round(np.asarray(boxes, dtype=np.float64) / scale).astype(np.int32)


class TrackingDetector:
    """For video and live streams: search near last frame's faces, the whole frame now and then.

    A full-frame search runs every `refresh` frames (a new face shows up within a second at
    30 fps) and whenever a face was lost; in between, each known face is looked for in a
    small window around its last box, which costs a fraction of a full search.
    """

    def __init__(self, base: HaarDetector | None = None, refresh: int = 30):
        self.base = base or HaarDetector()
        self.refresh = refresh
        self.boxes = np.zeros((0, 4), dtype=np.int32)
        self.since_full = 0

    def detect(self, gray: np.ndarray) -> np.ndarray:
        self.since_full += 1
        if len(self.boxes) and self.since_full < self.refresh:
            near = [self.base.detect_near(gray, box)[:1] for box in self.boxes]
            if all(len(n) for n in near):
                self.boxes = np.concatenate(near)
                return self.boxes
        self.since_full = 0
        self.boxes = self.base.detect(gray)
        return self.boxes


def detect_faces(frame: np.ndarray, detector: Detector) -> np.ndarray:
    """Boxes (N, 4) as x, y, w, h for a BGR, BGRA or gray frame of any size."""
    return detector.detect(to_gray8(frame))


def crop(frame: np.ndarray, box, margin: float = 0.0) -> np.ndarray:
    """The face region, widened by `margin` of its size on each side and clipped to the frame."""
    x, y, w, h = (int(v) for v in box)
    dx, dy = int(w * margin), int(h * margin)
    x0, y0 = max(0, x - dx), max(0, y - dy)
    x1, y1 = min(frame.shape[1], x + w + dx), min(frame.shape[0], y + h + dy)
    return frame[y0:y1, x0:x1]
