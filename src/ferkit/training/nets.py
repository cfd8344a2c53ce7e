"""The CNN architectures, built from scratch in Keras, and how they are compiled.

Every model takes 48x48x1 float images with values 0..255 and rescales them itself, so
the saved model carries its own input scaling.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING

import keras
import numpy as np
from keras import layers

from ferkit.errors import FerkitError
from ferkit.labels import IMAGE_SIZE, NUM_CLASSES

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ferkit.training.augment import Tensor


def _conv_block(x, filters: int, kernel: int):
    x = layers.Conv2D(filters, kernel, padding="same")(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x)


def _dense_block(x, units: int, dropout: float):
    x = layers.Dense(units)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    return layers.Dropout(dropout)(x)


def _head(x):
    # float32 softmax even under mixed precision, as Keras advises
    return layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name="emotion")(x)


def _inputs():
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="face")
    return inputs, layers.Rescaling(1 / 255)(inputs)


def seed() -> keras.Model:
    """The classroom seed network: 4 conv blocks and 2 dense blocks, 4,478,727 parameters."""
    inputs, x = _inputs()
    for filters, kernel in [(64, 3), (128, 5), (512, 3), (512, 3)]:
        x = _conv_block(x, filters, kernel)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    x = _dense_block(x, 256, 0.25)
    x = _dense_block(x, 512, 0.25)
    return keras.Model(inputs, _head(x), name="seed")


def _vgg(widths: tuple[int, ...], name: str, shrink: int = 1) -> keras.Model:
    inputs, x = _inputs()
    if shrink > 1:
        x = layers.AveragePooling2D(shrink)(x)
    for filters, dropout in zip(widths, (0.1, 0.2, 0.3, 0.4), strict=True):
        x = _conv_block(x, filters, 3)
        x = _conv_block(x, filters, 3)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(dropout)(x)
    x = layers.Flatten()(x)
    x = _dense_block(x, 256, 0.5)
    return keras.Model(inputs, _head(x), name=name)


def vgg() -> keras.Model:
    """VGG-style: two 3x3 convs per block, 32-64-128-256 channels; ~118M MACs, fast on a CPU."""
    return _vgg((32, 64, 128, 256), "vgg")


def vgg_wide() -> keras.Model:
    """The same, 1.5x wider (48-96-192-384): ~266M MACs, within issue 13's 300M budget."""
    return _vgg((48, 96, 192, 384), "vgg_wide")


def multiply_adds(model: keras.Model) -> int:
    """Multiply-adds of one face through the convolutions and dense layers (the rest is noise)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            h, w = layer.output.shape[1:3]
            total += h * w * math.prod(layer.kernel.shape)
        elif isinstance(layer, layers.Dense):
            total += math.prod(layer.kernel.shape)
    return total


def vgg_half() -> keras.Model:
    """`vgg` on the face averaged down to 24x24: ~30M MACs, a quarter of `vgg`'s. For the
    blurred specialist, whose inputs (Gaussian sigma 3.3) hold nothing a 24 px grid loses:
    the blur leaves 1e-6 of the amplitude at that grid's Nyquist frequency."""
    return _vgg((32, 64, 128, 256), "vgg_half", shrink=2)


ARCHITECTURES: dict[str, Callable[[], keras.Model]] = {
    "seed": seed,
    "vgg": vgg,
    "vgg_wide": vgg_wide,
    "vgg_half": vgg_half,
}
DEFAULT_ARCH = "vgg"


def network(arch: str = DEFAULT_ARCH) -> keras.Model:
    """An uncompiled network: what a model folder holds."""
    if arch not in ARCHITECTURES:
        raise FerkitError(f"unknown architecture '{arch}' (choose from {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[arch]()


def build_model(
    arch: str = DEFAULT_ARCH,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = 1e-3,
    label_smoothing: float = 0.0,
) -> keras.Model:
    """A plain compiled network (Adam, cross-entropy, accuracy) for `model.fit` as in the
    Keras examples: the walkthrough notebook's. `ferkit train` runs `build_trainer`'s."""
    return _compiled(network(arch), keras.optimizers.Adam(learning_rate), label_smoothing)


def _compiled(
    model: keras.Model, optimizer: keras.Optimizer, label_smoothing: float
) -> keras.Model:
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=["accuracy"],
    )
    return model


def js_divergence(p: Tensor, q: Tensor) -> Tensor:
    """Jensen-Shannon divergence between two batches of class probabilities, batch mean."""
    from keras import ops

    eps = 1e-7
    p, q = ops.clip(p, eps, 1.0), ops.clip(q, eps, 1.0)
    m = (p + q) / 2
    kl_pm = ops.sum(p * ops.log(p / m), axis=-1)
    kl_qm = ops.sum(q * ops.log(q / m), axis=-1)
    return ops.mean((kl_pm + kl_qm) / 2)


class Trainer(keras.Model):
    """What `fit` trains: a network, and optionally the blur-consistency objective.

    With `consistency` > 0 every training input carries two channels: the augmented face and
    its blurred twin (what train/ would hold of it). The loss is cross-entropy on both plus
    `consistency` x the Jensen-Shannon divergence between the two predictions (AugMix-style),
    so what the net learns from blurred faces is tied to the same face seen sharp. It is
    written as `compute_loss`, the part of the training step Keras lets a model replace on
    every backend (TensorFlow on the CPU, JAX on the lent GPU). Validation inputs have one
    channel and get the plain loss. Only `net` is ever saved as a model. (Distillation
    changes the targets, not the loss: `ferkit.training.distill`.)
    """

    def __init__(
        self,
        net: keras.Model,
        consistency: float = 0.0,
        label_smoothing: float = 0.0,
    ):
        super().__init__(name="trainer")
        self.net = net
        self.consistency = consistency
        self.twin_loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)

    def call(self, x, training=False):
        return self.net(x[..., :1], training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
        )
        if self.consistency and x is not None and x.shape[-1] == 2:
            twin = self.net(x[..., 1:], training=training)
            loss = loss + self.twin_loss(y, twin, sample_weight=sample_weight)
            loss = loss + self.consistency * js_divergence(y_pred, twin)
        return loss


def build_trainer(
    arch: str,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule,
    label_smoothing: float = 0.0,
    consistency: float = 0.0,
    ema: float | None = None,
) -> Trainer:
    """A compiled, built `Trainer` (Adam, cross-entropy, accuracy) around a fresh network;
    built with its optimizer state, so a backup can be loaded into it before `fit`. With
    `ema` (a momentum such as 0.999) Adam also keeps an exponential moving average of the
    weights (`ema_weights` puts it in the net)."""
    trainer = Trainer(network(arch), consistency, label_smoothing)
    optimizer = keras.optimizers.Adam(
        learning_rate, use_ema=ema is not None, ema_momentum=ema if ema is not None else 0.99
    )
    _compiled(trainer, optimizer, label_smoothing)
    trainer(keras.ops.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1)))
    trainer.optimizer.build(trainer.trainable_variables)
    return trainer


def reset_ema(trainer: keras.Model) -> None:
    """Set the moving average of the weights (when the optimizer keeps one) to the weights,
    e.g. after loading other weights into a built trainer."""
    optimizer = trainer.optimizer
    if getattr(optimizer, "use_ema", False):
        for variable, average in zip(
            optimizer._trainable_variables, optimizer._model_variables_moving_average, strict=True
        ):
            average.assign(variable)


@contextmanager
def ema_weights(trainer: keras.Model) -> Iterator[None]:
    """Inside the block the net holds the moving average of its weights (when the optimizer
    keeps one), the weights to validate, checkpoint and ship; the trained ones come back after.
    Keras's `SwapEMAWeights` does this for `evaluate` only, not for checkpoints or `predict`."""
    optimizer = trainer.optimizer
    if not getattr(optimizer, "use_ema", False):
        yield
        return
    variables = optimizer._trainable_variables  # what Adam averages, in its order
    trained = [keras.ops.convert_to_numpy(v) for v in variables]
    for variable, average in zip(variables, optimizer._model_variables_moving_average, strict=True):
        variable.assign(average)
    try:
        yield
    finally:
        for variable, value in zip(variables, trained, strict=True):
            variable.assign(value)


def predict(net: keras.Model, images: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Scores by plain calls in inference mode: safe inside `fit` (on JAX, `predict` of a
    model whose trainer is mid-fit trips over the trainer's donated weight buffers)."""
    return np.concatenate(
        [
            keras.ops.convert_to_numpy(net(images[i : i + chunk], training=False))
            for i in range(0, len(images), chunk)
        ]
    )
