"""`Detections`: what a face detector found in one image, as arrays (no per-face objects yet).

Kept as arrays so that scaling, merging the passes of a pyramid and non-maximum suppression
are single numpy/OpenCV calls. A `Face` (ferkit.vision.face) is made per face only once the faces
are classified.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # (N, 4) float32: x, y, w, h in the image's pixels
    scores: np.ndarray  # (N,) float32: the detector's confidence, 0..1
    landmarks: np.ndarray | None = None  # (N, 5, 2): eyes, nose, mouth corners (x, y)

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        )

    def __len__(self) -> int:
        return len(self.boxes)

    def scaled(self, factor: float, dx: float = 0.0, dy: float = 0.0) -> Detections:
        """Mapped from a resized (by `factor`) and shifted copy back to the original image."""
        shift = np.array([dx, dy], np.float32)
        boxes = self.boxes / factor
        boxes[:, :2] += shift
        marks = None if self.landmarks is None else self.landmarks / factor + shift
        return Detections(boxes, self.scores, marks)

    def clipped(self, width: int, height: int) -> Detections:
        """Boxes cut to the image (a face at the border keeps its visible part)."""
        x0 = np.clip(self.boxes[:, 0], 0, width)
        y0 = np.clip(self.boxes[:, 1], 0, height)
        x1 = np.clip(self.boxes[:, 0] + self.boxes[:, 2], 0, width)
        y1 = np.clip(self.boxes[:, 1] + self.boxes[:, 3], 0, height)
        boxes = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1).astype(np.float32)
        keep = (boxes[:, 2] >= 2) & (boxes[:, 3] >= 2)
        return self.select(keep, boxes)

    def select(self, keep: np.ndarray, boxes: np.ndarray | None = None) -> Detections:
        boxes = self.boxes if boxes is None else boxes
        marks = None if self.landmarks is None else self.landmarks[keep]
        return Detections(boxes[keep], self.scores[keep], marks)

    def larger_than(self, min_side: float) -> Detections:
        return self.select(np.maximum(self.boxes[:, 2], self.boxes[:, 3]) >= min_side)

    @staticmethod
    def merge(parts: list[Detections], iou: float = 0.3) -> Detections:
        """Several passes (pyramid levels, tiles) as one set, duplicates removed by NMS.

        Among overlapping boxes the most confident wins; a box mostly inside a more confident
        one (a face cut by a tile edge) goes too.
        """
        parts = [p for p in parts if len(p)]
        if not parts:
            return Detections.empty()
        boxes = np.concatenate([p.boxes for p in parts])
        scores = np.concatenate([p.scores for p in parts])
        with_marks = all(p.landmarks is not None for p in parts)
        marks = np.concatenate([p.landmarks for p in parts]) if with_marks else None
        keep = np.asarray(cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), 0.0, iou), np.int64)
        keep = keep.reshape(-1)
        keep = keep[_not_inside_better(boxes[keep], scores[keep])]
        return Detections(boxes[keep], scores[keep], None if marks is None else marks[keep])


def _not_inside_better(boxes: np.ndarray, scores: np.ndarray, share: float = 0.6) -> np.ndarray:
    """Indices of boxes not covered (over `share` of their area) by a more confident box."""
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    iw = np.clip(np.minimum(x1[:, None], x1[None]) - np.maximum(x0[:, None], x0[None]), 0, None)
    ih = np.clip(np.minimum(y1[:, None], y1[None]) - np.maximum(y0[:, None], y0[None]), 0, None)
    covered = iw * ih / np.maximum(boxes[:, 2] * boxes[:, 3], 1e-6)[:, None]
    better = scores[None, :] > scores[:, None]
    return np.nonzero(~((covered > share) & better).any(axis=1))[0]
