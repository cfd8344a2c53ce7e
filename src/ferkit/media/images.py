"""Read user images within a memory budget and sniff file types by content, never by name.

A small file can declare a huge picture (a decompression bomb), so every size a file
declares is checked before a pixel is decoded: the picture itself and, for TIFF, each tile
the decoder will allocate. Large pictures share a budget of pixels in flight (decoded and
being recognised), so a burst of large uploads cannot add up. EXIF orientation is
applied, as phones expect.
"""

from __future__ import annotations

import io
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ferkit.errors import FerkitError
from ferkit.files import read_bounded

MAX_PIXELS = 40_000_000  # larger is a decompression bomb, not a photo
# Decoded samples a file may declare (width x height x channels x bytes a sample): a 40 MP
# 8-bit RGB photo fits; a 6300x6300 16-bit RGBA PNG (303 MB) does not.
MAX_DECODED_BYTES = 160 * 2**20
# Pictures of LARGE_PIXELS or more wait for a share of IN_FLIGHT_PIXELS (two of the largest
# at once): 8 uploads of 40 MP held 2.3 GB when they all ran at once. Smaller ones (live
# frames, most photos) never wait.
LARGE_PIXELS = 2_000_000
IN_FLIGHT_PIXELS = 2 * MAX_PIXELS

# A JPEG's markers cost the decoders work and memory each (PIL kept 35 bytes for every byte
# of empty APP markers), and each progressive scan a pass over the picture (2,000 scans of
# 17 bytes: 8 s of CPU for 6 MP). A photo has some 30 segments and 10 scans; 40 scans of a
# 40 MP picture took 1.0 s of CPU here (64: 2.2 s).
MAX_JPEG_SEGMENTS = 1000
MAX_JPEG_SCANS = 40
# A marker: 0xFF then a code, but not stuffing (0x00), a fill byte or a restart marker (RSTn
# repeat in the coded data of large photos)
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xff\xd0-\xd7]")
_JPEG_SOS, _JPEG_EOI = 0xDA, 0xD9
_JPEG_STANDALONE = {0x01, 0xD8}  # TEM, SOI: no length follows

IMAGE_MAGIC = (
    *(b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"RIFF", b"II*\x00", b"MM\x00*"),
    *(b"GIF87a", b"GIF89a"),  # its first frame
)
# TIFF tags: BitsPerSample, SamplesPerPixel, TileWidth, TileLength
_TIFF_BITS, _TIFF_SAMPLES = 258, 277
_TIFF_TILE_WIDTH, _TIFF_TILE_LENGTH = 322, 323


SNIFF_BYTES = 16  # what `sniff` needs of a file


def sniff(data: bytes) -> str | None:
    """'image', 'video' or None from the first SNIFF_BYTES bytes."""
    if data[4:8] == b"ftyp" or data[:4] in (b"\x1aE\xdf\xa3", b"OggS"):  # MP4/MOV, WebM, Ogg
        return "video"
    if data[:4] == b"RIFF":
        return "image" if data[8:12] == b"WEBP" else "video"
    if any(data.startswith(m) for m in IMAGE_MAGIC):
        return "image"
    return None


# What a photo or a video is called, for a file whose content cannot tell (`sniff_file`)
NAMED = {
    **dict.fromkeys((".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".webp", ".tif", ".tiff"), "image"),
    **dict.fromkeys((".gif", ".heic", ".heif", ".avif"), "image"),
    **dict.fromkeys((".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".ogv", ".ogg"), "video"),
}


def sniff_file(path: Path) -> str | None:
    """`sniff` of a file's first bytes, else what its name says: a photo that cannot be read
    or is cut short is still a photo, for its reader to report rather than a folder's scan
    to pass over as "not a photo"; None for a file that is neither."""
    try:
        with open(path, "rb") as fh:
            kind = sniff(fh.read(SNIFF_BYTES))
    except OSError:
        kind = None
    return kind or NAMED.get(Path(path).suffix.lower())


class _PixelBudget:
    """Pixels in flight across threads: a holder waits until its share fits (one always fits)."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self.cond = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        pixels = 0 if pixels < LARGE_PIXELS else min(pixels, self.limit)
        with self.cond:
            self.cond.wait_for(lambda: self.used + pixels <= self.limit)
            self.used += pixels
        try:
            yield
        finally:
            with self.cond:
                self.used -= pixels
                self.cond.notify_all()


_in_flight = _PixelBudget(IN_FLIGHT_PIXELS)


@contextmanager
def decoded(data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS) -> Iterator[np.ndarray]:
    """The picture as BGR uint8, upright (EXIF orientation applied), for the `with` block.

    Every declared size is checked before any pixel is decoded (`check_declared_size`); a
    large picture waits for its share of the pixel budget and holds it until the block
    ends, so the caller's work on it (recognition) is bounded too.
    """
    if not data:
        raise FerkitError(f"{name}: empty file")
    if sniff(data) != "image":
        raise FerkitError(f"{name}: not an image (JPEG, PNG, BMP, WebP, TIFF or GIF expected)")
    width, height = check_declared_size(data, name, max_pixels)
    with _in_flight.hold(width * height):
        try:  # IMREAD_COLOR: 8-bit BGR straight from the decoder, EXIF orientation applied
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        except cv2.error:
            image = None
        del data  # the file is not needed while the caller works on the picture
        if image is None or image.size == 0:
            raise FerkitError(f"{name}: corrupt image (could not decode it)")
        yield image


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """`decoded` for a caller that keeps the picture (the budget is held only to decode)."""
    with decoded(data, name) as image:
        return image


def check_declared_size(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """Refuse a file whose header (or a TIFF tile) declares more than the budget
    (`max_pixels` may lower the pixel cap: a live video frame is no 40 MP photo)."""
    if data.startswith(b"\xff\xd8"):
        check_jpeg_markers(data, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                samples, depth = _sample_layout(data, image)
                tiff = getattr(image, "tag_v2", None) if image.format == "TIFF" else None
                parts = _tiff_tile(tiff) if tiff is not None else []
    except Image.DecompressionBombError:
        raise FerkitError(f"{name}: image too large (limit {MAX_PIXELS:,} pixels)") from None
    except Exception as err:  # PIL's messages name its in-memory buffer: give our own
        raise FerkitError(f"{name}: corrupt image (its header could not be read)") from err
    _check_pixels(name, width, height, MAX_PIXELS)
    _check_decoded_bytes(name, [("image", width, height, samples * depth), *parts])
    _check_pixels(name, width, height, max_pixels)  # a caller's lower cap, after the budget's
    return width, height


def check_jpeg_markers(data: bytes, name: str) -> None:
    """Refuse a JPEG with more than MAX_JPEG_SEGMENTS markers or MAX_JPEG_SCANS scans.

    One walk from marker to marker: a segment's payload is skipped by its length, coded
    data by a regular expression (in C), so the cost is linear in the file's size and the
    Python steps are bounded by the limits, whatever the file holds."""
    at, segments, scans = 2, 0, 0
    while True:
        # before the first scan, bytes between segments (fill bytes, junk) are read one by
        # one by PIL's parser: each counts as a segment, and the search stops at the budget
        end = len(data) if scans else at + MAX_JPEG_SEGMENTS - segments + 2
        found = _JPEG_MARKER.search(data, at, end)
        if found is None and end >= len(data):
            return  # the end of the file (a truncated one is the decoders' to refuse)
        segments += 1 + (found.start() - at if found is not None and not scans else 0)
        if found is None or segments > MAX_JPEG_SEGMENTS:
            raise FerkitError(
                f"{name}: a JPEG with over {MAX_JPEG_SEGMENTS:,} markers or fill bytes (a "
                "photo has a few dozen markers): refused before decoding"
            )
        marker, at = data[found.start() + 1], found.end()
        if marker == _JPEG_EOI:
            return
        if marker in _JPEG_STANDALONE:
            continue
        if marker == _JPEG_SOS:
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise FerkitError(
                    f"{name}: a progressive JPEG with over {MAX_JPEG_SCANS} scans (a photo has "
                    "about 10): refused before decoding"
                )
        at += int.from_bytes(data[at : at + 2], "big")  # the length counts its own 2 bytes


def _check_pixels(name: str, width: int, height: int, cap: int) -> None:
    if width * height > cap:
        raise FerkitError(
            f"{name}: too large ({width}x{height} pixels; the limit is {cap:,} pixels)"
        )


def _check_decoded_bytes(name: str, parts: list[tuple[str, int, int, int]]) -> None:
    """Each buffer a decoder allocates (the image, a TIFF tile) within MAX_DECODED_BYTES."""
    for what, w, h, bytes_per_pixel in parts:
        if w * h * bytes_per_pixel > MAX_DECODED_BYTES:
            raise FerkitError(
                f"{name}: {what} too large to decode: {w}x{h} at {bytes_per_pixel} bytes a "
                f"pixel needs {w * h * bytes_per_pixel / 2**20:.0f} MB "
                f"(limit {MAX_DECODED_BYTES / 2**20:.0f} MB)"
            )


def _sample_layout(data: bytes, image: Image.Image) -> tuple[int, int]:
    """Channels and bytes a sample as stored: PIL reports a 16-bit RGBA PNG as 8-bit RGBA,
    and a 16-bit RGBA TIFF as RGBA too, which OpenCV decodes at 8 bytes a pixel."""
    if image.format == "PNG":  # IHDR: bit depth, colour type (gray, RGB, palette, GA, RGBA)
        channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(data[25], 4)
        return channels, 2 if data[24] == 16 else 1
    if image.format == "TIFF":
        samples, bits = _tiff_samples(image.tag_v2)
        return samples, max(1, -(-max(bits) // 8))
    return len(image.getbands()), 2 if "16" in image.mode or image.mode in ("I", "F") else 1


def _tiff_samples(tags) -> tuple[int, tuple[int, ...]]:
    """SamplesPerPixel and BitsPerSample (one figure, or one a sample) of a TIFF's tags."""
    bits = tags.get(_TIFF_BITS, (8,))
    bits = tuple(int(b) for b in (bits if isinstance(bits, tuple) else (bits,))) or (8,)
    return max(1, int(tags.get(_TIFF_SAMPLES, len(bits)))), bits


def _tiff_tile(tags) -> list[tuple[str, int, int, int]]:
    """The tile buffer a TIFF decoder allocates, which the image size does not bound."""
    if _TIFF_TILE_WIDTH not in tags and _TIFF_TILE_LENGTH not in tags:
        return []
    samples, bits = _tiff_samples(tags)
    bytes_per_pixel = max(1, sum(bits) // 8)
    tile = (int(tags.get(_TIFF_TILE_WIDTH, 0)), int(tags.get(_TIFF_TILE_LENGTH, 0)))
    # OpenCV may read a tile as RGBA, 4 bytes a pixel, whatever the file stores
    return [("TIFF tile", *tile, max(4, bytes_per_pixel, samples))]


def read_image(path: Path) -> np.ndarray:
    """`decode_image` for a file on disk, with errors that name the file."""
    return decode_image(read_bounded(path, MAX_DECODED_BYTES), str(path))
