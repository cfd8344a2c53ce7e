"""Annotate a saved video: H.264 MP4 out (plays in browsers), per-frame CSV, summary, chart.

Frames come from `ferkit.media.video` (decoding under budgets); PyAV (FFmpeg) encodes the
H.264 copy in a second thread. Every output is written under a temporary name
in the destination folder and renamed only when complete, so a crash or Ctrl-C never
leaves half a file under the final name.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from tqdm import tqdm

from ferkit.errors import FerkitError
from ferkit.files import temp_path, write_csv, write_json
from ferkit.jobs.rows import FIELDS, face_rows, summarise
from ferkit.labels import EMOTIONS
from ferkit.media.video import (
    decoded_frames,
    frame_seconds,
    open_video,
    to_bgr,
)
from ferkit.vision.face import Face
from ferkit.vision.overlay import draw
from ferkit.vision.pipeline import Stream

AUDIO_IN_MP4 = {"aac", "mp3", "opus", "ac3", "eac3", "alac", "flac"}


@dataclass
class VideoOutputs:
    video: Path
    csv: Path | None = None
    json: Path | None = None
    chart: Path | None = None


def process_video(
    src: Path,
    outputs: VideoOutputs,
    stream: Stream,
    every: int = 1,
    progress: Callable[[float], None] | None = None,
    show_bar: bool = True,
    rows: list | None = None,
    name: str | None = None,
) -> dict:
    """Annotate every frame (classify every `every`-th) with a `Stream`; returns the summary.

    `stream` (a `Pipeline.stream()`) numbers the faces, smooths their scores and leaves out
    false faces, so the video, the CSV, the summary and the chart all show the same tracks.
    `progress` is called after every frame with the share done (0.0 when the length is not
    known); an exception raised there stops the work and leaves no output. `rows`, when
    given, receives the CSV rows (for callers that keep them, like `ferkit batch`). `name` is
    the video's name in the summary (the file's own name by default).
    """
    if every < 1:
        raise FerkitError(f"--every must be 1 or more, got {every}")
    src = Path(src)
    finals = [p for p in (outputs.video, outputs.csv, outputs.json, outputs.chart) if p is not None]
    tmps = {p: temp_path(p) for p in finals}
    try:
        summary = _run(src, outputs, tmps, stream, every, progress, show_bar, rows, name)
        for final, tmp in tmps.items():
            os.replace(tmp, final)
        return summary
    except OSError as err:  # a full disk: name the output, not its temporary file
        final = next((f for f, t in tmps.items() if err.filename in (str(t), t)), None)
        if final is None:
            raise
        raise FerkitError(f"{final}: cannot write ({err.strerror})") from err
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)


def _run(src, outputs, tmps, stream, every, progress, show_bar, rows, name) -> dict:
    container = open_video(src)
    rows = [] if rows is None else rows
    times, mean_scores = [], []
    try:
        video = container.streams.video[0]
        rate = video.average_rate or Fraction(30)
        total = video.frames or 0
        audio = next(
            (a for a in container.streams.audio if a.codec_context.name in AUDIO_IN_MP4), None
        )
        writer = _Writer(tmps[outputs.video], video, rate, audio)
        try:
            decoded = (
                (n, frame_seconds(frame, n, rate), to_bgr(frame))
                for n, frame in enumerate(decoded_frames(container, src, audio, writer.put))
            )
            bar = tqdm(total=total or None, unit="frame", disable=not show_bar, desc=src.name)
            with bar:
                for n, t, image, faces in stream.frames(decoded, every):
                    rows += face_rows(n, t, faces)
                    times.append(t)
                    mean_scores.append(_mean_scores(faces))
                    writer.put(draw(image, faces)[: writer.height, : writer.width])
                    bar.update(1)
                    if progress is not None:
                        progress(min(1.0, (n + 1) / total) if total else 0.0)
            if not times:
                raise FerkitError(f"{src}: the video has no decodable frames")
        except BaseException:
            writer.close(check=False)  # what failed first is what the user should hear
            raise
        writer.close()
    finally:
        container.close()
    summary = summarise({"video": name or src.name, "frames": len(times), "fps": float(rate)}, rows)
    if outputs.csv:
        write_csv(tmps[outputs.csv], FIELDS, rows)
    if outputs.json:
        write_json(tmps[outputs.json], summary)
    if outputs.chart:
        from ferkit.plots import emotions_over_time

        emotions_over_time(np.array(times), np.array(mean_scores), tmps[outputs.chart])
    return summary


class _Writer:
    """Encodes and muxes in a thread of its own, so H.264 encoding overlaps recognition.

    Takes annotated BGR frames and audio packets (copied untouched) in order.
    """

    def __init__(self, path: Path, stream, rate, audio):
        self.out = av.open(str(path), "w", format="mp4")
        # H.264 in yuv420p (what browsers play), same size (rounded down to even) and rate
        self.enc = self.out.add_stream("libx264", rate=rate)
        self.width = self.enc.width = stream.codec_context.width // 2 * 2
        self.height = self.enc.height = stream.codec_context.height // 2 * 2
        self.enc.pix_fmt = "yuv420p"
        self.enc.options = {"crf": "23", "preset": "superfast"}
        self.audio = self.out.add_stream_from_template(audio) if audio is not None else None
        self.queue: queue.Queue = queue.Queue(maxsize=8)
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="ferkit-encoder")
        self.thread.start()

    def put(self, item) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def close(self, check: bool = True) -> None:
        """Flush the encoder and close the file; re-raise what went wrong in the thread."""
        self.queue.put(None)
        self.thread.join()
        try:
            self.out.close()
        except av.error.FFmpegError:
            if check:
                raise
        if check and self.error is not None:
            raise self.error

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:  # after a failure, only drain the queue
                self._write(item)
        if self.error is None:
            self._write(None)

    def _write(self, item) -> None:
        try:
            if item is None:
                self.out.mux(self.enc.encode())
            elif isinstance(item, np.ndarray):
                yuv = cv2.cvtColor(item, cv2.COLOR_BGR2YUV_I420)  # 20x faster than PyAV's
                self.out.mux(self.enc.encode(av.VideoFrame.from_ndarray(yuv, format="yuv420p")))
            else:
                item.stream = self.audio
                self.out.mux(item)
        except Exception as err:  # handed to the reading thread by put() and close()
            self.error = err


def _mean_scores(faces: list[Face]) -> np.ndarray:
    if not faces:
        return np.full(len(EMOTIONS), np.nan)
    return np.mean([f.scores for f in faces], axis=0)
