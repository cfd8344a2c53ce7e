"""Train a model: augmented batches, best-val checkpoint, live curves, runs that survive faults,
and a K-fold estimate over the sharp faces.

A run folder holds `config.json` (everything needed to resume), `train_files.txt` and
`val_files.txt` (what was trained and validated on, by name), `history.csv`, `curves.png`
(rewritten every epoch), `backup/` (the last finished epochs, with optimizer state; gone
once the run completes) and, at the end, the model files of the best validation epoch.

Surviving a SIGKILL at any moment: every file is written under a temporary name and renamed
(`ferkit.files`), so each name holds a complete file or the previous one. The backup of
epoch N is `backup/epoch-000N.weights.h5`; the one before it stays until the next lands, and
a resume falls back to it when the newest cannot be read. The batch order and augmentation
draws of epoch k depend on (seed, k) alone, so a resumed run trains on exactly the batches an
uninterrupted one would, and its `history.csv` is the same (bit for bit under
`TF_DETERMINISTIC_OPS=1`).

`--folds K` trains K runs (`fold-1/` ...), each validated on one stratified K-th of the
sharp set (`--val`) and trained on the rest plus the training sources; their per-epoch
predictions give out-of-fold scores on every sharp face (`folds.json`), which fix the epoch
count; each fold's model then becomes its weights of that epoch (kept per epoch in
`fold-N/epochs/`), so `ferkit evaluate --out-of-fold` can score the figure again. `final/`
trains on all sharp faces for that many epochs, and its model is the run's model. With
`--fold final` it trains alongside the folds instead, for every epoch, keeping each; the
resume that ends the run then keeps the chosen one (same batches, same schedule: the same
weights as a run stopped there), so a lent GPU runs the whole K-fold in one go.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import keras
import numpy as np

from ferkit import data
from ferkit.augment import N_UNIFORMS, AugmentConfig, augment, blurred_twin, jpeg
from ferkit.errors import FerkitError
from ferkit.evaluate import (
    agreement,
    bootstrap_interval,
    decode_fingerprints,
    encode_fingerprints,
    fingerprints,
    fold_folders,
    metrics,
)
from ferkit.files import remove_temps, replacing, write_atomic, write_json
from ferkit.labels import EMOTIONS, IMAGE_SIZE, NUM_CLASSES
from ferkit.model import build_trainer, ema_weights, network, reset_ema
from ferkit.plots import training_curves

log = logging.getLogger(__name__)

BATCH_UNIFORMS = N_UNIFORMS + 2  # the augmentation's, then the mixup weight and twin blur
SHARP_LAPLACIAN = 100.0  # train/ faces are ~6, sharp ones ~1,000-4,000 (docs/experiments.md)
PREDICTIONS_NAME = "val_predictions.npy"  # a fold's held-out answers, one row an epoch
FAILPOINT_ENV = "FERKIT_FAILPOINT"  # tests: "backup:N" kills the run inside epoch N's save


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
    precision: str = "float32"  # or "mixed_bfloat16": 1.4-1.9x faster on CPUs with AVX512-BF16
    mixup: float = 0.0  # the partner face's weight is uniform in [0, mixup]
    consistency: float = 0.0  # weight of the sharp/blurred-twin Jensen-Shannon term
    ema: float | None = None  # momentum of a weight moving average (validated and shipped)
    folds: int | None = None  # K-fold over the --val set
    fold: int | None = None  # which fold this run holds out (None: all of --val trained on)
    stop_after: int | None = None  # epochs to train (the schedule still spans `epochs`)
    init: str | None = None  # a model folder whose weights start the run (e.g. a blurred base)
    sources_sample: int | None = None  # train on this many faces of the sources (stratified)
    keep_epochs: bool = False  # keep every epoch's weights (a fold does anyway; --fold final)
    teacher: str | None = None  # a model folder or K-fold run whose answers are soft targets
    distill: float = 0.5  # with `teacher`: the teachers' share of each training target
    input_blur: float = 0.0  # Gaussian sigma for validation and served inputs (the specialist)


RECIPES: dict[str, dict] = {
    # The classroom recipe: train/ only, the seed net, geometric augmentation, no blur.
    "seed": {"arch": "seed", "epochs": 15, "augment": AugmentConfig(blur_prob=0.0).to_dict()},
    # The shipped model: train/ plus 80% of the sharp publictest/ (4x oversampled), label
    # smoothing, sqrt class weights; validation is the other 20% of publictest/, never
    # trained on. Random blur is off: it cost 1.4 points on sharp faces; bf16 is as
    # accurate as float32 and 1.4-1.9x faster on the CPU (docs/experiments.md).
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
    # The blurred specialist: train/ alone (no sharp face), and every face it is shown later,
    # in validation or served, blurred as train/ is (sigma ~3.3): it then sees faces the way
    # it learnt them. Alone it is weak on sharp faces; beside the joint model it adds what
    # train/'s 28,709 faces know (docs/experiments.md). Validated on the same 20% of
    # publictest/ as the default recipe, so the two can be paired on those faces.
    "blurred": {
        "arch": "vgg",
        "epochs": 30,
        "val_split": 0.2,
        "split_seed": 0,
        "val_rest_repeat": 0,
        "input_blur": 3.3,
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


def stratified_folds(
    labels: np.ndarray, k: int, seed: int, same: np.ndarray | None = None
) -> list[np.ndarray]:
    """K disjoint index sets covering every face, each with the class shares of the whole.

    `same` (a fingerprint per face) keeps identical faces in one fold: publictest/ holds 20
    pairs of pixel-identical faces, and a pair split across folds is trained on and scored.
    """
    if not 2 <= k <= len(labels):
        raise FerkitError(f"--folds must be between 2 and the number of faces, got {k}")
    rng = np.random.default_rng(seed)
    order = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == c)) for c in range(NUM_CLASSES)]
    )
    fold_of = np.empty(len(labels), dtype=np.int64)
    fold_of[order] = np.arange(len(labels)) % k
    if same is not None:
        _, first, inverse = np.unique(same, return_index=True, return_inverse=True)
        fold_of = fold_of[first][inverse]
    return [np.flatnonzero(fold_of == i) for i in range(k)]


def sharp_folds(sharp: data.FaceSet, cfg: TrainConfig) -> list[np.ndarray]:
    return stratified_folds(sharp.labels, cfg.folds, cfg.split_seed, fingerprints(sharp.images))


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
        held = sharp_folds(val, cfg)[cfg.fold]
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
    from ferkit.serialize import JSON_NAME, WEIGHTS_NAME, load_keras_model, read_metadata

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


def teacher_folders(cfg: TrainConfig) -> list[Path]:
    """The models `--teacher` names for this run. A K-fold run's fold i teaches fold i of
    the same split (it never saw those faces, so the out-of-fold figure stays honest: a
    single teacher of the same recipe, born-again distillation); a run on every face (the
    final model) learns from all its folds at once (the fold ensemble distilled into one
    net). Any other folder is one model."""
    if not cfg.teacher:
        return []
    run = Path(cfg.teacher)
    folds = fold_folders(run)
    if not folds:
        return [run]
    if cfg.fold is not None:
        return [run / f"fold-{cfg.fold + 1}"]
    return folds


def load_teachers(cfg: TrainConfig, val_set: data.FaceSet | None) -> list[keras.Model]:
    """`teacher_folders` loaded, each refused if it trained on a face this run validates on
    (its answers would carry the label into training)."""
    from ferkit.serialize import JSON_NAME, WEIGHTS_NAME, load_keras_model, read_metadata

    if cfg.teacher and not 0 <= cfg.distill <= 1:
        raise FerkitError(f"--distill must be between 0 and 1, got {cfg.distill}")
    teachers = []
    val_hashes = fingerprints(val_set.images) if val_set is not None else np.empty(0, "<u8")
    for folder in teacher_folders(cfg):
        metadata = read_metadata(folder)
        if not metadata.get("trained_on"):
            raise FerkitError(f"{folder}: --teacher needs a ferkit model folder or K-fold run")
        seen = np.isin(val_hashes, decode_fingerprints(metadata)).sum()
        if seen:
            raise FerkitError(
                f"{folder}: the teacher trained on {seen} of this run's validation faces; "
                "use a run with the same folds (--folds, --split-seed) or another teacher"
            )
        teacher = load_keras_model(folder / JSON_NAME, folder / WEIGHTS_NAME)
        teacher.trainable = False
        teachers.append(teacher)
    return teachers


def one_hot(labels: np.ndarray) -> np.ndarray:
    """Labels 0..6 as the one-hot rows categorical cross-entropy expects."""
    return np.eye(NUM_CLASSES, dtype="float32")[labels]


def sharp_mask(images: np.ndarray) -> np.ndarray:
    """Which faces are sharp (variance of the Laplacian), i.e. get a blurred twin."""
    import cv2

    return np.array(
        [cv2.Laplacian(img, cv2.CV_64F).var() > SHARP_LAPLACIAN for img in images], dtype=bool
    )


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of epoch `epoch`: a function of (seed, epoch) only, so a resume replays it."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def make_batch(images, labels, sharp, u, cfg: TrainConfig):
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


def batches(faces: data.FaceSet, cfg: TrainConfig, first_epoch: int, last_epoch: int):
    """Batches for epochs first_epoch..last_epoch-1 as one stream, and the steps per epoch.

    A tf.data pipeline on TensorFlow (stateless random draws keyed by the global step), a
    PyDataset elsewhere (NumPy draws keyed the same way); each epoch's order from `epoch_order`.
    """
    n, bs = len(faces), cfg.batch_size
    steps = math.ceil(n / bs)
    orders = np.stack([epoch_order(n, cfg.seed, e) for e in range(first_epoch, last_epoch)])
    sharp = sharp_mask(faces.images) if cfg.consistency > 0 else np.zeros(n, dtype=bool)
    images, labels = faces.images[..., None], one_hot(faces.labels)
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


def _read_history(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    try:
        with open(path, newline="") as fh:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]
    except (ValueError, TypeError, UnicodeDecodeError) as err:
        raise FerkitError(f"{path}: not a training history ({err})") from err


def _columns(rows: list[dict[str, float]]) -> dict[str, list[float]]:
    keys = rows[0].keys() if rows else []
    return {k: [r[k] for r in rows] for k in keys if k != "epoch"}


def _write_history(path: Path, rows: list[dict[str, float]]) -> None:
    buf = io.StringIO()
    keys = ["epoch"] + sorted({k for r in rows for k in r} - {"epoch"})
    writer = csv.DictWriter(buf, keys, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: int(v) if k == "epoch" else v for k, v in r.items()})
    write_atomic(path, buf.getvalue().encode())


def _failpoint(name: str, epoch: int) -> None:
    """Kill this process here when FERKIT_FAILPOINT says so: how the tests put a SIGKILL
    inside a save window deterministically (a sleep-and-kill would only usually hit it)."""
    if os.environ.get(FAILPOINT_ENV) == f"{name}:{epoch}":
        os.kill(os.getpid(), signal.SIGKILL)


def _backup_files(folder: Path) -> list[tuple[int, Path]]:
    """Complete backups (temporary names never match), newest first."""
    found = []
    for path in folder.glob("epoch-*.weights.h5"):
        number = path.name[len("epoch-") : -len(".weights.h5")]
        if number.isdigit():
            found.append((int(number), path))
    return sorted(found, reverse=True)


SEED_STATES = "ferkit_seed_states"


def _seed_variables(trainer: keras.Model) -> list:
    """The dropout layers' random states: Keras leaves them out of saved weights, and without
    them a resumed run would draw other dropout masks than an uninterrupted one."""
    return [v for v in trainer.variables if v.path.endswith("seed_generator_state")]


def _save_backup(trainer: keras.Model, path: Path) -> None:
    """Weights, optimizer state and random states in one file (one rename makes it whole)."""
    import h5py

    trainer.save_weights(path)
    with h5py.File(path, "a") as h5:
        h5[SEED_STATES] = np.stack([np.asarray(v.numpy()) for v in _seed_variables(trainer)])


def _load_seed_states(trainer: keras.Model, path: Path) -> None:
    import h5py

    with h5py.File(path, "r") as h5:
        states = h5[SEED_STATES][()]
    for variable, state in zip(_seed_variables(trainer), states, strict=True):
        variable.assign(state)


def restore_backup(trainer: keras.Model, folder: Path) -> int:
    """Load the newest readable backup into a built trainer; returns its epoch count.

    An unreadable backup (a disk fault, a copy cut short) is reported and the one before it
    tried; with none readable, the run cannot continue and the error says what to do.
    """
    remove_temps(folder)  # what a kill inside a save left
    candidates = _backup_files(folder)
    for epochs_done, path in candidates:
        try:
            trainer.load_weights(path)
            _load_seed_states(trainer, path)
        except Exception as err:  # h5py raises OSError, KeyError or ValueError by fault
            log.warning("%s: unreadable backup (%s); trying the one before it", path, err)
            continue
        return epochs_done
    if candidates:
        raise FerkitError(
            f"{folder}: no readable backup ({len(candidates)} damaged); "
            "start the run again in a new --out folder"
        )
    return 0


def predict(net, images: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Scores by plain calls in inference mode: safe inside `fit` (on JAX, `predict` of a
    model whose trainer is mid-fit trips over the trainer's donated weight buffers)."""
    return np.concatenate(
        [
            keras.ops.convert_to_numpy(net(images[i : i + chunk], training=False))
            for i in range(0, len(images), chunk)
        ]
    )


class _EpochFiles(keras.callbacks.Callback):
    """Everything a run writes at an epoch's end, in an order that a kill between any two
    steps leaves consistent: history, best weights and curves first, the backup last (a
    resume truncates the history to the backup's epoch and replays the rest)."""

    def __init__(self, out: Path, net, cfg: TrainConfig, rows: list[dict], val_images):
        super().__init__()
        self.out, self.net, self.cfg, self.rows = out, net, cfg, rows
        self.val_images = val_images
        self.best = max((r.get("val_accuracy", 0.0) for r in rows), default=0.0)
        self.predictions = self._read_predictions()
        self.started = time.monotonic()

    def _read_predictions(self):
        path = self.out / PREDICTIONS_NAME
        if self.cfg.fold is None or not path.exists():
            return []
        return list(np.load(path)[: len(self.rows)])

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self.rows.append({"epoch": epoch, **logs})
        _write_history(self.out / "history.csv", self.rows)
        with ema_weights(self.model):  # what is validated is what is kept
            if self.cfg.fold is not None:  # the held-out fold's answers, for out-of-fold scores
                scores = predict(self.net, self.val_images)
                self.predictions.append(scores.argmax(axis=1).astype(np.int8))
                write_atomic(
                    self.out / PREDICTIONS_NAME, _npy_bytes(np.save, np.stack(self.predictions))
                )
            if self.cfg.fold is not None or self.cfg.keep_epochs:
                save_epoch_weights(self.net, self.out, epoch + 1)
            if logs.get("val_accuracy", -1.0) > self.best:
                self.best = logs["val_accuracy"]
                self._save(self.net, self.out / "best.weights.h5")
        training_curves(_columns(self.rows), self.out / "curves.png")
        (self.out / "backup").mkdir(exist_ok=True)
        backup = self.out / "backup" / f"epoch-{epoch + 1:04d}.weights.h5"
        self._save(self.model, backup, epoch=epoch + 1)
        for _, old in _backup_files(self.out / "backup")[2:]:  # keep two complete
            old.unlink(missing_ok=True)
        minutes = (time.monotonic() - self.started) / 60
        if self.cfg.max_minutes and minutes > self.cfg.max_minutes:
            log.warning("stopping after %.1f min (--max-minutes %s)", minutes, self.cfg.max_minutes)
            self.model.stop_training = True

    @staticmethod
    def _save(model, path: Path, epoch: int | None = None) -> None:
        """Weights under a temporary name, then renamed; with `epoch`, a full backup."""
        with replacing(path) as tmp:
            if epoch is not None:
                _save_backup(model, tmp)
                _failpoint("backup", epoch)
            else:
                model.save_weights(tmp)


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


def train(
    cfg: TrainConfig,
    out: Path,
    resume: bool = False,
    verbose: int = 1,
    callbacks: list | None = None,
    only_fold: int | None = None,
) -> dict:
    """Train the run in `out` (a K-fold run when `cfg.folds`); returns the model's metadata.

    `only_fold` (1-based) trains that fold of a K-fold run and stops, so that the folds can
    run as parallel processes (a GPU is shared by several); 0 trains the final model beside
    them, every epoch kept; `--resume` then finishes the run.
    """
    out = Path(out)
    if only_fold is not None:
        return _train_fold(cfg, out, only_fold, resume, verbose, callbacks)
    before = set(out.iterdir()) if out.is_dir() else None  # what was there: kept on failure
    try:
        cfg = prepare_run(cfg, out, resume)
        if cfg.folds and cfg.fold is None and cfg.stop_after is None:
            return train_folds(cfg, out, verbose, callbacks)
        return _train_one(cfg, out, verbose, callbacks)
    except Exception:  # not Ctrl-C: an interrupted first epoch resumes with its config
        if not resume:
            _remove_unstarted(out, before)
        raise


def _remove_unstarted(out: Path, before: set[Path] | None) -> None:
    """A new run that failed before its first epoch (bad data, a refused teacher) leaves
    nothing behind, so the corrected command can start again without --resume."""
    if not out.is_dir() or any(out.rglob("history.csv")) or any(out.rglob("backup")):
        return
    if before is None:  # the run made the folder
        shutil.rmtree(out, ignore_errors=True)
        return
    for path in set(out.iterdir()) - before:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def _train_fold(
    cfg: TrainConfig, out: Path, number: int, resume: bool, verbose: int, callbacks
) -> dict:
    """One fold of a K-fold run; several processes may start the same run at once, so the
    run's config is written when missing and otherwise must be the same."""
    config_path = out / "config.json"
    if resume or config_path.exists():
        saved = prepare_run(cfg, out, resume=True)
        if not resume and saved != cfg:
            raise FerkitError(f"{out}: another run is there; add --resume to continue it")
        cfg = saved
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_json(config_path, asdict(cfg))
    if not cfg.folds or not 0 <= number <= cfg.folds:
        given = "final" if number == 0 else number
        raise FerkitError(f"--fold needs --folds K and 1..K or 'final', got {given}")
    if number == 0:
        sub, sub_cfg = out / "final", replace(cfg, keep_epochs=True)
    else:
        sub, sub_cfg = out / f"fold-{number}", replace(cfg, fold=number - 1)
    sub_cfg = prepare_run(sub_cfg, sub, (sub / "config.json").exists())
    return _train_one(sub_cfg, sub, verbose, callbacks)


def _train_one(cfg: TrainConfig, out: Path, verbose: int, callbacks: list | None) -> dict:
    """Fit one run (resuming from its backup if any) and save its model files."""
    from ferkit.serialize import save_model_files

    train_set, val_set = assemble(cfg)
    data.write_list(out / "train_files.txt", sorted(set(train_set.names)))
    data.write_list(out / "val_files.txt", val_set.names if val_set else [])
    keras.utils.set_random_seed(cfg.seed)
    keras.mixed_precision.set_global_policy(cfg.precision)
    steps = math.ceil(len(train_set) / cfg.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate, steps * cfg.epochs, alpha=0.01
    )
    teachers = load_teachers(cfg, val_set)
    trainer = build_trainer(
        cfg.arch, schedule, cfg.label_smoothing, cfg.consistency, cfg.ema, teachers, cfg.distill
    )
    first = restore_backup(trainer, out / "backup") if (out / "backup").exists() else 0
    if first == 0 and cfg.init:
        start_from(trainer, cfg)
    rows = [r for r in _read_history(out / "history.csv") if r["epoch"] < first]
    last = min(cfg.epochs, cfg.stop_after or cfg.epochs)
    val_x = _val_inputs(val_set, cfg.input_blur) if val_set else None
    started = time.monotonic()
    if first < last:
        stream, steps_per_epoch = batches(train_set, cfg, first, last)
        trainer.fit(
            stream,
            steps_per_epoch=steps_per_epoch,
            initial_epoch=first,
            epochs=last,
            validation_data=(val_x, one_hot(val_set.labels)) if val_set else None,
            shuffle=False,  # the stream is ordered by `epoch_order` already
            class_weight=class_weights(train_set.labels, cfg.class_weight),
            callbacks=[_EpochFiles(out, trainer.net, cfg, rows, val_x)]
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
    history = _columns(_read_history(out / "history.csv"))
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
    from ferkit.preprocess import blur

    return np.stack([blur(img, sigma) for img in val_set.images])[..., None].astype("float32")


def model_metadata(cfg: TrainConfig, net, train_set: data.FaceSet) -> dict:
    """What a model folder says about itself, including the faces it trained on (and those
    its `--init` model and its teachers trained on: what they learned of them is in it)."""
    from ferkit.serialize import read_metadata

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


def blur_agreement(net, images: np.ndarray, seed: int = 0) -> float:
    """How often the net gives a sharp face and its blurred twin (as train/ holds faces) the
    same answer: what blur-consistency training is meant to raise."""
    x = images[..., None].astype("float32")
    u = np.random.default_rng(seed).random(len(x), dtype=np.float32)
    twin = jpeg(keras.ops.convert_to_numpy(blurred_twin(x, u)))
    return agreement(predict(net, x), predict(net, twin))


def _npy_bytes(save, *arrays: np.ndarray) -> bytes:
    """What `np.save` or `np.savez` writes, as bytes for `write_atomic`."""
    buffer = io.BytesIO()
    save(buffer, *arrays)
    return buffer.getvalue()


def _epoch_weights_path(run: Path, epoch: int) -> Path:
    return run / "epochs" / f"epoch-{epoch:04d}.npz"


def save_epoch_weights(net, run: Path, epoch: int) -> None:
    """A fold's weights after every epoch (as arrays, by position: layer names differ between
    builds), so that its model can be the one of the epoch the folds choose together."""
    path = _epoch_weights_path(run, epoch)
    path.parent.mkdir(exist_ok=True)
    write_atomic(path, _npy_bytes(np.savez, *net.get_weights()))


def keep_epoch(run: Path, epoch: int, held: data.FaceSet | None = None) -> float | None:
    """Make a fold's (or a final run's) model files those of `epoch`; returns its blur
    agreement on `held`.

    Each fold first saves its best validation epoch, a choice made on its own held-out faces;
    the model that `ferkit evaluate --out-of-fold` scores them with must be the chosen epoch's.
    """
    from ferkit.serialize import read_metadata, save_model_files

    metadata = read_metadata(run)
    scores = metadata.setdefault("metrics", {})  # a final run has no validation metrics
    if metadata["training"].get("epoch_kept") == epoch:  # a resume after it was done
        return scores.get("blur_agreement")
    net = network(metadata["arch"])
    with np.load(_epoch_weights_path(run, epoch)) as z:
        net.set_weights([z[f"arr_{i}"] for i in range(len(z.files))])
    metadata["training"]["epoch_kept"] = epoch
    if held is not None:
        scores["blur_agreement"] = blur_agreement(net, held.images)
    save_model_files(run, net, metadata)
    return scores.get("blur_agreement")


def _complete(run: Path) -> bool:
    """A run whose model files were saved (the backup goes only after that)."""
    return (run / "metadata.json").exists() and not (run / "backup").exists()


def train_folds(cfg: TrainConfig, out: Path, verbose: int, callbacks: list | None) -> dict:
    """K runs over the folds, out-of-fold scores per epoch, the epoch count they pick, and a
    final model on every sharp face for that many epochs (its files are copied into `out`)."""
    from ferkit.serialize import JSON_NAME, WEIGHTS_NAME, read_metadata, write_metadata

    sharp = data.load_part(cfg.val, "PublicTest")
    folds = sharp_folds(sharp, cfg)
    predictions = np.full((cfg.epochs, len(sharp)), -1, dtype=np.int64)
    for i, held in enumerate(folds):
        sub = out / f"fold-{i + 1}"
        if not _complete(sub):
            log.info("fold %d of %d", i + 1, cfg.folds)
            sub_cfg = prepare_run(replace(cfg, fold=i), sub, (sub / "config.json").exists())
            _train_one(sub_cfg, sub, verbose, callbacks)
        rows = np.load(sub / PREDICTIONS_NAME)
        predictions[: len(rows), held] = rows
    # the epochs every fold reached (--max-minutes may stop some early)
    complete = int((predictions >= 0).all(axis=1).sum())
    if complete == 0:
        raise FerkitError(f"{out}: no epoch was completed by every fold")
    per_epoch = [metrics(sharp.labels, predictions[e]) for e in range(complete)]
    best = int(np.argmax([m["accuracy"] for m in per_epoch]))
    chosen = per_epoch[best]
    agreements = [
        keep_epoch(out / f"fold-{i + 1}", best + 1, sharp.subset(held))
        for i, held in enumerate(folds)
    ]
    report = {
        "folds": cfg.folds,
        "n": len(sharp),
        "epochs": best + 1,
        "accuracy": chosen["accuracy"],
        "macro_recall": chosen["macro_recall"],
        "interval_95": bootstrap_interval(sharp.labels, predictions[best]),
        "per_class": chosen["per_class"],
        "confusion": chosen["confusion"],
        "blur_agreement": float(np.mean(agreements)),  # each fold's, at that epoch, on its fold
        "per_epoch": [
            {"epoch": e + 1, "accuracy": m["accuracy"], "macro_recall": m["macro_recall"]}
            for e, m in enumerate(per_epoch)
        ],
    }
    write_json(out / "folds.json", report)
    log.info(
        "out-of-fold accuracy %.2f%% (macro-recall %.2f%%) at %d epochs",
        100 * report["accuracy"],
        100 * report["macro_recall"],
        best + 1,
    )
    final = out / "final"
    if (  # a --fold final that --max-minutes stopped before the chosen epoch
        _complete(final)
        and not _epoch_weights_path(final, best + 1).exists()
        and read_metadata(final)["training"]["epochs_run"] != best + 1
    ):
        log.warning("%s stopped before epoch %d: training it again", final, best + 1)
        shutil.rmtree(final)
    if not _complete(final):
        chosen = {"stop_after": best + 1, "max_minutes": None}  # every chosen epoch
        saved = prepare_run(
            replace(cfg, fold=None, **chosen), final, (final / "config.json").exists()
        )
        # an interrupted --fold final resumes with its own saved config: to this epoch too
        _train_one(replace(saved, **chosen), final, verbose, callbacks)
    if _epoch_weights_path(final, best + 1).exists():  # trained beside the folds
        keep_epoch(final, best + 1)
    metadata = read_metadata(final)
    if metadata["training"].get("epoch_kept", metadata["training"]["epochs_run"]) != best + 1:
        raise FerkitError(f"{final}: not the model of epoch {best + 1}; remove it and --resume")
    metadata["metrics"] = {"out_of_fold": {k: v for k, v in report.items() if k != "per_epoch"}}
    for name in (JSON_NAME, WEIGHTS_NAME):
        write_atomic(out / name, (final / name).read_bytes())
    write_metadata(out, metadata)
    return metadata
