"""The CNN architectures, built from scratch in Keras, and how they are compiled.

Every model takes 48x48x1 float images with values 0..255 and rescales them itself, so
the saved model carries its own input scaling.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from ferkit.errors import FerkitError
from ferkit.labels import IMAGE_SIZE, NUM_CLASSES


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


def vgg() -> keras.Model:
    """VGG-style: two 3x3 convs per block, 32-64-128-256 channels; ~118M MACs, fast on a CPU."""
    inputs, x = _inputs()
    for filters, dropout in [(32, 0.1), (64, 0.2), (128, 0.3), (256, 0.4)]:
        x = _conv_block(x, filters, 3)
        x = _conv_block(x, filters, 3)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(dropout)(x)
    x = layers.Flatten()(x)
    x = _dense_block(x, 256, 0.5)
    return keras.Model(inputs, _head(x), name="vgg")


ARCHITECTURES: dict[str, Callable[[], keras.Model]] = {"seed": seed, "vgg": vgg}
DEFAULT_ARCH = "vgg"


def build_model(
    arch: str = DEFAULT_ARCH,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = 1e-3,
    label_smoothing: float = 0.0,
) -> keras.Model:
    """A compiled model: Adam, categorical cross-entropy, accuracy."""
    if arch not in ARCHITECTURES:
        raise FerkitError(f"unknown architecture '{arch}' (choose from {', '.join(ARCHITECTURES)})")
    model = ARCHITECTURES[arch]()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=["accuracy"],
    )
    return model
