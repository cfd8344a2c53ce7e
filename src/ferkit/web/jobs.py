"""Video jobs: random ids, a bounded queue, one worker, outputs cleaned up after a while.

Uploads and outputs live in a private folder under server-chosen names; a user's file
name is never used as a path.
"""

from __future__ import annotations

import atexit
import queue
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ferkit.errors import FerkitError
from ferkit.pipeline import Pipeline
from ferkit.video import VideoOutputs, process_video

OUTPUTS = {"video.mp4": "video", "frames.csv": "csv", "summary.json": "json", "chart.png": "chart"}


@dataclass
class Job:
    id: str
    folder: Path
    status: str = "queued"  # queued, running, done, failed
    progress: float = 0.0
    error: str | None = None
    summary: dict | None = None
    finished_at: float | None = None
    created_at: float = field(default_factory=time.time)
    finished: threading.Event = field(default_factory=threading.Event)

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


class _Stopped(Exception):
    pass


class JobQueue:
    """The video jobs of one app: a bounded queue, one worker thread, expiry of old results."""

    def __init__(
        self, root: str | Path, pipeline: Pipeline, max_jobs: int = 4, ttl_s: float = 3600
    ):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.pipeline, self.ttl_s = pipeline, ttl_s
        self.jobs: dict[str, Job] = {}
        self.pending: queue.Queue[Job | None] = queue.Queue(maxsize=max_jobs)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.worker = threading.Thread(target=self._work, daemon=True, name="ferkit-video-jobs")
        self.worker.start()
        atexit.register(self.shutdown)

    def shutdown(self, timeout: float = 30) -> None:
        """Stop the worker between two frames (the encoder must not die mid-write at exit)."""
        self.stopping.set()
        try:
            self.pending.put_nowait(None)
        except queue.Full:
            pass
        self.worker.join(timeout)

    def submit(self, data: bytes) -> Job | None:
        """Queue a video; None when the queue is full."""
        self.cleanup()
        job = Job(secrets.token_urlsafe(12), self.root / secrets.token_hex(8))
        job.folder.mkdir(mode=0o700)
        (job.folder / "upload.bin").write_bytes(data)
        with self.lock:
            self.jobs[job.id] = job  # known before the worker can pick it up
        try:
            self.pending.put_nowait(job)
        except queue.Full:
            with self.lock:
                del self.jobs[job.id]
            shutil.rmtree(job.folder, ignore_errors=True)
            return None
        return job

    def get(self, job_id: str) -> Job | None:
        self.cleanup()
        with self.lock:
            return self.jobs.get(job_id)

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

    def _work(self) -> None:
        while not self.stopping.is_set():
            job = self.pending.get()
            if job is None or self.stopping.is_set():
                break
            job.status = "running"
            outputs = VideoOutputs(*(job.folder / name for name in OUTPUTS))
            try:
                job.summary = process_video(
                    job.folder / "upload.bin",
                    outputs,
                    self.pipeline.for_stream(),
                    progress=lambda p, job=job: self._progress(job, p),
                    show_bar=False,
                )
                job.summary["video"] = "upload"
                job.status, job.progress = "done", 1.0
            except _Stopped:
                job.status, job.error = "failed", "the server stopped"
            except FerkitError as err:
                job.status, job.error = (
                    "failed",
                    str(err).replace(str(job.folder / "upload.bin"), "upload"),
                )
            except Exception as err:  # a worker must survive any one bad video
                job.status, job.error = "failed", f"processing failed ({type(err).__name__})"
            finally:
                (job.folder / "upload.bin").unlink(missing_ok=True)
                job.finished_at = time.time()
                job.finished.set()

    def _progress(self, job: Job, value: float) -> None:
        if self.stopping.is_set():
            raise _Stopped
        job.progress = value
