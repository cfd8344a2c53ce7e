"""`FaceRow`: one face in one frame, the one row schema of every per-face table: the video
CSV (`ferkit video --csv`), a batch's per-file CSVs and `faces` table, and the rows that
chunks of a long video are stitched from. A named tuple, so it is written as it is (CSV,
Parquet) and read by name (`row.face_id`, `row.box`), never by position. `summarise`
turns a video's rows into its per-track summary (JSON, the batch's `summary` table).
"""

from __future__ import annotations

from typing import NamedTuple

from ferkit.labels import EMOTIONS
from ferkit.vision.face import Face


class FaceRow(NamedTuple):
    frame: int
    time_s: float
    face_id: int
    x: int
    y: int
    w: int
    h: int
    detection: float
    emotion: str
    angry: float
    disgust: float
    fear: float
    happy: float
    sad: float
    surprise: float
    neutral: float

    @classmethod
    def of(cls, frame: int, time_s: float, face: Face) -> FaceRow:
        return cls(frame, round(time_s, 3), *face.csv_row())

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.w, self.h


FIELDS: tuple[str, ...] = FaceRow._fields
INT_FIELDS = frozenset({"frame", "face_id", "x", "y", "w", "h"})
assert FIELDS[9:] == EMOTIONS, "the score columns follow the label order"


def face_rows(frame: int, time_s: float, faces: list[Face]) -> list[FaceRow]:
    """The rows of one frame's faces."""
    return [FaceRow.of(frame, time_s, face) for face in faces]


def summarise(info: dict, rows: list[FaceRow]) -> dict:
    """Per face track: frames and seconds seen, first and last time, mean detection
    confidence, share of each emotion and the dominant one; `info` (video, frames, fps, ...)
    comes first. The one summary of `ferkit video --json` and `ferkit batch`."""
    tracks: dict[int, list[FaceRow]] = {}
    for r in rows:
        tracks.setdefault(r.face_id, []).append(r)
    fps = info.get("fps") or 0.0
    faces = {}
    for face_id, seen in sorted(tracks.items()):
        counts = dict.fromkeys(EMOTIONS, 0)
        for r in seen:
            counts[r.emotion] += 1
        faces[str(face_id)] = {
            "frames": len(seen),
            "first_s": seen[0].time_s,
            "last_s": seen[-1].time_s,
            "duration_s": round(len(seen) / fps, 3) if fps else 0.0,
            "detection": round(sum(r.detection for r in seen) / len(seen), 3),
            "share": {k: round(v / len(seen), 4) for k, v in counts.items()},
            "dominant": max(counts, key=counts.get),
        }
    return {**info, "faces": faces}
