"""Which faces a model trained on, by their pixels.

A model's metadata lists the faces it trained on as fingerprints (a 64-bit BLAKE2b hash of
each 48x48 uint8 face, base64), so an evaluation can say when its figure is not held-out,
whatever the files are called or wherever they were copied; a fold model says which faces
it may score out of fold; an ensemble lists what any member saw.
"""

from __future__ import annotations

import base64
import hashlib

import numpy as np


def fingerprints(images: np.ndarray) -> np.ndarray:
    """A 64-bit hash per 48x48 uint8 face, in the order of `images`."""
    digests = b"".join(
        hashlib.blake2b(np.ascontiguousarray(img).tobytes(), digest_size=8).digest()
        for img in images
    )
    return np.frombuffer(digests, dtype="<u8")


def encode_fingerprints(hashes: np.ndarray) -> dict:
    """The metadata form: {"hash": how, "count": n, "faces": base64 of the sorted hashes}."""
    unique = np.unique(hashes)
    return {
        "hash": "blake2b-64 of the 48x48 uint8 pixels",
        "count": int(len(unique)),
        "faces": base64.b64encode(unique.astype("<u8").tobytes()).decode(),
    }


def decode_fingerprints(metadata: dict) -> np.ndarray:
    """The hashes of the faces a model trained on (none when its metadata does not say)."""
    trained = metadata.get("trained_on")
    if not trained:
        return np.zeros(0, dtype="<u8")
    return np.frombuffer(base64.b64decode(trained["faces"]), dtype="<u8")


def trained_on(metadata: dict, images: np.ndarray) -> np.ndarray | None:
    """Which of `images` the model trained on (a mask); None when its metadata does not say."""
    if not metadata.get("trained_on"):
        return None
    return np.isin(fingerprints(images), decode_fingerprints(metadata))


def training_overlap(metadata: dict, images: np.ndarray) -> int | None:
    """How many of `images` the model trained on; None when its metadata does not say."""
    mask = trained_on(metadata, images)
    return None if mask is None else int(mask.sum())
