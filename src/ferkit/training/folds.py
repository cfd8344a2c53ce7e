"""K-fold runs over the sharp faces: each fold validated on one stratified K-th, its
per-epoch answers pooled into out-of-fold scores, the figure stated at the recipe's last
epoch, then the final model on every sharp face for that many epochs.

The epoch is the recipe's, not the best pooled one: picking the best of 40 epochs on the
held-out faces flatters the figure (by 0.4 point on the embedded recipe's five folds), and the
shipping rule compares recipes at their last epoch.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from ferkit.errors import FerkitError
from ferkit.files import write_atomic, write_json
from ferkit.training import data
from ferkit.training.checkpoints import (
    SCORES_NAME,
    epoch_weights,
    epoch_weights_path,
    save_model_files,
)
from ferkit.training.config import TrainConfig
from ferkit.training.evaluate import bootstrap_interval, metrics
from ferkit.training.fit import blur_agreement, prepare_run, train_one
from ferkit.training.nets import network

log = logging.getLogger(__name__)


def train_fold(
    cfg: TrainConfig, out: Path, number: int, resume: bool, verbose: int, callbacks: list | None
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
    return train_one(sub_cfg, sub, verbose, callbacks)


def keep_epoch(run: Path, epoch: int, held: data.FaceSet | None = None) -> float | None:
    """Make a fold's (or a final run's) model files those of `epoch`; returns its blur
    agreement on `held`.

    Each fold first saves its best validation epoch, a choice made on its own held-out faces;
    the model that `ferkit evaluate --out-of-fold` scores them with must be the stated epoch's.
    """
    from ferkit.model.folder import read_metadata

    metadata = read_metadata(run)
    scores = metadata.setdefault("metrics", {})  # a final run has no validation metrics
    if metadata["training"].get("epoch_kept") == epoch:  # a resume after it was done
        return scores.get("blur_agreement")
    net = network(metadata["arch"])
    net.set_weights(epoch_weights(run, epoch))
    metadata["training"]["epoch_kept"] = epoch
    if held is not None:
        scores["blur_agreement"] = blur_agreement(net, held.images)
    save_model_files(run, net, metadata)
    return scores.get("blur_agreement")


def _complete(run: Path) -> bool:
    """A run whose model files were saved (the backup goes only after that)."""
    return (run / "metadata.json").exists() and not (run / "backup").exists()


def train_folds(cfg: TrainConfig, out: Path, verbose: int, callbacks: list | None) -> dict:
    """K runs over the folds, out-of-fold scores per epoch, the figure at the last epoch every
    fold reached, and a final model on every sharp face for that many epochs (its files are
    copied into `out`)."""
    from ferkit.model.folder import JSON_NAME, WEIGHTS_NAME, read_metadata, write_metadata

    sharp = data.load_part(cfg.val, "PublicTest")
    folds = data.sharp_folds(sharp, cfg.folds, cfg.split_seed)
    predictions = np.full((cfg.epochs, len(sharp)), -1, dtype=np.int64)
    for i, held in enumerate(folds):
        sub = out / f"fold-{i + 1}"
        if not _complete(sub):
            log.info("fold %d of %d", i + 1, cfg.folds)
            sub_cfg = prepare_run(replace(cfg, fold=i), sub, (sub / "config.json").exists())
            train_one(sub_cfg, sub, verbose, callbacks)
        rows = np.load(sub / SCORES_NAME).argmax(axis=2)
        predictions[: len(rows), held] = rows
    # the epochs every fold reached (--max-minutes may stop some early): the last is stated
    epochs = int((predictions >= 0).all(axis=1).sum())
    if epochs == 0:
        raise FerkitError(f"{out}: no epoch was completed by every fold")
    per_epoch = [metrics(sharp.labels, predictions[e]) for e in range(epochs)]
    stated = per_epoch[-1]
    agreements = [
        keep_epoch(out / f"fold-{i + 1}", epochs, sharp.subset(held))
        for i, held in enumerate(folds)
    ]
    report = {
        "folds": cfg.folds,
        "n": len(sharp),
        "epochs": epochs,
        "accuracy": stated["accuracy"],
        "macro_recall": stated["macro_recall"],
        "interval_95": bootstrap_interval(sharp.labels, predictions[epochs - 1]),
        "per_class": stated["per_class"],
        "confusion": stated["confusion"],
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
        epochs,
    )
    final = out / "final"
    if (  # a --fold final that --max-minutes stopped before that epoch
        _complete(final)
        and not epoch_weights_path(final, epochs).exists()
        and read_metadata(final)["training"]["epochs_run"] != epochs
    ):
        log.warning("%s stopped before epoch %d: training it again", final, epochs)
        shutil.rmtree(final)
    if not _complete(final):
        stop = {"stop_after": epochs, "max_minutes": None}  # every fold's epoch count
        saved = prepare_run(
            replace(cfg, fold=None, **stop), final, (final / "config.json").exists()
        )
        # an interrupted --fold final resumes with its own saved config: to this epoch too
        train_one(replace(saved, **stop), final, verbose, callbacks)
    if epoch_weights_path(final, epochs).exists():  # trained beside the folds
        keep_epoch(final, epochs)
    metadata = read_metadata(final)
    if metadata["training"].get("epoch_kept", metadata["training"]["epochs_run"]) != epochs:
        raise FerkitError(f"{final}: not the model of epoch {epochs}; remove it and --resume")
    metadata["metrics"] = {"out_of_fold": {k: v for k, v in report.items() if k != "per_epoch"}}
    for name in (JSON_NAME, WEIGHTS_NAME):
        write_atomic(out / name, (final / name).read_bytes())
    write_metadata(out, metadata)
    return metadata
