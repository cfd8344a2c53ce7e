"""`ferkit batch`: every photo and video of a corpus, resumable, on one machine or a cluster.

The driver finds the files, skips those the manifest says are finished and unchanged,
cuts long videos into chunks of frames and photos into small groups (tasks), and hands
the tasks to an engine (`ferkit.jobs.executors`). As a file's last task comes back it writes the
file's outputs, then records it in the manifest; at the end it rebuilds the tables over
every finished file (`ferkit.jobs.tables`). A kill at any moment loses at most the files in
flight: nothing is recorded before its outputs are complete.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from ferkit.errors import FerkitError
from ferkit.files import find_inputs, regular_file, remove_temps, unique_name
from ferkit.jobs import chunks, tables
from ferkit.jobs.analysis import Outcome, Task
from ferkit.jobs.executors import EXECUTORS, Executor, LocalExecutor
from ferkit.jobs.manifest import Manifest, stamp
from ferkit.media.images import SNIFF_BYTES, sniff, sniff_file

PHOTOS_PER_TASK = 8  # photos take milliseconds: one task each would be mostly overhead
FILES = "files"  # per-file outputs go under OUT/files/

log = logging.getLogger(__name__)


@dataclass
class PlannedFile:
    """One file to analyse in this run."""

    path: Path  # as the user named it (the tables show it so)
    source: Path  # absolute: the manifest key
    kind: str
    name: str  # outputs are OUT/files/<name>.csv, .json (and the annotated copy)
    stamp: dict
    frames: int = 1  # expected, for the progress bar
    fps: float = 0.0
    ranges: list = field(default_factory=lambda: [(0, None)])  # a video's chunks
    parts: int = 1  # tasks still to come back
    done: list = field(default_factory=list)  # (start frame, Outcome) per finished task


@dataclass
class Report:
    done: int = 0  # analysed by this run
    skipped: int = 0  # finished by an earlier run, unchanged
    unwanted: int = 0  # files met in the folders that are neither photos nor videos
    loops: list[Path] = field(default_factory=list)  # links in the folders that loop: left out
    errors: list[dict] = field(default_factory=list)
    rows: dict = field(default_factory=dict)


def kind_of(path: Path) -> str:
    """'photo' or 'video' by content, never by name."""
    regular_file(path)  # a named pipe or a device would block or never end
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if not head:
        raise FerkitError(f"{path}: empty file")
    kind = sniff(head)
    if kind is None:
        raise FerkitError(f"{path}: not a photo or video (judged by its content)")
    return "photo" if kind == "image" else "video"


def run_batch(
    inputs: list[str],
    out: Path,
    engine: Executor,
    *,
    chunk_frames: int = 4500,
    every: int = 1,
    smooth: bool = True,
    min_track: int = 3,
    annotate: bool = False,
    show_bar: bool = True,
) -> Report:
    """Analyse every file not finished yet, then rebuild the tables; see the module doc."""
    if every < 1:
        raise FerkitError(f"--every must be 1 or more, got {every}")
    if min_track < 1:
        raise FerkitError(f"--min-track must be 1 or more, got {min_track}")
    if chunk_frames < 0:
        raise FerkitError(f"--chunk-frames must be 0 (never) or more, got {chunk_frames}")
    out, report = Path(out), Report()
    paths, report.unwanted, report.loops = find_inputs(
        inputs, out, lambda f: sniff_file(f) is not None
    )
    out.mkdir(parents=True, exist_ok=True)
    if removed := remove_temps(out, recursive=False) + remove_temps(out / FILES):
        log.info("%s: removed %d unfinished files of an interrupted run", out, removed)
    manifest = Manifest(out)
    # an annotated video is made by `ferkit video`'s own code, in one piece
    jobs, finished = _plan(paths, manifest, report, 0 if annotate else chunk_frames, annotate)
    settings = Task("video", (), every=every, smooth=smooth, min_track=min_track)
    tasks = _tasks(jobs, out, settings, annotate)
    files_bar = tqdm(total=len(jobs), unit="file", disable=not show_bar, position=0)
    frames_bar = tqdm(
        total=sum(j.frames for j in jobs.values()), unit="frame", disable=not show_bar, position=1
    )
    with files_bar, frames_bar:
        for task, outcomes in engine.run(tasks):
            for outcome in outcomes:
                job = jobs[Path(outcome.path)]
                job.done.append((task.start, outcome))
                job.parts -= 1
                frames_bar.update(outcome.frames)
                if job.parts == 0:
                    if _finish(job, out, manifest, report):
                        finished.append(job)
                    files_bar.update(1)
            manifest.save()
    order = {p: i for i, p in enumerate(paths)}  # tables in input order, whatever finished first
    finished.sort(key=lambda j: order[j.path])
    named = [(str(j.path), manifest.files[str(j.source)]) for j in finished]
    report.rows = tables.write_tables(out, named, report.errors)
    return report


def _plan(paths: list[Path], manifest: Manifest, report: Report, chunk_frames: int, annotate: bool):
    """The files still to do (by absolute path), and those finished before."""
    jobs: dict[Path, PlannedFile] = {}
    finished: list[PlannedFile] = []
    taken = {name.lower() for name in manifest.names()}
    root = _common_root(paths)
    for path in paths:
        source = path.resolve()
        try:
            if manifest.is_done(source, ["annotated"] if annotate else []):
                report.skipped += 1
                finished.append(PlannedFile(path, source, "", manifest.name_of(source), {}))
                continue
            kind = kind_of(path)
            frames, fps = chunks.probe(path) if kind == "video" else (1, 0.0)
        except FerkitError as err:
            report.errors.append({"file": str(path), "error": str(err)})
            continue
        except OSError as err:  # "[Errno 13] Permission denied: 'x'" said as the rest are
            report.errors.append(
                {"file": str(path), "error": f"{path}: cannot read ({err.strerror or err})"}
            )
            continue
        name = manifest.name_of(source) or unique_name(source.relative_to(root).as_posix(), taken)
        job = jobs[source] = PlannedFile(
            path, source, kind, name, stamp(source), max(frames, 1), fps
        )
        if kind == "video":
            job.ranges = chunks.ranges(frames, chunk_frames)
            job.parts = len(job.ranges)
    return jobs, finished


def _annotated(out: Path, job: PlannedFile) -> Path:
    """Where `--annotate` puts a file's annotated copy."""
    return out / FILES / f"{job.name}.annotated{'.png' if job.kind == 'photo' else '.mp4'}"


def _tasks(jobs: dict[Path, PlannedFile], out: Path, settings: Task, annotate: bool) -> list[Task]:
    """Photos in small groups, videos in chunks; `settings` carries every, smooth, min_track."""

    def target(job: PlannedFile) -> str | None:
        return str(_annotated(out, job).resolve()) if annotate else None

    tasks = []
    photos = [j for j in jobs.values() if j.kind == "photo"]
    for i in range(0, len(photos), PHOTOS_PER_TASK):
        group = photos[i : i + PHOTOS_PER_TASK]
        paths = tuple(str(j.source) for j in group)
        targets = tuple(target(j) for j in group) if annotate else ()
        tasks.append(replace(settings, kind="photo", paths=paths, annotate=targets))
    warmup = chunks.WARMUP + settings.min_track  # tracks confirmed and settled by the edge
    for job in jobs.values():
        if annotate:  # annotated copies are written in place by the workers
            (out / FILES / job.name).parent.mkdir(parents=True, exist_ok=True)
        if job.kind == "video":
            for start, stop in job.ranges:
                tasks.append(
                    replace(
                        settings,
                        paths=(str(job.source),),
                        start=start,
                        stop=stop,
                        warmup=warmup,
                        annotate=(target(job),) if annotate else (),
                    )
                )
    return tasks


def _finish(job: PlannedFile, out: Path, manifest: Manifest, report: Report) -> bool:
    """Write a file's outputs and record it, or record its error; True when it is finished."""
    errors = [o.error for _, o in job.done if o.error]
    if errors:
        report.errors.append({"file": str(job.path), "error": errors[0]})
        return False
    outcomes: list[Outcome] = [o for _, o in job.done]
    rows = chunks.stitch([(start, o.rows) for start, o in job.done])
    info = {
        "file": str(job.path),
        "kind": job.kind,
        "frames": sum(o.frames for o in outcomes),
        "fps": job.fps,
    }
    outputs = tables.write_file_outputs(out / FILES, job.name, info, rows)
    outputs = {k: f"{FILES}/{v}" for k, v in outputs.items()}
    annotated = _annotated(out, job)
    if annotated.is_file():
        outputs["annotated"] = annotated.relative_to(out).as_posix()
    manifest.add(job.source, {**job.stamp, "name": job.name, "kind": job.kind, "outputs": outputs})
    report.done += 1
    return True


def _common_root(paths: list[Path]) -> Path:
    parents = [p.resolve().parent for p in paths]
    root = parents[0]
    for parent in parents[1:]:
        while root not in (parent, *parent.parents):
            root = root.parent
    return root


def open_executor(name: str, address: str | None, workers: int | None, options: dict) -> Executor:
    """The engine `--engine` names, connected; `--address` only for a cluster.

    `options` are the worker's model and face options (see `analysis.init_worker`).
    """
    if name == "local":
        if address:
            raise FerkitError("--address is for --engine dask, not local")
        return LocalExecutor(workers, options)
    if name == "dask":
        if not address:
            raise FerkitError("--engine dask needs --address HOST:PORT of the Dask scheduler")
        try:
            from ferkit.jobs.cluster import DaskExecutor
        except ImportError as err:
            raise FerkitError(
                "--engine dask needs the cluster extra: pip install 'ferkit[cluster]'"
            ) from err
        return DaskExecutor(address, options)
    raise FerkitError(f"--engine must be one of {', '.join(EXECUTORS)}, got '{name}'")
