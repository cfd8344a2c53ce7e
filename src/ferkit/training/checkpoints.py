"""What a run keeps so that it survives a SIGKILL at any moment: history.csv, the best weights,
curves.png, and backups with optimizer and random states (the last two complete), each written
under a temporary name and renamed; and each epoch's weights where a K-fold run needs them.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np

from ferkit.errors import FerkitError
from ferkit.files import npy_bytes, remove_temps, replacing, write_atomic
from ferkit.model.folder import JSON_NAME, WEIGHTS_NAME, write_metadata
from ferkit.plots import training_curves
from ferkit.training.config import TrainConfig
from ferkit.training.nets import ema_weights, predict

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


# a fold's held-out scores, epochs x faces x classes (float16): what out-of-fold figures,
# alone or joined with another model, are computed from without the fold's weights
SCORES_NAME = "val_scores.npy"


FAILPOINT_ENV = "FERKIT_FAILPOINT"  # tests: "backup:N" kills the run inside epoch N's save


def read_history(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    try:
        with open(path, newline="") as fh:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]
    except (ValueError, TypeError, UnicodeDecodeError) as err:
        raise FerkitError(f"{path}: not a training history ({err})") from err


def history_columns(rows: list[dict[str, float]]) -> dict[str, list[float]]:
    keys = rows[0].keys() if rows else []
    return {k: [r[k] for r in rows] for k in keys if k != "epoch"}


def write_history(path: Path, rows: list[dict[str, float]]) -> None:
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


class EpochFiles(keras.callbacks.Callback):
    """Everything a run writes at an epoch's end, in an order that a kill between any two
    steps leaves consistent: history, best weights and curves first, the backup last (a
    resume truncates the history to the backup's epoch and replays the rest)."""

    def __init__(
        self,
        out: Path,
        net: keras.Model,
        cfg: TrainConfig,
        rows: list[dict],
        val_images: np.ndarray | None,
    ):
        super().__init__()
        self.out, self.net, self.cfg, self.rows = out, net, cfg, rows
        self.val_images = val_images
        self.best = max((r.get("val_accuracy", 0.0) for r in rows), default=0.0)
        self.scores = self._read_scores()
        self.started = time.monotonic()

    def _read_scores(self):
        path = self.out / SCORES_NAME
        if self.cfg.fold is None or not path.exists():
            return []
        return list(np.load(path)[: len(self.rows)])

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self.rows.append({"epoch": epoch, **logs})
        write_history(self.out / "history.csv", self.rows)
        with ema_weights(self.model):  # what is validated is what is kept
            if self.cfg.fold is not None:  # the held-out fold's answers, for out-of-fold scores
                self.scores.append(predict(self.net, self.val_images).astype(np.float16))
                write_atomic(self.out / SCORES_NAME, npy_bytes(np.save, np.stack(self.scores)))
            if self.cfg.fold is not None or self.cfg.keep_epochs:
                save_epoch_weights(self.net, self.out, epoch + 1)
            if logs.get("val_accuracy", -1.0) > self.best:
                self.best = logs["val_accuracy"]
                self._save(self.net, self.out / "best.weights.h5")
        training_curves(history_columns(self.rows), self.out / "curves.png")
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


def epoch_weights_path(run: Path, epoch: int) -> Path:
    return run / "epochs" / f"epoch-{epoch:04d}.npz"


def save_epoch_weights(net: keras.Model, run: Path, epoch: int) -> None:
    """A fold's weights after every epoch (as arrays, by position: layer names differ between
    builds), so that its model can be the one of the epoch the folds choose together."""
    path = epoch_weights_path(run, epoch)
    path.parent.mkdir(exist_ok=True)
    write_atomic(path, npy_bytes(np.savez, *net.get_weights()))


def epoch_weights(run: Path, epoch: int) -> list[np.ndarray]:
    """The weights `save_epoch_weights` kept after `epoch`, in `get_weights` order."""
    with np.load(epoch_weights_path(run, epoch)) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


def save_model_files(folder: Path, model: keras.Model, metadata: dict) -> None:
    """Save architecture, weights (without optimizer state: a third of the size) and metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    config = json.loads(model.to_json())
    config.pop("compile_config", None)  # a predictor needs no optimizer
    model_json = json.dumps(config)
    bare = keras.models.model_from_json(model_json)
    bare.set_weights(model.get_weights())
    with replacing(folder / WEIGHTS_NAME) as tmp:
        bare.save_weights(tmp)
    write_atomic(folder / JSON_NAME, model_json.encode())
    write_metadata(folder, metadata)
