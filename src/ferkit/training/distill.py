"""Teachers for distillation: a model folder (an ensemble too), or a K-fold run whose fold i
teaches fold i of the same split and whose folds all teach the final model; a teacher that
saw a validation face the run does not train on is refused (its answers would carry the
label into training).

A teacher answers once per training face, before the first epoch, through the predicting
path users run (`FacialExpressionModel`: each ensemble member with its own preprocessing, the
ensemble's rule, the folder's calibration). So any model folder can teach, a three-net
ensemble costs one pass over the faces instead of three forward passes a step (2x the
epoch on the 2-core CPU), and what the student learns is the answer the teacher serves.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ferkit.errors import FerkitError
from ferkit.model.fingerprints import fingerprints, training_overlap
from ferkit.model.folder import read_metadata
from ferkit.model.recognizer import FacialExpressionModel
from ferkit.training import data
from ferkit.training.batches import one_hot
from ferkit.training.config import TrainConfig
from ferkit.training.evaluate import fold_folders

log = logging.getLogger(__name__)


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


def teacher_targets(
    cfg: TrainConfig, train_set: data.FaceSet, val_set: data.FaceSet | None
) -> np.ndarray | None:
    """Each training face's target, or None without `--teacher`: `distill` x the teachers'
    mean (calibrated) scores for it + (1 - `distill`) x its label. Each teacher is refused if
    it trained on a face this run validates on, unless the run trains on that face itself
    (FER2013 holds a few faces twice, e.g. in train/ and publictest/: the label is in the
    run either way)."""
    folders = teacher_folders(cfg)
    if not folders:
        return None
    if not 0 <= cfg.distill <= 1:
        raise FerkitError(f"--distill must be between 0 and 1, got {cfg.distill}")
    only_validated = (
        train_set.images[:0]
        if val_set is None
        else val_set.images[~np.isin(fingerprints(val_set.images), fingerprints(train_set.images))]
    )
    started, scores = time.monotonic(), []
    for folder in folders:
        seen = training_overlap(read_metadata(folder), only_validated)
        if seen is None:
            raise FerkitError(f"{folder}: --teacher needs a ferkit model folder or K-fold run")
        if seen:
            raise FerkitError(
                f"{folder}: the teacher trained on {seen} of this run's validation faces; "
                "use a run with the same folds (--folds, --split-seed) or another teacher"
            )
        scores.append(FacialExpressionModel.load(folder).predict_scores(train_set.images))
    log.info(
        "%d teacher(s) scored %d training faces in %.1f s",
        len(folders),
        len(train_set),
        time.monotonic() - started,
    )
    soft = np.mean(scores, axis=0)
    return ((1 - cfg.distill) * one_hot(train_set.labels) + cfg.distill * soft).astype("float32")
