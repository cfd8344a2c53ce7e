"""Teachers for distillation: a model folder, or a K-fold run whose fold i teaches fold i of
the same split and whose folds all teach the final model; a teacher that saw a validation
face is refused (its answers would carry the label into training).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from ferkit.errors import FerkitError
from ferkit.model.fingerprints import decode_fingerprints, fingerprints
from ferkit.training import data
from ferkit.training.config import TrainConfig
from ferkit.training.evaluate import fold_folders


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
    from ferkit.model.folder import JSON_NAME, WEIGHTS_NAME, load_keras_model, read_metadata

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
