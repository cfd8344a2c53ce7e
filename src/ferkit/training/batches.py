"""Augmented training batches: a function of (seed, epoch) alone, so a resumed run trains on
exactly the batches an uninterrupted one would; a tf.data pipeline on TensorFlow, a PyDataset
elsewhere. Class weights and one-hot targets are the batches' too.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import keras
import numpy as np

from ferkit.errors import FerkitError
from ferkit.labels import NUM_CLASSES
from ferkit.model.preprocess import sharpness
from ferkit.training import data
from ferkit.training.augment import N_UNIFORMS, AugmentConfig, augment, blurred_twin, jpeg
from ferkit.training.config import TrainConfig

if TYPE_CHECKING:
    import tensorflow as tf

    from ferkit.training.augment import Tensor

BATCH_UNIFORMS = N_UNIFORMS + 2  # the augmentation's, then the mixup weight and twin blur

SHARP_LAPLACIAN = 100.0  # train/ faces are ~6, sharp ones ~1,000-4,000 (docs/experiments.md)


def class_weights(labels: np.ndarray, mode: str) -> dict[int, float] | None:
    """Weights that lift rare classes: 'balanced' (1/share), 'sqrt' (its square root) or 'none'."""
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=NUM_CLASSES).astype(float)
    weights = counts.sum() / (NUM_CLASSES * np.maximum(counts, 1))
    if mode == "sqrt":
        weights = np.sqrt(weights)
    elif mode != "balanced":
        raise FerkitError(f"--class-weight must be none, sqrt or balanced, got '{mode}'")
    return {i: float(w) for i, w in enumerate(weights)}


def one_hot(labels: np.ndarray) -> np.ndarray:
    """Labels 0..6 as the one-hot rows categorical cross-entropy expects."""
    return np.eye(NUM_CLASSES, dtype="float32")[labels]


def sharp_mask(images: np.ndarray) -> np.ndarray:
    """Which faces are sharp, i.e. get a blurred twin."""
    return sharpness(images) > SHARP_LAPLACIAN


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of epoch `epoch`: a function of (seed, epoch) only, so a resume replays it."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def make_batch(
    images: Tensor, labels: Tensor, sharp: Tensor, u: Tensor, cfg: TrainConfig
) -> tuple[Tensor, Tensor]:
    """One training batch in Keras ops: augment, mix up, add the blurred twin channel.

    The twin is blurred here and JPEG-coded by the caller (the JPEG step is not a Keras op);
    faces that are blurred already keep themselves as their twin.
    """
    from keras import ops

    x = augment(ops.cast(images, "float32"), u[:, :N_UNIFORMS], AugmentConfig(**cfg.augment))
    y = ops.cast(labels, "float32")
    if cfg.mixup > 0:
        partner = ops.reshape(u[:, N_UNIFORMS] * cfg.mixup, (-1, 1))
        x = x * ops.reshape(1 - partner, (-1, 1, 1, 1)) + ops.roll(x, 1, axis=0) * ops.reshape(
            partner, (-1, 1, 1, 1)
        )
        y = y * (1 - partner) + ops.roll(y, 1, axis=0) * partner
    if cfg.consistency > 0:
        twin = ops.where(
            ops.reshape(sharp, (-1, 1, 1, 1)), blurred_twin(x, u[:, N_UNIFORMS + 1]), x
        )
        x = ops.concatenate([x, twin], axis=-1)
    return x, y


def _with_jpeg_twin(x, sharp):
    """JPEG q95 on the twin channel of sharp faces (train/ is blurred, then JPEG-coded)."""
    if x.shape[-1] == 1:
        return x
    if type(x).__module__.startswith("tensorflow"):
        import tensorflow as tf

        twin = tf.where(tf.reshape(sharp, (-1, 1, 1, 1)), jpeg(x[..., 1:]), x[..., 1:])
        return tf.concat([x[..., :1], twin], axis=-1)
    x = np.array(x)
    x[sharp, ..., 1:] = jpeg(x[sharp, ..., 1:])
    return x


def batches(
    faces: data.FaceSet,
    cfg: TrainConfig,
    first_epoch: int,
    last_epoch: int,
    targets: np.ndarray | None = None,
) -> tuple[tf.data.Dataset | keras.utils.PyDataset, int]:
    """Batches for epochs first_epoch..last_epoch-1 as one stream, and the steps per epoch.
    Each face's target is its one-hot label, or its row of `targets` (distillation's).

    A tf.data pipeline on TensorFlow (stateless random draws keyed by the global step), a
    PyDataset elsewhere (NumPy draws keyed the same way); each epoch's order from `epoch_order`.
    """
    n, bs = len(faces), cfg.batch_size
    steps = math.ceil(n / bs)
    orders = np.stack([epoch_order(n, cfg.seed, e) for e in range(first_epoch, last_epoch)])
    sharp = sharp_mask(faces.images) if cfg.consistency > 0 else np.zeros(n, dtype=bool)
    images = faces.images[..., None]
    labels = one_hot(faces.labels) if targets is None else targets
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        x_all, y_all, s_all = tf.constant(images), tf.constant(labels), tf.constant(sharp)

        def _map(step, idx):
            u = tf.random.stateless_uniform(
                (tf.shape(idx)[0], BATCH_UNIFORMS),
                seed=tf.stack([tf.constant(cfg.seed, tf.int64), step]),
            )
            s = tf.gather(s_all, idx)
            x, y = make_batch(tf.gather(x_all, idx), tf.gather(y_all, idx), s, u, cfg)
            return _with_jpeg_twin(x, s), y

        ds = tf.data.Dataset.from_tensor_slices(orders).flat_map(
            lambda order: tf.data.Dataset.from_tensor_slices(order).batch(bs)
        )
        ds = ds.enumerate(start=first_epoch * steps).map(
            _map, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        return ds.prefetch(tf.data.AUTOTUNE), steps
    return _Batches(images, labels, sharp, orders, cfg, first_epoch * steps), steps


def _compiled(fn):
    """JIT-compile the augmentation on JAX, where eager ops would each pay a dispatch."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn)
    return fn


class _Batches(keras.utils.PyDataset):
    """Augmented batches for backends without tf.data (the augmentation runs on the device).

    One long sequence over every remaining epoch (`fit` gets `steps_per_epoch`), so batch i
    is a function of (seed, global step) alone, whatever happened before it.
    """

    def __init__(self, x, y, sharp, orders: np.ndarray, cfg: TrainConfig, first_step: int):
        super().__init__()
        self.x, self.y, self.sharp, self.cfg, self.first_step = x, y, sharp, cfg, first_step
        bs = cfg.batch_size
        self.index = [order[i : i + bs] for order in orders for i in range(0, len(order), bs)]
        self.make = _compiled(lambda images, labels, s, u: make_batch(images, labels, s, u, cfg))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        from keras import ops

        idx = self.index[i]
        rng = np.random.default_rng([self.cfg.seed, self.first_step + i])
        u = rng.random((len(idx), BATCH_UNIFORMS), dtype=np.float32)
        x, y = self.make(self.x[idx].astype("float32"), self.y[idx], self.sharp[idx], u)
        return _with_jpeg_twin(ops.convert_to_numpy(x), self.sharp[idx]), ops.convert_to_numpy(y)
