"""Video jobs: random ids, a bounded queue, one worker, cancellable, files that never outlive them.

Uploads and outputs live under the app's data folder, in a folder of this process
(`<data>/jobs/<pid>-<random>/`), under server-chosen names; a user's file name is never
used as a path. The process holds a lock on its folder while it lives, so the next start
can tell the folders of dead processes (a kill -9, a crash) and delete them. Finished jobs
are deleted by a timer once their time to live is over; a graceful stop deletes the
process's folder unless asked to keep it.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import queue
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ferkit.errors import FerkitError
from ferkit.jobs.video import VideoOutputs, process_video
from ferkit.media.video import check_decodes
from ferkit.vision.pipeline import Pipeline
from ferkit.web.logs import current_id

log = logging.getLogger(__name__)

OUTPUTS = {"video.mp4": "video", "frames.csv": "csv", "summary.json": "json", "chart.png": "chart"}
LOCK_NAME, KEPT_NAME = ".lock", ".kept"
COPY_CHUNK = 1 << 20  # an upload is copied to its job's folder 1 MB at a time


@dataclass
class VideoJob:
    id: str
    folder: Path
    client: str = ""  # the address it came from: each address has a share of the queue
    name: str = "video"  # the uploaded file's name (no extension): its outputs download as
    # NAME-video.mp4, NAME-frames.csv... rather than under the same names for every job
    sent_as: str = "upload"  # the uploaded file's name as sent: in its summary and errors
    status: str = "queued"  # queued, running, done, failed
    progress: float = 0.0
    error: str | None = None
    summary: dict | None = None
    finished_at: float | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def upload(self) -> Path:
        """The uploaded video, under a name of the server's choosing."""
        return self.folder / "upload.bin"

    def public(self, err: Exception) -> str:
        """An error's text with the server's paths replaced: the upload's by the name it
        was sent under, the job folder's (an output that could not be written) by 'job'."""
        return str(err).replace(str(self.upload), self.sent_as).replace(str(self.folder), "job")

    def output(self, name: str) -> Path | None:
        if self.status != "done" or name not in OUTPUTS:
            return None
        return self.folder / name

    def to_dict(self) -> dict:
        files = {kind: f"/api/videos/{self.id}/{name}" for name, kind in OUTPUTS.items()}
        return {
            "id": self.id,
            "status": self.status,
            "progress": round(self.progress, 3),
            "error": self.error,
            "summary": self.summary,
            "files": files if self.status == "done" else {},
        }


class QueueFull(Exception):
    """No room for a job now (HTTP 429): the queue, or the client's share of it, is full."""


class _Stopped(Exception):
    """Raised between two frames: the server stops, the job was deleted or ran too long."""


def _seconds_unchanged(folder: Path) -> float:
    """Since `folder` last changed; 0 when it is gone (a twin server removed it meanwhile)."""
    try:
        return time.time() - folder.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def remove_dead_folders(base: Path) -> int:
    """Delete the job folders of processes that are gone (their lock is free); how many."""
    removed = 0
    for folder in base.iterdir() if base.is_dir() else []:
        if not folder.is_dir() or (folder / KEPT_NAME).exists():
            continue
        try:
            with open(folder / LOCK_NAME, "rb") as fh:  # never created here: see below
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live process holds it
        except FileNotFoundError:
            if _seconds_unchanged(folder) < 60:
                continue  # a process that is starting and has not locked it yet
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


class VideoJobQueue:
    """The video jobs of one app: a bounded queue, one worker thread, a timer for expiry."""

    def __init__(
        self,
        data_dir: str | Path,
        pipeline: Pipeline,
        max_jobs: int = 4,
        ttl_s: float = 3600,
        max_job_s: float = 120,
        per_client: int = 0,
    ):
        base = Path(data_dir) / "jobs"
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.removed_at_start = remove_dead_folders(base)
        self.root = base / f"{os.getpid()}-{secrets.token_hex(4)}"
        self.root.mkdir(mode=0o700)
        self._lock_file = open(self.root / LOCK_NAME, "w")  # held for the life of the process
        fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.pipeline, self.ttl_s, self.max_job_s = pipeline, ttl_s, max_job_s
        self.per_client = per_client  # jobs queued or running from one address (0: no cap)
        self.jobs: dict[str, VideoJob] = {}
        self.pending: queue.Queue[VideoJob | None] = queue.Queue(maxsize=max_jobs)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.worker = threading.Thread(target=self._work, daemon=True, name="ferkit-video-jobs")
        self.sweeper = threading.Thread(target=self._sweep, daemon=True, name="ferkit-expiry")
        self.worker.start()
        self.sweeper.start()
        # outside `ferkit serve` (tests, notebooks): stop between two frames at exit, since
        # an encoder killed mid-write can crash the interpreter, and delete the files
        atexit.register(self.shutdown)

    def shutdown(self, keep: bool = False, timeout: float = 30) -> None:
        """Stop the worker between two frames, then delete every file unless `keep`."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        try:
            self.pending.put_nowait(None)
        except queue.Full:
            pass
        self.worker.join(timeout)
        self.sweeper.join(timeout)
        if keep:
            (self.root / KEPT_NAME).touch()
        else:
            shutil.rmtree(self.root, ignore_errors=True)
        self._lock_file.close()
        atexit.unregister(self.shutdown)  # nor keep the app (and its model) alive until exit

    def submit(
        self,
        head: bytes,
        rest: BinaryIO,
        client: str = "",
        name: str = "video",
        sent_as: str = "upload",
    ) -> VideoJob:
        """Queue a video (its first bytes, then a stream of the others, copied to disk in
        chunks: a burst of large uploads costs no memory); QueueFull when the queue or the
        client's share of it is full (nothing is then kept), so one client cannot keep
        everyone else's videos out.

        A video that is unreadable, over the caps (size, length) or without a decodable
        frame is refused here, from its header and first frame, with a FerkitError (a 400)
        rather than a job that fails later.
        """
        with self.lock:  # before the upload is written: a refusal costs nothing
            self._check_room(client)
        job = VideoJob(
            secrets.token_urlsafe(12), self.root / secrets.token_hex(8), client, name, sent_as
        )
        job.folder.mkdir(mode=0o700)
        try:
            with open(job.upload, "wb") as fh:
                fh.write(head)
                shutil.copyfileobj(rest, fh, COPY_CHUNK)
            check_decodes(job.upload)
            with self.lock:
                self._check_room(client)  # again: others may have sent videos meanwhile
                self.jobs[job.id] = job  # known before the worker can pick it up
                self.pending.put_nowait(job)  # only submit puts, under the lock: never full
            return job
        except BaseException as err:  # a refusal, a bad video, a client gone mid-upload
            shutil.rmtree(job.folder, ignore_errors=True)
            if isinstance(err, FerkitError):
                raise FerkitError(job.public(err)) from None
            raise

    def _check_room(self, client: str) -> None:
        """QueueFull when the queue, or `client`'s share of jobs queued or running, is full
        (lock held)."""
        if self.pending.full():
            raise QueueFull("too many video jobs in progress; try again later")
        if not self.per_client:
            return
        active = sum(
            j.client == client and j.status in ("queued", "running") for j in self.jobs.values()
        )
        if active >= self.per_client:
            raise QueueFull(
                f"you have {active} video jobs in progress (the most from one address); "
                "wait for one to finish, or cancel one (DELETE /api/videos/ID)"
            )

    def get(self, job_id: str) -> VideoJob | None:
        self.cleanup()  # an expired job is gone at once, not at the next tick of the timer
        with self.lock:
            return self.jobs.get(job_id)

    def delete(self, job_id: str) -> bool:
        """Cancel a job (a running one stops at its next frame) and delete its files."""
        with self.lock:
            job = self.jobs.pop(job_id, None)
            if job is None:
                return False
            job.cancelled.set()
            running = job.status == "running"
        if not running:  # the worker deletes a running job's folder when it stops
            shutil.rmtree(job.folder, ignore_errors=True)
        return True

    def cleanup(self) -> None:
        """Forget finished jobs older than the time to live, and delete their files."""
        now = time.time()
        with self.lock:
            old = [
                j for j in self.jobs.values() if j.finished_at and now - j.finished_at > self.ttl_s
            ]
            for job in old:
                del self.jobs[job.id]
        for job in old:
            shutil.rmtree(job.folder, ignore_errors=True)

    def _sweep(self) -> None:
        interval = max(0.2, min(60.0, self.ttl_s / 2))
        while not self.stopping.wait(interval):
            self.cleanup()

    def _work(self) -> None:
        while not self.stopping.is_set():
            job = self.pending.get()
            if job is None or self.stopping.is_set():
                break
            with self.lock:
                if job.cancelled.is_set():
                    continue
                job.status = "running"
            self._run(job)

    def _run(self, job: VideoJob) -> None:
        current_id.set(f"job-{job.id}")  # every line logged while it runs names the job
        log.info("processing")
        outputs = VideoOutputs(*(job.folder / name for name in OUTPUTS))
        try:
            job.summary = process_video(
                job.upload,
                outputs,
                self.pipeline.stream(),
                progress=self._progress(job),
                show_bar=False,
                name=job.sent_as,
            )
            job.status, job.progress = "done", 1.0
        except _Stopped as stop:
            job.status, job.error = "failed", str(stop)
        except FerkitError as err:
            job.status = "failed"
            job.error = job.public(err)
        except Exception as err:  # a worker must survive any one bad video
            job.status, job.error = "failed", f"processing failed ({type(err).__name__})"
            log.exception("processing failed")  # the whole story for the operator
        finally:
            job.upload.unlink(missing_ok=True)
            job.finished_at = time.time()
            log.info("%s%s", job.status, f": {job.error}" if job.error else "")
            current_id.set("-")
            job.finished.set()
            if job.cancelled.is_set():
                shutil.rmtree(job.folder, ignore_errors=True)

    def _progress(self, job: VideoJob) -> Callable[[float], None]:
        """The job's progress, called after every frame: also where it stops when the server
        stops, the job is deleted, or it runs over the time cap."""
        deadline = time.monotonic() + self.max_job_s

        def progress(value: float) -> None:
            job.progress = value
            if self.stopping.is_set():
                raise _Stopped("the server stopped before the video was done")
            if job.cancelled.is_set():
                raise _Stopped("deleted")
            if time.monotonic() > deadline:
                raise _Stopped(
                    f"took over {self.max_job_s:.0f} s, the limit for one video "
                    "(send a shorter or smaller clip)"
                )

        return progress
