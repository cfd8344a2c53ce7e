"""Face detectors: `CenterFaceDetector` (default), `HaarDetector` and `WholeImageDetector`.

Each finds faces in a BGR, BGRA or gray frame of any size and returns `Detections` in the
frame's own pixels, and can look again near a known box (what a stream does between full
searches). All three are safe to share between threads.

The CenterFace search follows the image: the network finds faces of about 24 to 350 of its
input pixels, so a frame is searched at a pyramid of scales, the finest one putting
`min_face` at 24 px and each next one 4x coarser, down to one pass over the whole frame at
384 px (a face as large as the frame). Levels larger than a tile are cut into overlapping
tiles, so a 40-megapixel photo costs a bounded number of small passes, never one huge one.
"""

from __future__ import annotations

import threading
from typing import Protocol

import cv2
import numpy as np

from ferkit.errors import FerkitError
from ferkit.model.preprocess import to_bgr8, to_gray8
from ferkit.vision.detections import Detections

DETECTORS = ("centerface", "haar", "none")
NET_MIN_FACE = 24  # the smallest face CenterFace finds reliably, in its input pixels
NET_COARSE = 384  # the whole frame's long side in the coarsest pass
TILE, OVERLAP = 640, 192  # a level larger than a tile is searched in tiles


class Detector(Protocol):
    def detect(self, frame: np.ndarray) -> Detections: ...

    def look_again(self, frame: np.ndarray) -> Detections: ...

    def detect_near(self, frame: np.ndarray, boxes: np.ndarray) -> list[Detections]: ...


def default_min_face(width: int, height: int) -> float:
    """The smallest face searched for by default: 1/16 of the long side, 20 to 40 px, or 1%
    of it in photos over 4000 px.

    A 640x480 frame is then searched at 384 px (fast enough for video), a 1920x1080 frame
    down to 40 px faces, a 6000 px photo down to 60 px faces (in tiles).
    """
    long_side = max(width, height)
    return float(max(20, min(40, long_side / 16), long_side / 100))


class CenterFaceDetector:
    def __init__(self, min_face: float | None = None, threshold: float = 0.2):
        from ferkit.vision.centerface import CenterFace

        self.net = CenterFace()
        self.min_face, self.threshold = min_face, threshold

    def smallest_face(self, width: int, height: int) -> float:
        """`min_face` as given, or the default for this image size."""
        return self.min_face or default_min_face(width, height)

    def scales(self, width: int, height: int) -> list[float]:
        """The pyramid's scales, finest first (never above 1: upscaling invents no detail)."""
        coarse = min(1.0, NET_COARSE / max(width, height))
        scale, scales = min(1.0, NET_MIN_FACE / self.smallest_face(width, height)), []
        while scale > coarse * 1.5:
            scales.append(scale)
            scale /= 4
        return [*scales, coarse]

    def detect(self, frame: np.ndarray) -> Detections:
        bgr = to_bgr8(frame)
        h, w = bgr.shape[:2]
        if max(h, w) < 160:  # a face crop: give the network some context around the face
            return self._detect_small(bgr)
        parts = [self._level(bgr, s) for s in self.scales(w, h)]
        return Detections.merge(parts).larger_than(0.7 * self.smallest_face(w, h))

    def look_again(self, frame: np.ndarray) -> Detections:
        """A second, finer look at a photo in which `detect` found nothing: one pass at twice
        the coarse pass's resolution. Costs a no-face photo about 3x; finds faces the first
        pass rated just under the threshold (3.5 points more of FER2013's faces in frames:
        93.7% -> 97.2%, bench/detect.py)."""
        bgr = to_bgr8(frame)
        h, w = bgr.shape[:2]
        if max(h, w) < 160:
            return Detections.empty()  # `detect` already searched a small image closely
        found = self._level(bgr, min(1.0, 2 * NET_COARSE / max(h, w)))
        return found.larger_than(0.7 * self.smallest_face(w, h))

    def detect_near(self, frame: np.ndarray, boxes: np.ndarray) -> list[Detections]:
        """Each face looked for in twice its box, scaled so the face is about 48 px: one
        batched pass over small images (~96 px each)."""
        bgr = to_bgr8(frame)
        rois, places = [], []
        for x, y, w, h in np.asarray(boxes, np.float64):
            side = max(w, h)
            x0, y0 = int(max(0, x + w / 2 - side)), int(max(0, y + h / 2 - side))
            roi = bgr[y0 : int(y + h / 2 + side), x0 : int(x + w / 2 + side)]
            scale = min(1.0, 48 / max(side, 1))
            rois.append(_resize(roi, scale))
            places.append((scale, x0, y0))
        found = self.net.run_many(rois, self.threshold)
        return [f.scaled(*place) for f, place in zip(found, places, strict=True)]

    def _level(self, bgr: np.ndarray, scale: float) -> Detections:
        small = _resize(bgr, scale)
        h, w = small.shape[:2]
        if max(h, w) <= TILE + OVERLAP:
            return self.net.run(small, self.threshold).scaled(scale)
        step = TILE - OVERLAP
        parts = [
            self.net.run(small[ty : ty + TILE, tx : tx + TILE], self.threshold).scaled(1.0, tx, ty)
            for ty in range(0, max(1, h - OVERLAP), step)
            for tx in range(0, max(1, w - OVERLAP), step)
        ]
        return Detections.merge(parts).scaled(scale)

    def _detect_small(self, bgr: np.ndarray) -> Detections:
        h, w = bgr.shape[:2]
        scale = 160 / max(h, w)
        pad = int(0.25 * 160)
        big = cv2.copyMakeBorder(_resize(bgr, scale), pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        found = self.net.run(big, self.threshold).scaled(scale, -pad / scale, -pad / scale)
        return found.clipped(w, h)


class HaarDetector:
    """OpenCV's frontal-face Haar cascade (ships inside opencv-python): no model to install.

    It gives no confidence; every box has detection 1.0. One cascade per thread, since a
    cascade cannot be shared.
    """

    def __init__(self, min_face: float | None = None, max_side: int = 320):
        self.min_face, self.max_side = min_face, max_side
        self._local = threading.local()

    @property
    def cascade(self) -> cv2.CascadeClassifier:
        if not hasattr(self._local, "cascade"):
            name = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
            self._local.cascade = cv2.CascadeClassifier(name)
            if self._local.cascade.empty():
                raise RuntimeError(f"OpenCV could not load its cascade {name}")
        return self._local.cascade

    def detect(self, frame: np.ndarray) -> Detections:
        gray = to_gray8(frame)
        scale = min(1.0, self.max_side / max(gray.shape[:2]))
        if self.min_face:  # search finely enough for the smallest face asked for
            scale = max(scale, min(1.0, 24 / self.min_face))
        return self._detect(gray, scale, max(12, int((self.min_face or 24) * scale)), 0)

    def look_again(self, frame: np.ndarray) -> Detections:
        return Detections.empty()  # the cascade gives no near-misses to look at again

    def detect_near(self, frame: np.ndarray, boxes: np.ndarray) -> list[Detections]:
        gray = to_gray8(frame)
        return [self._near(gray, box) for box in boxes]

    def _near(self, gray: np.ndarray, box) -> Detections:
        x, y, w, h = (int(v) for v in box)
        x0, y0 = max(0, x - w // 2), max(0, y - h // 2)
        roi = gray[y0 : y + h + h // 2, x0 : x + w + w // 2]
        scale = min(1.0, 48 / max(w, 1))  # the face becomes ~48 px: the cascade's sweet spot
        found = self._detect(roi, scale, int(w * scale * 0.7), int(w * scale * 1.4) + 1)
        return found.scaled(1.0, x0, y0)

    def _detect(self, gray: np.ndarray, scale: float, min_side: int, max_side: int) -> Detections:
        boxes = self.cascade.detectMultiScale(
            _resize(gray, scale),
            scaleFactor=1.1,
            minNeighbors=5,
            minSize=(min_side, min_side),
            maxSize=(max_side, max_side),
        )
        if len(boxes) == 0:
            return Detections.empty()
        boxes = np.asarray(boxes, np.float32)
        return Detections(boxes, np.ones(len(boxes), np.float32), None).scaled(scale)


class WholeImageDetector:
    """`--detector none`: the whole image is one face (a FER2013 image, any cropped face)."""

    def detect(self, frame: np.ndarray) -> Detections:
        h, w = frame.shape[:2]
        return Detections(np.array([[0, 0, w, h]], np.float32), np.ones(1, np.float32), None)

    def look_again(self, frame: np.ndarray) -> Detections:
        return self.detect(frame)

    def detect_near(self, frame: np.ndarray, boxes: np.ndarray) -> list[Detections]:
        return [self.detect(frame) for _ in boxes]


def make_detector(name: str = "centerface", min_face: float | None = None) -> Detector:
    """A detector by its `--detector` name."""
    if min_face is not None and min_face < 8:
        raise FerkitError(f"--min-face must be 8 pixels or more, got {min_face}")
    if name == "centerface":
        return CenterFaceDetector(min_face)
    if name == "haar":
        return HaarDetector(min_face)
    if name == "none":
        return WholeImageDetector()
    raise FerkitError(f"unknown detector '{name}': choose one of {', '.join(DETECTORS)}")


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return image
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=interp)
