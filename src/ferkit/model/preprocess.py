"""Turn face crops of any size and colour into the model's input, as in training."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ferkit.errors import FerkitError
from ferkit.labels import IMAGE_SIZE


def to_uint8(image: np.ndarray) -> np.ndarray:
    """8 bits a channel: 16-bit PNGs keep their top byte, floats are clipped to 0..255."""
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8:
        return np.clip(image, 0, 255).astype(np.uint8)
    return image


def _channels(image: np.ndarray) -> int:
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4)):
        return 1 if image.ndim == 2 else image.shape[2]
    raise FerkitError(f"expected a gray, BGR or BGRA image, got shape {image.shape}")


def to_gray8(image: np.ndarray) -> np.ndarray:
    """Gray uint8 from gray, BGR, BGRA, 16-bit or float images."""
    image = to_uint8(image)
    conversion = {1: None, 3: cv2.COLOR_BGR2GRAY, 4: cv2.COLOR_BGRA2GRAY}[_channels(image)]
    return image.reshape(image.shape[:2]) if conversion is None else cv2.cvtColor(image, conversion)


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """BGR uint8 from gray, BGRA, 16-bit or float images (a BGR uint8 image comes back as is)."""
    image = to_uint8(image)
    conversion = {1: cv2.COLOR_GRAY2BGR, 3: None, 4: cv2.COLOR_BGRA2BGR}[_channels(image)]
    return image if conversion is None else cv2.cvtColor(image, conversion)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """The Gaussian blur used to match train/'s blur (reflected borders, as in training)."""
    if sigma <= 0:
        return image
    return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)


def sharpness(images: np.ndarray) -> np.ndarray:
    """Each image's variance of the Laplacian: blur like train/'s lowers it by orders of
    magnitude (train/ faces ~6, sharp ones ~1,000-4,000)."""
    return np.array([cv2.Laplacian(img, cv2.CV_64F).var() for img in images])


def to_input(faces: Sequence[np.ndarray] | np.ndarray, blur_sigma: float = 0.0) -> np.ndarray:
    """A float32 batch (N, 48, 48, 1) with values 0..255; the model rescales by itself."""
    batch = np.empty((len(faces), IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.float32)
    for i, face in enumerate(faces):
        gray = to_gray8(np.asarray(face))
        if gray.shape != (IMAGE_SIZE, IMAGE_SIZE):
            shrink = gray.shape[0] > IMAGE_SIZE
            interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            gray = cv2.resize(gray, (IMAGE_SIZE, IMAGE_SIZE), interpolation=interp)
        batch[i, ..., 0] = blur(gray, blur_sigma)
    return batch
