"""Follow faces across frames: stable face numbers, smoothed scores, false faces left out.

Faces are matched to the previous frame's tracks by box overlap (IoU), greedily. A track
gets its public number (1, 2, ...) only once it is confirmed: seen in `min_frames` frames
with a mean detection confidence of at least `min_detection`. A background patch that looks
like a face for a frame or two never gets a number, so it never reaches a table, a chart or
a summary, and numbers have no gaps. Scores are an exponential moving average, so labels do
not flicker. A track unseen for more than `max_missing` frames is forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ferkit.vision.face import Face, reading_order


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Overlap of two (x, y, w, h) boxes: intersection over union."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    box: tuple[int, int, int, int]
    scores: np.ndarray
    detection_sum: float
    frames: int = 1
    missing: int = 0
    face_id: int = 0  # 0 until confirmed
    pending: list[tuple[int, Face]] = field(default_factory=list)  # (update, face) until then

    @property
    def detection(self) -> float:
        return self.detection_sum / self.frames


@dataclass
class Tracker:
    alpha: float = 0.3  # weight of the newest frame in the moving average (1.0: no smoothing)
    min_iou: float = 0.2
    max_missing: int = 15
    min_frames: int = 3
    min_detection: float = 0.4
    tracks: list[Track] = field(default_factory=list)
    confirmed: int = 0  # public numbers given so far
    updates: int = 0  # calls of `update` so far
    late: list[tuple[int, Face]] = field(default_factory=list)  # released by the last update

    def update(self, faces: list[Face]) -> list[Face]:
        """The confirmed faces of this frame, numbered by track and smoothed.

        A track's faces from before it was confirmed go to `late`, numbered, with the index
        of the update they came from, for callers that can still show them (a saved video);
        `late` holds what this update released, and a track keeps only the faces of the
        updates before its confirmation could give back (a live feed keeps nothing more).
        """
        self.updates += 1
        self.late = []
        matched = self._match(faces)
        current = []  # (track, smoothed face) in this frame
        for i, face in enumerate(faces):
            track = matched.get(i)
            if track is None:
                track = Track(face.box, face.scores.astype(np.float64), face.detection)
                self.tracks.append(track)
            else:
                track.scores = (1 - self.alpha) * track.scores + self.alpha * face.scores
                track.box, track.missing = face.box, 0
                track.frames += 1
                track.detection_sum += face.detection
            current.append((track, face.with_(scores=track.scores.astype(np.float32))))
        # faces confirmed in the same frame are numbered in reading order, as in a photo
        for j in reading_order([face.box for _, face in current]):
            track = current[j][0]
            if not track.face_id and self._confirms(track):
                self.confirmed += 1
                track.face_id = self.confirmed
                self.late += [(u, f.with_(face_id=track.face_id)) for u, f in track.pending]
                track.pending.clear()
        out = []
        for track, face in current:
            if track.face_id:
                out.append(face.with_(face_id=track.face_id))
            else:
                track.pending.append((self.updates, face))
                del track.pending[: max(0, len(track.pending) - (self.min_frames - 1))]
        seen = {id(track) for track, _ in current}
        for track in self.tracks:
            if id(track) not in seen:
                track.missing += 1
        self.tracks = [t for t in self.tracks if t.missing <= self.max_missing]
        return out

    def _confirms(self, track: Track) -> bool:
        return track.frames >= self.min_frames and track.detection >= self.min_detection

    def _match(self, faces: list[Face]) -> dict[int, Track]:
        pairs = sorted(
            (
                (iou(t.box, f.box), ti, fi)
                for ti, t in enumerate(self.tracks)
                for fi, f in enumerate(faces)
            ),
            key=lambda p: p[0],
            reverse=True,
        )
        used, matched = set(), {}
        for overlap, ti, fi in pairs:
            if overlap < self.min_iou or ti in used or fi in matched:
                continue
            used.add(ti)
            matched[fi] = self.tracks[ti]
        return matched
