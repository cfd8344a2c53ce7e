"""Follow faces across video frames and smooth their scores, so labels do not flicker.

Faces are matched to the previous frame's by box overlap (IoU), greedily; each keeps a
stable `face_id` and an exponential moving average of its scores. A face unseen for
`max_missing` frames is forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ferkit.pipeline import result


def iou(a, b) -> float:
    """Overlap of two (x, y, w, h) boxes: intersection over union."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    face_id: int
    box: list[int]
    scores: np.ndarray
    missing: int = 0


@dataclass
class Tracker:
    alpha: float = 0.3  # weight of the newest frame in the moving average
    min_iou: float = 0.2
    max_missing: int = 15
    _tracks: list[_Track] = field(default_factory=list)
    _next_id: int = 1

    def update(self, results: list[dict]) -> list[dict]:
        """The same results with `face_id` added and scores/emotion smoothed."""
        pairs = sorted(
            (
                (iou(t.box, r["box"]), ti, ri)
                for ti, t in enumerate(self._tracks)
                for ri, r in enumerate(results)
            ),
            reverse=True,
        )
        matched_t, matched_r, out, updated = set(), {}, [], set()
        for overlap, ti, ri in pairs:
            if overlap < self.min_iou or ti in matched_t or ri in matched_r:
                continue
            matched_t.add(ti)
            matched_r[ri] = self._tracks[ti]
        for ri, r in enumerate(results):
            raw = np.array(list(r["scores"].values()), dtype=np.float64)
            track = matched_r.get(ri)
            if track is None:
                track = _Track(self._next_id, r["box"], raw)
                self._next_id += 1
                self._tracks.append(track)
            else:
                track.scores = (1 - self.alpha) * track.scores + self.alpha * raw
                track.box, track.missing = r["box"], 0
            updated.add(track.face_id)
            out.append({**result(r["box"], track.scores), "face_id": track.face_id})
        for t in self._tracks:
            if t.face_id not in updated:
                t.missing += 1
        self._tracks = [t for t in self._tracks if t.missing <= self.max_missing]
        return out
