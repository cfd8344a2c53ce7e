"""ferkit: facial expression recognition on FER2013, from data to a web app."""

import os

# Cap what OpenCV will decode before it allocates: a decompression bomb is refused, not
# unpacked. It must be set before OpenCV first reads an image.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(40_000_000))

from ferkit.labels import EMOTIONS  # noqa: E402

__all__ = ["EMOTIONS"]
__version__ = "0.1.0"
