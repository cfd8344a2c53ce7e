"""Training augmentation in Keras ops, so it runs in a tf.data map on the CPU and on a GPU alike.

The random draws come in as an array of uniforms (one row per image) rather than from a
seed inside the function: tf.data maps do not advance Keras seed generators, and a plain
array keeps the function pure and testable. Flip, shift, rotation and zoom are one affine
warp (chaining three warps would blur every image a little), then a random Gaussian blur
from a small bank of sigmas (train/ is blurred, cameras are sharp: the model should not
care), then brightness and contrast, then random erasing (a rectangle filled with the
face's mean, so the net cannot rely on one region). `blurred_twin` makes the view of a sharp
face that `train/` would hold (Gaussian sigma 2.9-3.7, then JPEG q95) for the
blur-consistency objective.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from typing import Any, TypeAlias

    # a batch as Keras ops take and give it: a NumPy array, or the backend's own tensor
    # (TensorFlow's on the CPU, JAX's on a GPU); Keras names no type for it
    Tensor: TypeAlias = Any

N_UNIFORMS = 14
BLUR_SIGMAS = (1.0, 2.0, 3.0, 4.0, 4.5)
TWIN_SIGMAS = (2.9, 3.1, 3.3, 3.5, 3.7)  # train/'s blur, measured at sigma ~3.3
TWIN_JPEG_QUALITY = 95  # train/ and publictest/ share q95's quantisation table
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
    erase: float = 0.0  # share of images given a random erased rectangle (2-25% of the face)

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


def blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur with reflected borders (the same borders as OpenCV's default)."""
    from keras import ops

    r = _BLUR_RADIUS
    k = gaussian_kernel(sigma)
    padded = ops.pad(images, [[0, 0], [r, r], [r, r], [0, 0]], mode="reflect")
    out = ops.conv(padded, k.reshape(-1, 1, 1, 1), padding="valid")
    return ops.conv(out, k.reshape(1, -1, 1, 1), padding="valid")


def _blur_bank(x, which, sigmas):
    """Per image, x itself (which == 0) or blurred with sigmas[which - 1]."""
    from keras import ops

    bank = ops.stack([x] + [blur(x, s) for s in sigmas], axis=0)
    pick = ops.transpose(ops.one_hot(which, len(sigmas) + 1))
    return ops.sum(bank * ops.reshape(pick, (-1, ops.shape(x)[0], 1, 1, 1)), axis=0)


def _erase(x, u, prob: float):
    """Random erasing: a rectangle of 2-25% of the face, aspect 1:3 to 3:1, set to the mean."""
    from keras import ops

    size = int(x.shape[1])
    area = (0.02 + u[:, 10] * 0.23) * size * size
    aspect = ops.exp((u[:, 11] * 2 - 1) * float(np.log(3)))
    h = ops.reshape(ops.sqrt(area * aspect), (-1, 1, 1, 1))
    w = ops.reshape(ops.sqrt(area / aspect), (-1, 1, 1, 1))
    cy = ops.reshape(u[:, 12] * size, (-1, 1, 1, 1))
    cx = ops.reshape(u[:, 13] * size, (-1, 1, 1, 1))
    grid = ops.arange(size, dtype="float32")
    rows = ops.reshape(grid, (1, -1, 1, 1))
    cols = ops.reshape(grid, (1, 1, -1, 1))
    on = ops.reshape(u[:, 9] < prob, (-1, 1, 1, 1))
    inside = (ops.abs(rows - cy) * 2 < h) & (ops.abs(cols - cx) * 2 < w) & on
    return ops.where(inside, ops.mean(x, axis=(1, 2, 3), keepdims=True), x)


def blurred_twin(images: Tensor, u: Tensor) -> Tensor:
    """The face as train/ would hold it, before its JPEG step: Gaussian sigma 2.9-3.7 by `u`."""
    from keras import ops

    which = ops.minimum(ops.cast(u * len(TWIN_SIGMAS), "int32"), len(TWIN_SIGMAS) - 1) + 1
    return _blur_bank(ops.cast(images, "float32"), which, TWIN_SIGMAS)


def jpeg(images: Tensor, quality: int = TWIN_JPEG_QUALITY) -> Tensor:
    """JPEG round trip of a float batch (B, H, W, 1) in 0..255: in-graph on a tf.data map
    (TensorFlow tensors), with OpenCV on NumPy arrays elsewhere."""
    if type(images).__module__.startswith("tensorflow"):
        import tensorflow as tf

        as_bytes = tf.cast(tf.round(tf.clip_by_value(images, 0, 255)), tf.uint8)
        coded = tf.map_fn(
            lambda im: tf.image.adjust_jpeg_quality(im, quality),
            as_bytes,
            fn_output_signature=tf.uint8,
        )
        return tf.cast(coded, tf.float32)
    import cv2

    if not len(images):  # a batch without a sharp face has no twin to code
        return np.asarray(images, np.float32)
    out = []
    for im in np.clip(np.rint(np.asarray(images)), 0, 255).astype(np.uint8):
        ok, buf = cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, quality])
        out.append(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)[..., None])
    return np.stack(out).astype(np.float32)


def augment(images: Tensor, uniforms: Tensor, cfg: AugmentConfig = AugmentConfig()) -> Tensor:
    """Augment a float batch (B, H, W, 1) in 0..255 using uniforms of shape (B, N_UNIFORMS)."""
    from keras import ops

    u = ops.cast(uniforms, "float32")
    x = ops.cast(images, "float32")
    size = int(x.shape[1])
    x = ops.image.affine_transform(
        x, _affine_params(u, size, cfg), interpolation="bilinear", fill_mode="reflect"
    )
    if cfg.blur_prob > 0:
        which = ops.cast(u[:, 5] * len(BLUR_SIGMAS), "int32") + 1
        x = _blur_bank(x, ops.where(u[:, 6] < cfg.blur_prob, which, 0), BLUR_SIGMAS)
    mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
    contrast = ops.reshape(1 + (u[:, 7] * 2 - 1) * cfg.contrast, (-1, 1, 1, 1))
    bright = ops.reshape((u[:, 8] * 2 - 1) * cfg.brightness * 255, (-1, 1, 1, 1))
    x = ops.clip((x - mean) * contrast + mean + bright, 0, 255)
    return _erase(x, u, cfg.erase) if cfg.erase > 0 else x
