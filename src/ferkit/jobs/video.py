"""Annotate a saved video: H.264 MP4 out (plays in browsers), per-frame CSV, summary, chart.

Decoding and encoding use PyAV (FFmpeg). Every output is written under a temporary name
in the destination folder and renamed only when complete, so a crash or Ctrl-C never
leaves half a file under the final name.
"""

from __future__ import annotations

import json
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
from ferkit.files import regular_file, temp_path, write_csv
from ferkit.labels import EMOTIONS
from ferkit.media.images import SNIFF_BYTES, sniff
from ferkit.vision.face import CSV_FIELDS as FACE_FIELDS
from ferkit.vision.face import Face
from ferkit.vision.overlay import draw
from ferkit.vision.stream import Stream

AUDIO_IN_MP4 = {"aac", "mp3", "opus", "ac3", "eac3", "alac", "flac"}
CSV_FIELDS = ["frame", "time_s", *FACE_FIELDS]
COLUMN = {f: i for i, f in enumerate(CSV_FIELDS)}


@dataclass
class VideoOutputs:
    video: Path
    csv: Path | None = None
    json: Path | None = None
    chart: Path | None = None


# What one video may cost: frames of at most 1080p (in either orientation; each decoded,
# drawn and encoded frame is held a few times over), and at most 10 minutes or 18,000 frames.
MAX_VIDEO_PIXELS = 1920 * 1088
MAX_VIDEO_SECONDS = 600
MAX_VIDEO_FRAMES = 18_000


def _check_frame_size(path: Path, width: int, height: int, what: str = "video of") -> None:
    """The resolution cap, on the header's size and on each decoded frame's (a stream may
    change size midway, past what its header declared)."""
    if width * height > MAX_VIDEO_PIXELS:
        raise FerkitError(
            f"{path}: {what} {width}x{height} is too large (limit 1920x1080 pixels or the same "
            "area in another shape; scale it down)"
        )


# A container may hold many streams, and FFmpeg's probe decodes a frame of each to learn its
# format: 100 hidden 4096x2304 streams in a 274 KB file cost 3.8 GB. Every stream is counted
# and sized from the headers alone before that probe runs.
MAX_STREAMS = 16  # a phone's video has 2 to 6 (video, audio, timed metadata)
# of them video: MPEG-TS headers do not give a stream's size, so each may be probed at up to
# ~45 MB (4096x2304): 16 such streams held 720 MB
MAX_VIDEO_STREAMS = 4
_HEADERS_ONLY = {"probesize": "32", "analyzeduration": "0"}  # read headers, decode nothing


def open_video(path: Path, long: bool = False):
    """The PyAV container, or a FerkitError that names the file instead of an FFmpeg trace.

    Videos over the caps (streams, resolution of any stream, duration, frames) are refused
    here, before any frame is decoded, with the limit in the message; `long` lifts the
    duration and frame caps for `ferkit batch`, which reads long videos in chunks
    (`frame_range`).
    """
    if Path(path).is_dir():
        raise FerkitError(f"{path}: is a folder, not a video (`ferkit batch` takes folders)")
    regular_file(path)  # missing, or a pipe or device that would never end

    with open(path, "rb") as fh:
        if sniff(fh.read(SNIFF_BYTES)) == "image":
            raise FerkitError(f"{path}: a photo, not a video (use 'ferkit predict' for photos)")
    with _open(path, _HEADERS_ONLY) as headers:  # the stream budget, before FFmpeg's probe
        _check_streams(path, headers)
    # the probe may still find streams the headers did not list (MPEG-TS): at most the cap
    container = _open(path, {"max_streams": str(MAX_STREAMS)})
    try:
        if not container.streams.video:
            raise FerkitError(f"{path}: has no video stream")
        if not container.streams.video[0].codec_context.width:
            raise FerkitError(f"{path}: not a readable video (no frame size)")
        _check_streams(path, container)
        _check_caps(path, container, long)
    except FerkitError:
        container.close()
        raise
    return container


def _open(path: Path, options: dict):
    try:
        return av.open(str(path), options=options)
    except (av.error.FFmpegError, ValueError) as err:  # FFmpeg's reason, without its errno
        why = getattr(err, "strerror", None) or str(err)
        raise FerkitError(f"{path}: not a readable video ({why})") from err


def _check_streams(path: Path, container) -> None:
    """At most MAX_STREAMS streams, MAX_VIDEO_STREAMS of them video, and none of these over
    the resolution cap (only the first is processed, but FFmpeg's probe decodes them all)."""
    if len(container.streams) > MAX_STREAMS:
        raise FerkitError(
            f"{path}: has {len(container.streams)} streams (limit {MAX_STREAMS}; keep the "
            "video and its sound)"
        )
    if len(container.streams.video) > MAX_VIDEO_STREAMS:
        raise FerkitError(
            f"{path}: has {len(container.streams.video)} video streams (limit "
            f"{MAX_VIDEO_STREAMS}; keep the one to analyse)"
        )
    for n, stream in enumerate(container.streams.video):
        what = "video of" if n == 0 else f"its video stream #{n} of"
        _check_frame_size(path, stream.codec_context.width, stream.codec_context.height, what)


def _check_caps(path: Path, container, long: bool = False) -> None:
    stream = container.streams.video[0]
    if long:
        return
    seconds = container.duration / av.time_base if container.duration else 0.0
    if stream.duration and stream.time_base:
        seconds = max(seconds, float(stream.duration * stream.time_base))
    _check_length(path, seconds, stream.frames)


def _check_length(path: Path, seconds: float, frames: int) -> None:
    """The duration and frame caps, on the header's figures and again while decoding (a
    file may declare no duration, or less than it holds)."""
    if seconds > MAX_VIDEO_SECONDS:
        raise FerkitError(
            f"{path}: video too long: {seconds:.0f} s (limit {MAX_VIDEO_SECONDS} s; cut it)"
        )
    if frames > MAX_VIDEO_FRAMES:
        raise FerkitError(
            f"{path}: too many frames: {frames:,} (limit {MAX_VIDEO_FRAMES:,}; cut it)"
        )


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
                (n, _seconds(frame, n, rate), to_bgr(frame))
                for n, frame in enumerate(_frames(container, src, audio, writer.put))
            )
            bar = tqdm(total=total or None, unit="frame", disable=not show_bar, desc=src.name)
            with bar:
                for n, t, image, faces in stream.frames(decoded, every):
                    rows += csv_rows(n, t, faces)
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
        write_csv(tmps[outputs.csv], CSV_FIELDS, rows)
    if outputs.json:
        tmps[outputs.json].write_text(json.dumps(summary, indent=2) + "\n")
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


def check_decodes(path: Path) -> None:
    """`open_video`'s checks, then its first frame decoded: a header with no frame data is
    refused now rather than as a job that fails later."""
    container = open_video(path)
    try:
        for _ in _frames(container, Path(path), None, None):
            return
    finally:
        container.close()
    raise FerkitError(f"{path}: the video has no decodable frames")


def frame_range(path: Path, start: int = 0, stop: int | None = None):
    """(index, time_s, BGR frame) for frames [start, stop) of a video of any length.

    Decoding starts at the keyframe before `start` (a seek, not a read from the top). The
    index comes from the frame's timestamp, so every range of a file numbers its frames the
    same way, whichever keyframe it started from.
    """
    container = open_video(path, long=True)
    try:
        video = container.streams.video[0]
        rate = video.average_rate or Fraction(30)
        base = video.time_base or Fraction(1, 90000)
        origin = video.start_time or 0
        if start > 0:
            container.seek(int(origin + start / rate / base), stream=video, backward=True)
        n = -1
        for frame in _frames(container, Path(path), None, None, capped=False):
            n = n + 1 if frame.pts is None else round((frame.pts - origin) * base * rate)
            if stop is not None and n >= stop:
                break
            if n >= start:
                yield n, _seconds(frame, n, rate), to_bgr(frame)
    finally:
        container.close()


def _seconds(frame: av.VideoFrame, n: int, rate: Fraction) -> float:
    """The frame's time stamp, or its place at the nominal rate when it has none."""
    return float(frame.time) if frame.time is not None else n / float(rate)


def to_bgr(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as BGR. The usual yuv420p is converted by OpenCV (0.2 ms a 640x480
    frame against 2.2 ms for PyAV's own conversion); other formats by PyAV."""
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2BGR_I420)
    return frame.to_ndarray(format="bgr24")


def _frames(container, src: Path, audio, on_audio: Callable, capped: bool = True):
    """The decoded video frames; packets of the `audio` stream go to `on_audio`. A frame
    larger than the cap is refused even when the header declared less (a stream may change
    size midway); with `capped`, so is the frame past the duration or frame cap (a
    Matroska file may declare no duration at all)."""
    video = container.streams.video[0]
    count, first = 0, None
    try:
        for packet in container.demux(*[s for s in (video, audio) if s is not None]):
            if packet.stream is video:
                for frame in packet.decode():
                    _check_frame_size(src, frame.width, frame.height, "a frame of")
                    count += 1
                    if capped:
                        first = frame.time if first is None else first
                        seconds = frame.time - first if frame.time is not None else 0.0
                        _check_length(src, seconds, count)
                    yield frame
            elif packet.dts is not None:
                on_audio(packet)
    except av.error.FFmpegError as err:
        raise FerkitError(f"{src}: the video is damaged and could not be decoded ({err})") from err


def csv_rows(n: int, t: float, faces: list[Face]) -> list[list]:
    """The CSV rows (CSV_FIELDS) of one frame's faces."""
    return [[n, round(t, 3), *face.csv_row()] for face in faces]


def _mean_scores(faces: list[Face]) -> np.ndarray:
    if not faces:
        return np.full(len(EMOTIONS), np.nan)
    return np.mean([f.scores for f in faces], axis=0)


def summarise(info: dict, rows: list[list]) -> dict:
    """Per face track: frames and seconds seen, first and last time, mean detection
    confidence, share of each emotion and the dominant one; `info` (video, frames, fps, ...)
    comes first. The one summary of `ferkit video --json` and `ferkit batch`."""
    tracks: dict[int, list[list]] = {}
    for r in rows:
        tracks.setdefault(r[COLUMN["face_id"]], []).append(r)
    fps = info.get("fps") or 0.0
    faces = {}
    for face_id, seen in sorted(tracks.items()):
        counts = dict.fromkeys(EMOTIONS, 0)
        for r in seen:
            counts[r[COLUMN["emotion"]]] += 1
        faces[str(face_id)] = {
            "frames": len(seen),
            "first_s": seen[0][COLUMN["time_s"]],
            "last_s": seen[-1][COLUMN["time_s"]],
            "duration_s": round(len(seen) / fps, 3) if fps else 0.0,
            "detection": round(sum(r[COLUMN["detection"]] for r in seen) / len(seen), 3),
            "share": {k: round(v / len(seen), 4) for k, v in counts.items()},
            "dominant": max(counts, key=counts.get),
        }
    return {**info, "faces": faces}
