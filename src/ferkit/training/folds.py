"""K-fold runs over the sharp faces: each fold validated on one stratified K-th, its
per-epoch answers pooled into out-of-fold scores that fix the epoch count, then the final
model on every sharp face for that many epochs.
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
    the model that `ferkit evaluate --out-of-fold` scores them with must be the chosen epoch's.
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
    """K runs over the folds, out-of-fold scores per epoch, the epoch count they pick, and a
    final model on every sharp face for that many epochs (its files are copied into `out`)."""
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
        and not epoch_weights_path(final, best + 1).exists()
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
        train_one(replace(saved, **chosen), final, verbose, callbacks)
    if epoch_weights_path(final, best + 1).exists():  # trained beside the folds
        keep_epoch(final, best + 1)
    metadata = read_metadata(final)
    if metadata["training"].get("epoch_kept", metadata["training"]["epochs_run"]) != best + 1:
        raise FerkitError(f"{final}: not the model of epoch {best + 1}; remove it and --resume")
    metadata["metrics"] = {"out_of_fold": {k: v for k, v in report.items() if k != "per_epoch"}}
    for name in (JSON_NAME, WEIGHTS_NAME):
        write_atomic(out / name, (final / name).read_bytes())
    write_metadata(out, metadata)
    return metadata
