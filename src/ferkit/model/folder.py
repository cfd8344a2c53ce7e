"""Model files as in the seed: architecture JSON (`model.to_json()`) beside the weights.

A model folder holds `model.json`, `model.weights.h5`, `metadata.json` (labels, input,
preprocessing, training data and metrics) and, once exported, `model.onnx` and its int8
twin `model.int8.onnx`. Every file is
written under a temporary name and renamed, so a crash never leaves half a model.
Keras is imported only to load a model for the Keras engine (`--engine keras`); saving
them is training's (`ferkit.training.checkpoints.save_model_files`).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from ferkit.errors import FerkitError
from ferkit.files import write_json

JSON_NAME = "model.json"
WEIGHTS_NAME = "model.weights.h5"
METADATA_NAME = "metadata.json"
ONNX_NAME = "model.onnx"
INT8_NAME = "model.int8.onnx"  # served first when present: 3x faster, same answers
ENGINES = ("auto", "keras", "onnx", "int8")  # how a model folder is run (`--engine`)


def write_metadata(folder: Path, metadata: dict) -> None:
    write_json(folder / METADATA_NAME, metadata)


def write_calibration(folder: Path, record: dict) -> dict:
    """Keep a fitted calibration (`ferkit.model.calibration.calibrate`) in the folder's
    metadata, where `FacialExpressionModel` reads it; returns the record."""
    metadata = read_metadata(folder)
    if not metadata:
        raise FerkitError(f"{folder}: no metadata.json to keep the temperature in")
    write_metadata(folder, {**metadata, "calibration": record})
    return record


def read_metadata(folder: Path) -> dict:
    path = Path(folder) / METADATA_NAME
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise FerkitError(f"{path}: not valid JSON ({err})") from err


def first_net(folder: Path) -> Path:
    """A model folder's first single net: the folder itself, or an ensemble's first member
    (the joint net of the embedded ensemble), for what is a property of one network (its
    ONNX files' thread settings, a copy to alter in a test)."""
    members = read_metadata(folder).get("ensemble", {}).get("members")
    return Path(folder) / members[0] if members else Path(folder)


def load_keras_model(model_json: str | Path, weights: str | Path) -> Any:
    """Rebuild the architecture from JSON (Keras safe mode: no code in the file runs) and load weights."""
    model_json, weights = Path(model_json), Path(weights)
    for path in (model_json, weights):  # before TensorFlow loads (and logs): a quick answer
        if not path.is_file():
            raise FerkitError(f"{path}: model file not found")
    import keras

    try:
        model = keras.models.model_from_json(model_json.read_text())
    except Exception as err:
        raise FerkitError(f"{model_json}: not a Keras model JSON ({err})") from err
    if tuple(model.input_shape[1:]) != (48, 48, 1) or model.output_shape[-1] != 7:
        raise FerkitError(
            f"{model_json}: expected input (48, 48, 1) and 7 outputs, got "
            f"{model.input_shape[1:]} and {model.output_shape[-1]}"
        )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.load_weights(weights)
    except Exception as err:
        raise FerkitError(
            f"{weights}: these weights do not fit the architecture in {model_json.name} ({err})"
        ) from err
    skipped = [str(w.message) for w in caught if "Skipping" in str(w.message)]
    if skipped:  # Keras only warns when parts of the model keep random weights
        raise FerkitError(
            f"{weights}: these weights do not fit the architecture in {model_json.name} ({skipped[0]})"
        )
    return model


def write_ensemble(out: Path, members: dict[str, Path]) -> dict:
    """Make `out` an ensemble folder: a copy of each member model folder under its name, and
    a metadata.json naming them, listing every face any member trained on (so `evaluate`
    warns about all of them), and the combination rule. Built beside `out` and renamed
    into place, so `out` is a whole ensemble or absent."""
    import shutil

    import numpy as np

    from ferkit.labels import EMOTIONS
    from ferkit.model.fingerprints import decode_fingerprints, encode_fingerprints

    if out.exists():
        raise FerkitError(f"{out}: already exists; give a new folder")
    hashes, described = [], {}
    for name, folder in members.items():
        metadata = read_metadata(folder)
        if not metadata or "ensemble" in metadata:
            raise FerkitError(f"{folder}: not a single ferkit model folder (no metadata.json)")
        hashes.append(decode_fingerprints(metadata))
        described[name] = {
            "from": str(folder),
            "preprocessing": metadata.get("preprocessing", {}),
            "metrics": metadata.get("metrics", {}),
        }
    building = out.with_name(f".{out.name}.building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    metadata = {
        "labels": list(EMOTIONS),
        "ensemble": {
            "members": list(members),
            "combine": "geometric mean of the members' scores, equal weights",
            "described": described,
        },
        "trained_on": encode_fingerprints(np.concatenate(hashes)),
    }
    try:
        for name, folder in members.items():
            (building / name).mkdir()
            for file in (JSON_NAME, WEIGHTS_NAME, ONNX_NAME, INT8_NAME, METADATA_NAME):
                if (Path(folder) / file).exists():
                    shutil.copyfile(Path(folder) / file, building / name / file)
        write_metadata(building, metadata)
        building.rename(out)
    except BaseException:  # a full disk or Ctrl-C leaves no half-built folder behind
        shutil.rmtree(building, ignore_errors=True)
        raise
    return metadata
