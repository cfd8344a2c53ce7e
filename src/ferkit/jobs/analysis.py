"""The work a batch worker does: one task (a video's frame range, or a few photos) -> face rows.

Runs inside worker processes (a local process pool or Dask workers), which load the model
once (`init_worker`) and keep it for every task they get. A task never writes the batch's
tables: it returns plain rows, so the driver alone decides what is finished; the only file a
worker writes is annotated media (`--annotate`), atomically, under a name the driver gave.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from ferkit.errors import FerkitError
from ferkit.jobs.rows import FaceRow, face_rows
from ferkit.jobs.video import VideoOutputs, process_video
from ferkit.media.images import read_image
from ferkit.media.video import frame_range
from ferkit.model.recognizer import FacialExpressionModel
from ferkit.vision.overlay import write_annotated
from ferkit.vision.pipeline import Pipeline

log = logging.getLogger(__name__)

_pipeline: Pipeline | None = None


@dataclass(frozen=True)
class Task:
    """Photos (each whole), or frames [start, stop) of one video (`stop` None: to the end).

    A video chunk also decodes `warmup` frames before `start` and returns their rows, so
    its tracks are confirmed and smoothed by the edge, and the driver can match them to the
    chunk before on the frames both saw.
    """

    kind: str  # "photo" or "video"
    paths: tuple[str, ...]
    start: int = 0
    stop: int | None = None
    warmup: int = 0
    every: int = 1
    smooth: bool = True
    min_track: int = 3  # frames before a face counts (`Stream`'s min_frames)
    annotate: tuple[str | None, ...] = ()  # per path: where to write the annotated copy


@dataclass
class Outcome:
    """One file's part of a task: rows as in `ferkit video --csv`, or the error that stopped it."""

    path: str
    rows: list[FaceRow] = field(default_factory=list)
    frames: int = 0  # frames in [start, stop), warm-up excluded
    error: str | None = None


def init_worker(options: dict | None = None) -> None:
    """Load the model once per worker process, one thread each (a worker per core).

    `options`: model, engine (Keras/ONNX), detector, crop, min_face, as the CLI takes them.
    """
    global _pipeline
    options = dict(options or {})
    cv2.setNumThreads(1)
    model = FacialExpressionModel.load(options.pop("model", None), options.pop("engine", "auto"))
    _pipeline = Pipeline(model, **options)
    log.debug("worker %d: model loaded", os.getpid())


def run_task(task: Task) -> list[Outcome]:
    """Every face in every frame of the task's files; a bad file becomes an error, not a crash."""
    if _pipeline is None:
        raise RuntimeError("run_task before init_worker: the engine must load the model first")
    outcomes = []
    targets = task.annotate or (None,) * len(task.paths)
    for path, target in zip(task.paths, targets, strict=True):
        try:
            if task.kind == "photo":
                outcomes.append(_photo(path, target))
            elif target is not None:
                outcomes.append(_annotated_video(path, target, task))
            else:
                outcomes.append(_video(path, task))
        except FerkitError as err:
            outcomes.append(Outcome(path, error=str(err)))
        except Exception as err:  # a decoder or library failure on this file only
            log.exception("%s failed", path)
            outcomes.append(Outcome(path, error=f"{path}: {type(err).__name__}: {err}"))
    return outcomes


def _photo(path: str, target: str | None) -> Outcome:
    image = read_image(Path(path))
    faces = _pipeline(image)
    if target is not None:
        write_annotated(Path(target), image, faces)
    return Outcome(path, face_rows(0, 0.0, faces), frames=1)


def _video(path: str, task: Task) -> Outcome:
    """Frames [start - warmup, stop) through a fresh `Stream` (the driver stitches ids)."""
    stream = _pipeline.stream(smooth=task.smooth, min_frames=task.min_track)
    rows, frames = [], 0
    decoded = frame_range(Path(path), max(0, task.start - task.warmup), task.stop)
    for n, t, _image, faces in stream.frames(decoded, task.every):
        rows += face_rows(n, t, faces)
        frames += n >= task.start
    if stream.tracker.updates == 0 and task.start == 0:
        raise FerkitError(f"{path}: the video has no decodable frames")
    return Outcome(path, rows, frames)


def _annotated_video(path: str, target: str, task: Task) -> Outcome:
    """The whole video through `ferkit video`'s own code, so the copy matches `ferkit video`."""
    rows: list[FaceRow] = []
    summary = process_video(
        Path(path),
        VideoOutputs(Path(target)),
        _pipeline.stream(smooth=task.smooth, min_frames=task.min_track),
        task.every,
        show_bar=False,
        rows=rows,
    )
    return Outcome(path, rows, summary["frames"])
