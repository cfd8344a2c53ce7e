"""Turn face crops of any size and colour into the model's input, as in training."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ferkit.errors import FerkitError
from ferkit.labels import IMAGE_SIZE


def to_gray8(image: np.ndarray) -> np.ndarray:
    """Gray uint8 from gray, BGR, BGRA, 16-bit or float images."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    elif image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim != 2:
        raise FerkitError(f"expected a gray, BGR or BGRA image, got shape {image.shape}")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """The Gaussian blur used to match train/'s blur (reflected borders, as in training)."""
    if sigma <= 0:
        return image
    return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)


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
