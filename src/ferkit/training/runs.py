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
predictions give out-of-fold scores on every sharp face (`folds.json`), stated at the last
epoch every fold reached (the recipe's, not the best one on these faces); each fold's model
then becomes its weights of that epoch (kept per epoch in `fold-N/epochs/`), so `ferkit
evaluate --out-of-fold` can score the figure again. `final/` trains on all sharp faces for
that many epochs, and its model is the run's model. With `--fold final` it trains alongside
the folds instead, for every epoch, keeping each; the resume that ends the run then keeps
that epoch's (same batches, same schedule: the same weights as a run stopped there), so a
lent GPU runs the whole K-fold in one go.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ferkit.training.config import TrainConfig
from ferkit.training.fit import prepare_run, train_one
from ferkit.training.folds import train_fold, train_folds


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
        return train_fold(cfg, out, only_fold, resume, verbose, callbacks)
    before = set(out.iterdir()) if out.is_dir() else None  # what was there: kept on failure
    try:
        cfg = prepare_run(cfg, out, resume)
        if cfg.folds and cfg.fold is None and cfg.stop_after is None:
            return train_folds(cfg, out, verbose, callbacks)
        return train_one(cfg, out, verbose, callbacks)
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
