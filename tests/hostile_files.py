"""Hostile media made in code, for tests/test_hostile_media.py and bench/hostile_clients.py:
each is small on disk and costly to a decoder that trusts it."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import av
import numpy as np
from PIL import Image


def many_streams_video(path: Path, streams: int, size: tuple[int, int] = (4096, 2304)) -> Path:
    """A 64x64 H.264 video with `streams` - 1 more video streams of `size` (black frames,
    a few KB each): only the first is shown by players, but FFmpeg's probe decodes them all."""
    with av.open(str(path), "w", format="mp4") as out:
        encoders = []
        for n in range(streams):
            encoder = out.add_stream("libx264", rate=25)
            encoder.width, encoder.height = (64, 64) if n == 0 else size
            encoder.pix_fmt, encoder.options = "yuv420p", {"preset": "ultrafast"}
            encoders.append(encoder)
        for encoder in encoders:
            black = np.zeros((encoder.height, encoder.width, 3), np.uint8)
            out.mux(encoder.encode(av.VideoFrame.from_ndarray(black, format="rgb24")))
        for encoder in encoders:
            out.mux(encoder.encode())
    return path


def endless_matroska(path: Path, frames: int, side: int = 16) -> Path:
    """A Matroska file of `frames` tiny frames whose header declares no duration (written to
    a pipe-like stream, so the muxer cannot go back to fill it in)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska", options={"live": "1"}) as out:
        encoder = out.add_stream("libx264", rate=25)
        encoder.width = encoder.height = side
        encoder.pix_fmt, encoder.options = "yuv420p", {"preset": "ultrafast"}
        black = np.zeros((side, side, 3), np.uint8)
        for _ in range(frames):
            out.mux(encoder.encode(av.VideoFrame.from_ndarray(black, format="rgb24")))
        out.mux(encoder.encode())
    path.write_bytes(buffer.getvalue())
    return path


def _jpeg(size: tuple[int, int], progressive: bool = False) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (128, 128, 128)).save(buffer, "JPEG", progressive=progressive)
    return buffer.getvalue()


def empty_markers_jpeg(markers: int) -> bytes:
    """A small JPEG whose header is padded with `markers` empty APP0 segments (4 bytes each)."""
    photo = _jpeg((64, 64))
    return photo[:2] + b"\xff\xe0\x00\x02" * markers + photo[2:]


def many_scans_jpeg(scans: int, size: tuple[int, int] = (3000, 2000)) -> bytes:
    """A progressive JPEG of a flat picture with its last scan (a few bytes) repeated until
    it has `scans` scans: each costs the decoder a pass over the whole picture."""
    photo = _jpeg(size, progressive=True)
    last = photo.rindex(b"\xff\xda")
    extra = scans - photo.count(b"\xff\xda")
    return photo[:-2] + photo[last:-2] * max(0, extra) + b"\xff\xd9"


def tiff16_rgba(side: int = 4600) -> bytes:
    """A 16-bit RGBA TIFF of `side` x `side` black pixels, deflated to a few hundred KB
    (PIL reads its mode as plain RGBA; OpenCV decodes 8 bytes a pixel)."""
    import zlib

    row = bytes(side * 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    tags = [  # (tag, type, count, value): SHORT=3, LONG=4
        (256, 4, 1, side), (257, 4, 1, side), (258, 3, 4, 0), (259, 3, 1, 8),
        (262, 3, 1, 2), (273, 4, 1, 8), (277, 3, 1, 4), (278, 4, 1, side),
        (279, 4, 1, len(body)), (338, 3, 1, 2),
    ]  # fmt: skip
    ifd_at = 8 + len(body)
    bits_at = ifd_at + 2 + 12 * len(tags) + 4  # BitsPerSample's 4 values, after the IFD
    ifd = struct.pack("<H", len(tags))
    for tag, kind, count, value in tags:
        value = bits_at if tag == 258 else value
        packed = (
            struct.pack("<I", value) if kind == 4 or count > 1 else struct.pack("<HH", value, 0)
        )
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    ifd += b"\x00\x00\x00\x00" + struct.pack("<4H", 16, 16, 16, 16)
    return b"II*\x00" + struct.pack("<I", ifd_at) + body + ifd
