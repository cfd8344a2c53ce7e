"""One training run: assemble its faces, fit with the best-validation checkpoint and live
curves, save the model files with what they trained on.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import keras
import numpy as np

from ferkit.errors import FerkitError
from ferkit.files import write_json
from ferkit.labels import EMOTIONS, IMAGE_SIZE
from ferkit.model.fingerprints import decode_fingerprints, encode_fingerprints, fingerprints
from ferkit.training import data
from ferkit.training.augment import blurred_twin, jpeg
from ferkit.training.batches import batches, class_weights, one_hot
from ferkit.training.checkpoints import (
    EpochFiles,
    history_columns,
    read_history,
    restore_backup,
    save_model_files,
)
from ferkit.training.config import TrainConfig
from ferkit.training.distill import teacher_folders, teacher_targets
from ferkit.training.evaluate import agreement
from ferkit.training.nets import build_trainer, ema_weights, network, predict, reset_ema

log = logging.getLogger(__name__)


def assemble(cfg: TrainConfig) -> tuple[data.FaceSet, data.FaceSet | None]:
    """Training and validation sets as the config says; validation is never trained on."""
    sources = [data.load_part(s, "Training") for s in cfg.sources]
    if cfg.sources_sample and sources:
        sources = [sample(data.concat(sources), cfg.sources_sample, cfg.split_seed)]
    if cfg.val is None:
        raise FerkitError("give a validation set with --val (and --val-split to carve part of it)")
    val = data.load_part(cfg.val, "PublicTest")
    if cfg.folds and cfg.fold is None:  # the final model of a K-fold run: every sharp face
        return data.concat(sources + [val] * cfg.val_rest_repeat), None
    if cfg.folds:
        held = data.sharp_folds(val, cfg.folds, cfg.split_seed)[cfg.fold]
        keep = np.setdiff1d(np.arange(len(val)), held)
    elif cfg.val_split:
        keep, held = data.stratified_split(val.labels, cfg.val_split, cfg.split_seed)
    else:
        return data.concat(sources), val
    return data.concat(sources + [val.subset(keep)] * cfg.val_rest_repeat), val.subset(held)


def sample(faces: data.FaceSet, n: int, seed: int) -> data.FaceSet:
    """A stratified random `n` of the faces, in their order: a share of the blurred train/
    beside the sharp faces, for a fine-tune whose base already learnt all of train/."""
    if not 0 < n < len(faces):
        raise FerkitError(f"--sample-sources must be between 1 and {len(faces) - 1}, got {n}")
    _, picked = data.stratified_split(faces.labels, n / len(faces), seed)
    return faces.subset(np.sort(picked))


def start_from(trainer: keras.Model, cfg: TrainConfig) -> None:
    """Put the weights of the `--init` model into a fresh trainer (and its weight average)."""
    from ferkit.model.folder import JSON_NAME, WEIGHTS_NAME, load_keras_model, read_metadata

    folder = Path(cfg.init)
    arch = read_metadata(folder).get("arch")
    if arch is None:
        raise FerkitError(f"{folder}: --init needs a ferkit model folder (no metadata.json)")
    if arch != cfg.arch:
        raise FerkitError(f"{folder}: --init model is a '{arch}' net, this run trains '{cfg.arch}'")
    trainer.net.set_weights(
        load_keras_model(folder / JSON_NAME, folder / WEIGHTS_NAME).get_weights()
    )
    reset_ema(trainer)  # the average starts where the weights do


def prepare_run(cfg: TrainConfig, out: Path, resume: bool) -> TrainConfig:
    """Write the run's config, or read it back when resuming."""
    config_path = out / "config.json"
    if resume:
        if not config_path.exists():
            raise FerkitError(f"{out}: nothing to resume (no config.json)")
        if not (out / "backup").exists() and (out / "model.json").exists():
            raise FerkitError(f"{out}: this run is already complete")
        try:
            return TrainConfig(**json.loads(config_path.read_text()))
        except (ValueError, TypeError) as err:
            raise FerkitError(f"{config_path}: not a ferkit run config ({err})") from err
    if (out / "backup").exists() or (out / "history.csv").exists() or config_path.exists():
        raise FerkitError(f"{out}: a run is already there; add --resume to continue it")
    out.mkdir(parents=True, exist_ok=True)
    write_json(config_path, asdict(cfg))
    return cfg


def cpu_has_bf16(cpuinfo: str) -> bool | None:
    """Whether the CPU that `cpuinfo` (Linux's /proc/cpuinfo) describes multiplies bfloat16
    natively (AVX512-BF16 or AMX); None when the text names no x86 flags. Without them
    mixed_bfloat16 is emulated: an epoch of the specialist took over 7 minutes on an AVX2-only
    CPU against 100 s in float32 (docs/experiments.md, row 55)."""
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    return bool(flags & {"avx512_bf16", "amx_bf16"}) if flags else None


@functools.cache  # once a process: a K-fold run calls train_one for every fold
def _warn_if_bf16_is_emulated(precision: str) -> None:
    """Say so when a bf16 run is about to train on a CPU that lacks the instructions (the
    recipes ask for bf16; on a GPU it is native)."""
    gpu = any(d.startswith("gpu") for d in keras.distribution.list_devices())
    if precision != "mixed_bfloat16" or gpu:
        return
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return
    if cpu_has_bf16(cpuinfo) is False:
        log.warning(
            "this CPU has no bfloat16 instructions (AVX512-BF16 or AMX): mixed_bfloat16 is "
            "emulated and several times slower than float32 here; add --precision float32"
        )


def train_one(cfg: TrainConfig, out: Path, verbose: int, callbacks: list | None) -> dict:
    """Fit one run (resuming from its backup if any) and save its model files."""
    train_set, val_set = assemble(cfg)
    data.write_list(out / "train_files.txt", sorted(set(train_set.names)))
    data.write_list(out / "val_files.txt", val_set.names if val_set else [])
    targets = teacher_targets(cfg, train_set, val_set)  # before the policy: float32 teachers
    keras.utils.set_random_seed(cfg.seed)
    _warn_if_bf16_is_emulated(cfg.precision)
    keras.mixed_precision.set_global_policy(cfg.precision)
    steps = math.ceil(len(train_set) / cfg.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate, steps * cfg.epochs, alpha=0.01
    )
    trainer = build_trainer(cfg.arch, schedule, cfg.label_smoothing, cfg.consistency, cfg.ema)
    first = restore_backup(trainer, out / "backup") if (out / "backup").exists() else 0
    if first == 0 and cfg.init:
        start_from(trainer, cfg)
    rows = [r for r in read_history(out / "history.csv") if r["epoch"] < first]
    last = min(cfg.epochs, cfg.stop_after or cfg.epochs)
    val_x = _val_inputs(val_set, cfg.input_blur) if val_set else None
    started = time.monotonic()
    if first < last:
        stream, steps_per_epoch = batches(train_set, cfg, first, last, targets)
        trainer.fit(
            stream,
            steps_per_epoch=steps_per_epoch,
            initial_epoch=first,
            epochs=last,
            validation_data=(val_x, one_hot(val_set.labels)) if val_set else None,
            shuffle=False,  # the stream is ordered by `epoch_order` already
            class_weight=class_weights(train_set.labels, cfg.class_weight),
            callbacks=[EpochFiles(out, trainer.net, cfg, rows, val_x)]
            + ([keras.callbacks.SwapEMAWeights()] if cfg.ema else [])  # validate the average
            + (callbacks or []),
            verbose=verbose,
        )
    seconds = time.monotonic() - started
    net = trainer.net
    if val_set is not None and (out / "best.weights.h5").exists():
        net.load_weights(out / "best.weights.h5")
        weights = net.get_weights()
    else:  # the last epoch's (average) weights: a K-fold final run, or no validation
        with ema_weights(trainer):
            weights = net.get_weights()
    keras.mixed_precision.set_global_policy("float32")  # ship float32: no bf16 in the JSON
    net = network(cfg.arch)
    net.set_weights(weights)
    history = history_columns(read_history(out / "history.csv"))
    metadata = model_metadata(cfg, net, train_set)
    metadata["training"].update(
        {
            "n_val": len(val_set) if val_set else 0,
            "epochs_run": len(history.get("loss", [])),
            "seconds_last_session": round(seconds, 1),
        }
    )
    if val_set is not None:
        metadata["metrics"] = {
            "best_val_accuracy": max(history.get("val_accuracy", [0.0])),
            "blur_agreement": blur_agreement(net, val_set.images),
        }
    save_model_files(out, net, metadata)
    shutil.rmtree(out / "backup", ignore_errors=True)
    return metadata


def _val_inputs(val_set: data.FaceSet, sigma: float) -> np.ndarray:
    """Validation faces as the model will be served them (blurred for the specialist)."""
    from ferkit.model.preprocess import blur

    return np.stack([blur(img, sigma) for img in val_set.images])[..., None].astype("float32")


def model_metadata(cfg: TrainConfig, net: keras.Model, train_set: data.FaceSet) -> dict:
    """What a model folder says about itself, including the faces it trained on (and those
    its `--init` model and its teachers trained on: what they learned of them is in it)."""
    from ferkit.model.folder import read_metadata

    hashes = fingerprints(train_set.images)
    for folder in ([cfg.init] if cfg.init else []) + teacher_folders(cfg):
        hashes = np.concatenate([hashes, decode_fingerprints(read_metadata(folder))])
    return {
        "labels": list(EMOTIONS),
        "input": {"size": IMAGE_SIZE, "color": "gray", "range": [0, 255], "resize": "area"},
        "preprocessing": {"blur_sigma": cfg.input_blur, "tta": False},
        "arch": cfg.arch,
        "params": int(net.count_params()),
        "training": {
            "config": asdict(cfg),
            "n_train": len(train_set),
            "backend": keras.backend.backend(),
        },
        "trained_on": encode_fingerprints(hashes),
    }


def blur_agreement(net: keras.Model, images: np.ndarray, seed: int = 0) -> float:
    """How often the net gives a sharp face and its blurred twin (as train/ holds faces) the
    same answer: what blur-consistency training is meant to raise."""
    x = images[..., None].astype("float32")
    u = np.random.default_rng(seed).random(len(x), dtype=np.float32)
    twin = jpeg(keras.ops.convert_to_numpy(blurred_twin(x, u)))
    return agreement(predict(net, x), predict(net, twin))
