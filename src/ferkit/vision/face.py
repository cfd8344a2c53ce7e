"""`Face`: one recognised face, the value every stage after the model passes along.

It stays a value (arrays, floats) through tracking, overlay, video and the web app, and
becomes JSON or a CSV row only at the edges (`to_dict`, `csv_row`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ferkit.labels import EMOTIONS

CSV_FIELDS = ["face_id", "x", "y", "w", "h", "detection", "emotion", *EMOTIONS]


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h in the frame's pixels
    scores: np.ndarray  # (7,) probabilities in EMOTIONS order
    detection: float = 1.0  # the detector's confidence (1.0 for Haar and --detector none)
    landmarks: np.ndarray | None = None  # (5, 2): eyes, nose, mouth corners (x, y)
    face_id: int = 1  # 1, 2, ... in a photo; a stable track number in a stream

    @property
    def emotion(self) -> str:
        return EMOTIONS[int(np.argmax(self.scores))]

    @property
    def score(self) -> float:
        """The probability of the winning emotion."""
        return float(np.max(self.scores))

    def with_(self, **changes) -> Face:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """The JSON form: plain ints and rounded floats."""
        out = {
            "face_id": self.face_id,
            "box": [int(v) for v in self.box],
            "emotion": self.emotion,
            "scores": {k: round(float(p), 4) for k, p in zip(EMOTIONS, self.scores, strict=True)},
            "detection": round(float(self.detection), 3),
        }
        if self.landmarks is not None:
            out["landmarks"] = [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks]
        return out

    def csv_row(self) -> list:
        """The values for CSV_FIELDS."""
        scores = [round(float(p), 4) for p in self.scores]
        return [self.face_id, *self.box, round(float(self.detection), 3), self.emotion, *scores]
