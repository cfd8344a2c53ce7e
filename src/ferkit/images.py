"""Read user images and sniff file types by content, never by name."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ferkit.errors import FerkitError
from ferkit.preprocess import to_bgr8

MAX_PIXELS = 40_000_000  # larger is a decompression bomb, not a photo

IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")


def sniff(data: bytes) -> str | None:
    """'image', 'video' or None from the first bytes."""
    if data[4:8] == b"ftyp" or data[:4] in (b"\x1aE\xdf\xa3", b"OggS"):  # MP4/MOV, WebM, Ogg
        return "video"
    if data[:4] == b"RIFF":
        return "image" if data[8:12] == b"WEBP" else "video"
    if any(data.startswith(m) for m in IMAGE_MAGIC):
        return "image"
    return None


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """BGR uint8 from an upload or file; the size is checked before any pixel is decoded."""
    if not data:
        raise FerkitError(f"{name}: empty file")
    if sniff(data) != "image":
        raise FerkitError(f"{name}: not an image (JPEG, PNG, BMP, WebP or TIFF expected)")
    width, height = _header_size(data, name)
    if width * height > MAX_PIXELS:
        raise FerkitError(
            f"{name}: image too large: {width}x{height} pixels (limit {MAX_PIXELS:,})"
        )
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise FerkitError(f"{name}: corrupt or too large an image (could not decode it)")
    return to_bgr8(image)


def _header_size(data: bytes, name: str) -> tuple[int, int]:
    """Width and height from the file header alone, before anything is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return image.size
    except Image.DecompressionBombError:
        return MAX_PIXELS, 2  # far over any limit
    except Exception as err:
        raise FerkitError(f"{name}: corrupt image ({err})") from err


def read_image(path: Path) -> np.ndarray:
    """`decode_image` for a file on disk, with errors that name the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise FerkitError(f"{path}: cannot read ({err.strerror})") from err
    return decode_image(data, str(path))
