"""The out-of-fold figure of an unfinished K-fold run, from the folds that are done.

`ferkit train --folds` states the figure only once every fold is done (`folds.json`). While a
long run is under way (the CPU's 5-fold takes hours), this pools the finished folds' held-out
answers at the last epoch (each fold's `val_predictions.npy`, one row an epoch: the scores of
the net at that epoch, not of its best validation epoch, which its own held-out faces chose).

    .venv/bin/python scripts/kfold_progress.py runs/kfold-default [../shared/data/fer2013/publictest]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ferkit.training import data
from ferkit.training.evaluate import bootstrap_interval, fold_folders, metrics


def main(run: Path, sharp: str) -> None:
    faces = data.load(sharp)
    truth, answers = [], []
    for fold in fold_folders(run):
        if not (fold / "metadata.json").exists() or (fold / "backup").exists():
            print(f"{fold.name}: not finished")
            continue
        labels = faces.only(data.read_list(fold / "val_files.txt")).labels
        last = np.load(fold / "val_predictions.npy")[-1]
        m = metrics(labels, last)
        print(
            f"{fold.name}: {m['accuracy']:.1%}, macro-recall {m['macro_recall']:.1%}, {len(labels)} faces"
        )
        truth.append(labels)
        answers.append(last)
    if not truth:
        sys.exit(f"{run}: no finished fold")
    y, p = np.concatenate(truth), np.concatenate(answers)
    m, ci = metrics(y, p), bootstrap_interval(y, p)
    acc, rec = ci["accuracy"], ci["macro_recall"]
    print(
        f"pooled: {m['accuracy']:.1%} (95% {acc[0]:.1%}-{acc[1]:.1%}), macro-recall "
        f"{m['macro_recall']:.1%} ({rec[0]:.1%}-{rec[1]:.1%}), on {len(y)} sharp faces"
    )


if __name__ == "__main__":
    main(
        Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "../shared/data/fer2013/publictest"
    )
