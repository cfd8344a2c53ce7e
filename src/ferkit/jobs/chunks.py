"""Long videos in chunks of frames, and face ids stitched back across the chunk edges.

A chunk is analysed on its own (any worker, any order) by a fresh `Stream`, so its face
ids are its own. It starts `WARMUP` frames before its first frame, so its tracks are
confirmed and smoothed by then, and returns those frames' rows too: back in one piece, a
chunk's tracks are matched to the previous chunk's by how many of those shared frames
they overlap in (box IoU, as the tracker matches); a matched track keeps its file-wide id,
an unmatched one gets the next free id, and the warm-up rows are dropped.
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from pathlib import Path

from ferkit.jobs.rows import FaceRow
from ferkit.media.video import open_video
from ferkit.vision.tracking import Tracker, iou

WARMUP = 30  # frames to settle smoothed scores (a chunk adds --min-track to confirm tracks)


def probe(path: Path) -> tuple[int, float]:
    """Frames (0 when the container does not say) and frame rate, by the video's header."""
    container = open_video(path, long=True)
    try:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate or 30)
        frames = int(stream.frames or 0)
        if not frames and stream.duration and stream.time_base:
            frames = int(stream.duration * stream.time_base * rate)
        return frames, float(rate)
    finally:
        container.close()


def ranges(frames: int, chunk: int) -> list[tuple[int, int | None]]:
    """[start, stop) ranges of `chunk` frames; the last one runs to the end of the file."""
    if chunk <= 0 or frames <= chunk:
        return [(0, None)]
    starts = list(range(0, frames, chunk))
    if frames - starts[-1] < chunk // 4:  # no sliver of a chunk at the end
        starts.pop()
    return [(s, e) for s, e in zip(starts, starts[1:], strict=False)] + [(starts[-1], None)]


def stitch(parts: list[tuple[int, list[FaceRow]]]) -> list[FaceRow]:
    """One video's rows from its chunks' ((start, rows) each), with file-wide face ids.

    A chunk's rows before its start are its warm-up: its faces there are matched by box
    overlap with the rows already stitched, and take their ids.
    """
    min_iou = Tracker().min_iou
    out: list[FaceRow] = []
    next_id = 1
    for start, rows in sorted(parts, key=lambda p: p[0]):
        seen = {}  # frame -> the stitched rows of the chunks before, in the warm-up frames
        for r in reversed(out):
            if r.frame < start - WARMUP:
                break
            seen.setdefault(r.frame, []).append(r)
        votes = Counter(
            (old.face_id, r.face_id)
            for r in rows
            if r.frame < start
            for old in seen.get(r.frame, ())
            if iou(old.box, r.box) >= min_iou
        )
        ids, taken = {}, set()
        for (old_id, new_id), _ in votes.most_common():
            if old_id not in taken and new_id not in ids:
                ids[new_id] = old_id
                taken.add(old_id)
        for r in rows:
            if r.frame < start:
                continue
            if r.face_id not in ids:
                ids[r.face_id], next_id = next_id, next_id + 1
            out.append(r._replace(face_id=ids[r.face_id]))
    return out
