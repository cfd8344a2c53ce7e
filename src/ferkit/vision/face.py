"""`Face`: one recognised face, the value every stage after the model passes along.

It stays a value (arrays, floats) through tracking, overlay, video and the web app, and
becomes JSON or a CSV row only at the edges (`to_dict`, `csv_row`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ferkit.labels import EMOTIONS

# Faces the detector rates below this are dropped on every path (photos, videos, streams).
# Measured (bench/crowded.py): 40 no-face pictures give 1 false face per 20 at 0.2, 0.5 at
# 0.25 and none from 0.3, while the group photos keep every face they had up to 0.4 (95%;
# 94% at 0.45, 78% at 0.5): the middle of that plateau. Faces up to DOUBTFUL are kept,
# marked doubtful.
MIN_DETECTION = 0.35
# A face the detector is less sure of than this is kept but said to be doubtful (a dashed box,
# "?" after its label, "doubtful" in lists): at 0.2-0.5 CenterFace also finds hair, animals
# and patterns (bench/crowded.py), while a clear frontal face scores 0.6-0.9.
DOUBTFUL = 0.5

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

    @property
    def doubtful(self) -> bool:
        """The detector was unsure this is a face (see DOUBTFUL)."""
        return self.detection < DOUBTFUL

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
            "doubtful": self.doubtful,
        }
        if self.landmarks is not None:
            out["landmarks"] = [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks]
        return out

    def csv_row(self) -> list:
        """The values for CSV_FIELDS."""
        scores = [round(float(p), 4) for p in self.scores]
        return [self.face_id, *self.box, round(float(self.detection), 3), self.emotion, *scores]


def reading_order(boxes: list[tuple[int, int, int, int]]) -> list[int]:
    """The indices of `boxes` (x, y, w, h) as a reader takes them: row by row from the top,
    left to right within a row; how faces are numbered.

    Plain left-to-right numbering jumps between the rows of a group photo (#1 in the back
    row, #2 in the front); here a box joins the row whose mean centre is within half a face
    height of its own, so a row that is not quite level (or a child beside an adult) stays
    one row.
    """
    rows: list[list[int]] = []
    for i in sorted(range(len(boxes)), key=lambda i: boxes[i][1] + boxes[i][3] / 2):
        x, y, w, h = boxes[i]
        if rows:
            row = rows[-1]
            centre = np.mean([boxes[j][1] + boxes[j][3] / 2 for j in row])
            height = max(h, max(boxes[j][3] for j in row))
            if abs(y + h / 2 - centre) < height / 2:
                row.append(i)
                continue
        rows.append([i])
    return [i for row in rows for i in sorted(row, key=lambda i: boxes[i][0])]
