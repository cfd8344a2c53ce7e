"""Train a model: augmented batches, best-val checkpoint, live curves, resumable runs.

A run folder holds `config.json` (everything needed to resume), `train_files.txt` and
`val_files.txt` (what was trained and validated on, by name), `history.csv`, `curves.png`
(rewritten every epoch), `backup/` (the last finished epoch, with optimizer state; gone
once the run completes) and, at the end, the model files of the best validation epoch.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from ferkit import data
from ferkit.augment import N_UNIFORMS, AugmentConfig, augment
from ferkit.errors import FerkitError
from ferkit.files import write_json
from ferkit.labels import EMOTIONS, IMAGE_SIZE, NUM_CLASSES
from ferkit.plots import training_curves


@dataclass
class TrainConfig:
    sources: list[str]
    val: str | None = None
    val_split: float | None = None
    split_seed: int = 0
    val_rest_repeat: int = 1
    arch: str = "vgg"
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 1e-3
    label_smoothing: float = 0.0
    class_weight: str = "none"
    seed: int = 1
    augment: dict = field(default_factory=lambda: AugmentConfig().to_dict())
    max_minutes: float | None = None
    precision: str = "float32"  # or "mixed_bfloat16": ~2x faster on CPUs with AVX512-BF16


RECIPES: dict[str, dict] = {
    # The classroom recipe: train/ only, the seed net, geometric augmentation, no blur.
    "seed": {"arch": "seed", "epochs": 15, "augment": AugmentConfig(blur_prob=0.0).to_dict()},
    # The shipped model: train/ plus 80% of the sharp publictest/ (4x oversampled), label
    # smoothing, sqrt class weights; validation is the other 20% of publictest/, never
    # trained on. Random blur is off: it cost 1.4 points on sharp faces; bf16 is as
    # accurate as float32 and ~1.5x faster on the CPU (docs/experiments.md).
    "default": {
        "arch": "vgg",
        "epochs": 40,
        "val_split": 0.2,
        "split_seed": 0,
        "val_rest_repeat": 4,
        "label_smoothing": 0.1,
        "class_weight": "sqrt",
        "augment": AugmentConfig(blur_prob=0.0).to_dict(),
        "precision": "mixed_bfloat16",
    },
}


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


def assemble(cfg: TrainConfig) -> tuple[data.FaceSet, data.FaceSet]:
    """Training and validation sets as the config says; validation is never trained on."""
    sources = [data.load(s) for s in cfg.sources]
    if cfg.val is None:
        raise FerkitError("give a validation set with --val (and --val-split to carve part of it)")
    val = data.load(cfg.val)
    if cfg.val_split:
        keep, held = data.stratified_split(val.labels, cfg.val_split, cfg.split_seed)
        rest = val.subset(keep)
        sources += [rest] * cfg.val_rest_repeat
        val = val.subset(held)
    return data.concat(sources), val


def one_hot(labels: np.ndarray) -> np.ndarray:
    """Labels 0..6 as the one-hot rows categorical cross-entropy expects."""
    return np.eye(NUM_CLASSES, dtype="float32")[labels]


def batches(faces: data.FaceSet, cfg: TrainConfig, seed: int):
    """Shuffled, augmented batches: a tf.data pipeline on TensorFlow, a PyDataset elsewhere."""
    aug = AugmentConfig(**cfg.augment)
    x = faces.images[..., None]
    y = one_hot(faces.labels)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        def _map(images, labels):
            u = tf.random.uniform((tf.shape(images)[0], N_UNIFORMS), seed=seed)
            return augment(tf.cast(images, "float32"), u, aug), labels

        ds = tf.data.Dataset.from_tensor_slices((x, y))
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(cfg.batch_size)
        return ds.map(_map, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    return _AugmentedBatches(x, y, cfg.batch_size, aug, seed)


def _compiled(fn):
    """JIT-compile the augmentation on JAX, where eager ops would each pay a dispatch."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn)
    return fn


class _AugmentedBatches(keras.utils.PyDataset):
    """Augmented batches for backends without tf.data (the augmentation runs on the device)."""

    def __init__(self, x, y, batch_size: int, aug: AugmentConfig, seed: int):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.rng = np.random.default_rng(seed)
        self.augment = _compiled(lambda images, u: augment(images, u, aug))
        self.order = self.rng.permutation(len(x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, i: int):
        from keras import ops

        idx = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        u = self.rng.random((len(idx), N_UNIFORMS), dtype=np.float32)
        images = self.augment(self.x[idx].astype("float32"), u)
        return ops.convert_to_numpy(images), self.y[idx]

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.x))


def _read_history(path: Path) -> dict[str, list[float]]:
    if not path.exists():
        return {}
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {k: [float(r[k]) for r in rows] for k in (rows[0] if rows else {}) if k != "epoch"}


def _callbacks(out: Path, cfg: TrainConfig):
    history_csv = out / "history.csv"
    history = _read_history(history_csv)
    best = max(history.get("val_accuracy", [0.0]))
    started = time.monotonic()

    class LiveCurves(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            for key, value in (logs or {}).items():
                history.setdefault(key, []).append(float(value))
            training_curves(history, out / "curves.png")
            minutes = (time.monotonic() - started) / 60
            if cfg.max_minutes and minutes > cfg.max_minutes:
                print(f"stopping after {minutes:.1f} min (--max-minutes {cfg.max_minutes})")
                self.model.stop_training = True

    return [
        keras.callbacks.BackupAndRestore(str(out / "backup")),
        keras.callbacks.ModelCheckpoint(
            str(out / "best.weights.h5"),
            monitor="val_accuracy",
            mode="max",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best or None,
        ),
        keras.callbacks.CSVLogger(str(history_csv), append=True),
        LiveCurves(),
    ]


def prepare_run(cfg: TrainConfig, out: Path, resume: bool) -> TrainConfig:
    """Write the run's config, or read it back when resuming."""
    config_path = out / "config.json"
    if resume:
        if not config_path.exists():
            raise FerkitError(f"{out}: nothing to resume (no config.json)")
        if not (out / "backup").exists() and (out / "model.json").exists():
            raise FerkitError(f"{out}: this run is already complete")
        return TrainConfig(**json.loads(config_path.read_text()))
    if (out / "backup").exists() or (out / "history.csv").exists():
        raise FerkitError(f"{out}: a run is already there; add --resume to continue it")
    out.mkdir(parents=True, exist_ok=True)
    write_json(config_path, asdict(cfg))
    return cfg


def train(
    cfg: TrainConfig,
    out: Path,
    resume: bool = False,
    verbose: int = 1,
    callbacks: list | None = None,
) -> dict:
    """Fit, keep the best validation epoch, save model files; returns the metadata."""
    from ferkit.model import build_model
    from ferkit.serialize import save_model_files

    out = Path(out)
    cfg = prepare_run(cfg, out, resume)
    train_set, val_set = assemble(cfg)
    data.write_list(out / "train_files.txt", sorted(set(train_set.names)))
    data.write_list(out / "val_files.txt", val_set.names)
    keras.utils.set_random_seed(cfg.seed)
    keras.mixed_precision.set_global_policy(cfg.precision)
    steps = math.ceil(len(train_set) / cfg.batch_size) * cfg.epochs
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, steps, alpha=0.01)
    model = build_model(cfg.arch, schedule, cfg.label_smoothing)
    started = time.monotonic()
    model.fit(
        batches(train_set, cfg, cfg.seed),
        validation_data=(val_set.images[..., None].astype("float32"), one_hot(val_set.labels)),
        epochs=cfg.epochs,
        shuffle=False,  # the batches are shuffled by their own pipeline
        class_weight=class_weights(train_set.labels, cfg.class_weight),
        callbacks=_callbacks(out, cfg) + (callbacks or []),
        verbose=verbose,
    )
    seconds = time.monotonic() - started
    model.load_weights(out / "best.weights.h5")
    if cfg.precision != "float32":  # ship a float32 twin: same weights, no bf16 in the JSON
        keras.mixed_precision.set_global_policy("float32")
        weights = model.get_weights()
        model = build_model(cfg.arch)
        model.set_weights(weights)
    history = _read_history(out / "history.csv")
    metadata = {
        "labels": list(EMOTIONS),
        "input": {"size": IMAGE_SIZE, "color": "gray", "range": [0, 255], "resize": "area"},
        "preprocessing": {"blur_sigma": 0.0, "tta": False},
        "arch": cfg.arch,
        "params": int(model.count_params()),
        "training": {
            "config": asdict(cfg),
            "n_train": len(train_set),
            "n_val": len(val_set),
            "epochs_run": len(history.get("loss", [])),
            "seconds_last_session": round(seconds, 1),
            "backend": keras.backend.backend(),
        },
        "metrics": {"best_val_accuracy": max(history.get("val_accuracy", [0.0]))},
    }
    save_model_files(out, model, metadata)
    return metadata
