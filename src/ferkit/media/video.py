"""Video decoding under budgets: the one place where a video file is opened and decoded.

A file is refused, with the limit in the message, before a frame is decoded when its
headers show too many streams or a stream over the resolution cap, and while decoding when
a frame grows past the cap or the video runs past the duration or frame cap (a Matroska
file may declare no duration at all). PyAV (FFmpeg) decodes; `to_bgr` converts with OpenCV.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from ferkit.errors import FerkitError
from ferkit.files import regular_file
from ferkit.media.images import SNIFF_BYTES, sniff

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


def open_video(path: Path, long: bool = False) -> av.container.InputContainer:
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


def check_decodes(path: Path) -> None:
    """`open_video`'s checks, then its first frame decoded: a header with no frame data is
    refused now rather than as a job that fails later."""
    container = open_video(path)
    try:
        for _ in decoded_frames(container, Path(path), None, None):
            return
    finally:
        container.close()
    raise FerkitError(f"{path}: the video has no decodable frames")


def frame_range(
    path: Path, start: int = 0, stop: int | None = None
) -> Iterator[tuple[int, float, np.ndarray]]:
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
        for frame in decoded_frames(container, Path(path), None, None, capped=False):
            n = n + 1 if frame.pts is None else round((frame.pts - origin) * base * rate)
            if stop is not None and n >= stop:
                break
            if n >= start:
                yield n, frame_seconds(frame, n, rate), to_bgr(frame)
    finally:
        container.close()


def frame_seconds(frame: av.VideoFrame, n: int, rate: Fraction) -> float:
    """The frame's time stamp, or its place at the nominal rate when it has none."""
    return float(frame.time) if frame.time is not None else n / float(rate)


def to_bgr(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as BGR. The usual yuv420p is converted by OpenCV (0.2 ms a 640x480
    frame against 2.2 ms for PyAV's own conversion); other formats by PyAV."""
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2BGR_I420)
    return frame.to_ndarray(format="bgr24")


def decoded_frames(
    container: av.container.InputContainer,
    src: Path,
    audio: av.audio.stream.AudioStream | None,
    on_audio: Callable[[av.Packet], None] | None,
    capped: bool = True,
) -> Iterator[av.VideoFrame]:
    """The decoded video frames; packets of the `audio` stream (None: no audio is read) go
    to `on_audio`. A frame
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
