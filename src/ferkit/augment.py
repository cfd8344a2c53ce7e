"""Training augmentation in Keras ops, so it runs in a tf.data map on the CPU and on a GPU alike.

The random draws come in as an array of uniforms (one row per image) rather than from a
seed inside the function: tf.data maps do not advance Keras seed generators, and a plain
array keeps the function pure and testable. Flip, shift, rotation and zoom are one affine
warp (chaining three warps would blur every image a little), then a random Gaussian blur
from a small bank of sigmas (train/ is blurred, cameras are sharp: the model should not
care), then brightness and contrast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

N_UNIFORMS = 9
BLUR_SIGMAS = (1.0, 2.0, 3.0, 4.0, 4.5)
_BLUR_RADIUS = 12


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True
    shift: float = 0.1  # fraction of the image size
    rotate: float = 15.0  # degrees
    zoom: float = 0.15
    brightness: float = 0.2  # fraction of the 0..255 range
    contrast: float = 0.3
    blur_prob: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)


def gaussian_kernel(sigma: float, radius: int = _BLUR_RADIUS) -> np.ndarray:
    """A normalised 1-D Gaussian: the blur is separable, two 1-D passes."""
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _affine_params(u, size: int, cfg: AugmentConfig):
    from keras import ops

    angle = (u[:, 0] * 2 - 1) * np.deg2rad(cfg.rotate)
    scale = 1 + (u[:, 1] * 2 - 1) * cfg.zoom
    tx = (u[:, 2] * 2 - 1) * cfg.shift * size
    ty = (u[:, 3] * 2 - 1) * cfg.shift * size
    flip = ops.where(u[:, 4] < 0.5, -1.0, 1.0) if cfg.flip else ops.ones_like(angle)
    cos, sin = ops.cos(angle) * scale, ops.sin(angle) * scale
    a0, a1, b0, b1 = cos * flip, -sin, sin * flip, cos
    c = (size - 1) / 2
    a2 = c - a0 * c - a1 * c + tx
    b2 = c - b0 * c - b1 * c + ty
    zero = ops.zeros_like(angle)
    return ops.stack([a0, a1, a2, b0, b1, b2, zero, zero], axis=1)


def blur(images, sigma: float):
    """Separable Gaussian blur with reflected borders (the same borders as OpenCV's default)."""
    from keras import ops

    r = _BLUR_RADIUS
    k = gaussian_kernel(sigma)
    padded = ops.pad(images, [[0, 0], [r, r], [r, r], [0, 0]], mode="reflect")
    out = ops.conv(padded, k.reshape(-1, 1, 1, 1), padding="valid")
    return ops.conv(out, k.reshape(1, -1, 1, 1), padding="valid")


def augment(images, uniforms, cfg: AugmentConfig = AugmentConfig()):
    """Augment a float batch (B, H, W, 1) in 0..255 using uniforms of shape (B, N_UNIFORMS)."""
    from keras import ops

    u = ops.cast(uniforms, "float32")
    x = ops.cast(images, "float32")
    size = int(x.shape[1])
    x = ops.image.affine_transform(
        x, _affine_params(u, size, cfg), interpolation="bilinear", fill_mode="reflect"
    )
    if cfg.blur_prob > 0:
        bank = ops.stack([x] + [blur(x, s) for s in BLUR_SIGMAS], axis=0)
        which = ops.cast(u[:, 5] * len(BLUR_SIGMAS), "int32") + 1
        which = ops.where(u[:, 6] < cfg.blur_prob, which, 0)
        pick = ops.transpose(ops.one_hot(which, len(BLUR_SIGMAS) + 1))
        x = ops.sum(bank * ops.reshape(pick, (-1, ops.shape(x)[0], 1, 1, 1)), axis=0)
    mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
    contrast = ops.reshape(1 + (u[:, 7] * 2 - 1) * cfg.contrast, (-1, 1, 1, 1))
    bright = ops.reshape((u[:, 8] * 2 - 1) * cfg.brightness * 255, (-1, 1, 1, 1))
    return ops.clip((x - mean) * contrast + mean + bright, 0, 255)
