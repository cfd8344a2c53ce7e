"""Accuracy, macro-recall, per-class precision/recall/F1 and the confusion matrix; their
confidence intervals; and whether the evaluated faces are ones the model trained on.

Whether the faces are ones the model trained on comes from `ferkit.model.fingerprints`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ferkit.errors import FerkitError
from ferkit.labels import EMOTIONS, NUM_CLASSES
from ferkit.model.fingerprints import decode_fingerprints, fingerprints, trained_on
from ferkit.training.data import FaceSet, read_list, write_list

if TYPE_CHECKING:
    from ferkit.model.recognizer import FacialExpressionModel


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Counts with true classes as rows and predictions as columns."""
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Accuracy hides the rare classes (disgust is 1.5%): macro-recall and per-class scores don't."""
    matrix = confusion_matrix(y_true, y_pred)
    tp = np.diag(matrix).astype(float)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(tp.sum() / max(len(y_true), 1)),
        "macro_recall": float(recall[support > 0].mean()) if support.any() else 0.0,
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(EMOTIONS)
        },
        "confusion": matrix.tolist(),
    }


def format_report(result: dict) -> str:
    """A plain-text table for the terminal; its columns as wide as the longest label
    ("surprise"), so none is cut."""
    label = max(map(len, EMOTIONS)) + 2  # the row labels' column
    count = max(label, len(str(result["n"])) + 2)  # a confusion column: its label or a count
    lines = [
        f"images: {result['n']}   accuracy: {result['accuracy']:.2%}   "
        f"macro-recall: {result['macro_recall']:.2%}",
        "",
        f"{'class':<{label}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}",
    ]
    for name, row in result["per_class"].items():
        lines.append(
            f"{name:<{label}}{row['precision']:>10.3f}{row['recall']:>10.3f}"
            f"{row['f1']:>10.3f}{row['support']:>10}"
        )
    lines += [
        "",
        "confusion (rows: true, columns: predicted)",
        " " * label + "".join(f"{n:>{count}}" for n in EMOTIONS),
    ]
    for name, row in zip(EMOTIONS, result["confusion"]):
        lines.append(f"{name:<{label}}" + "".join(f"{v:>{count}}" for v in row))
    return "\n".join(lines)


def mcnemar(a_right: np.ndarray, b_right: np.ndarray) -> dict:
    """Two answers on the same faces, compared where they differ: the exact McNemar test
    (two-sided binomial on the discordant faces), the fair test for a paired comparison."""
    only_a = int((a_right & ~b_right).sum())
    only_b = int((b_right & ~a_right).sum())
    n, k = only_a + only_b, min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n if n else 1.0
    return {"only_first": only_a, "only_second": only_b, "p": min(1.0, 2 * tail)}


SHIPPING_P = 0.05


def measurably_better(right: np.ndarray, theirs: np.ndarray) -> bool:
    """The shipping rule's verdict on two answers to the same faces: right on more of them,
    and by more than chance (McNemar p < SHIPPING_P). A win by a handful of faces is a tie:
    two 40-epoch recipes that differ on 410 of 2,872 faces split them 206 to 204."""
    return _wins(mcnemar(right, theirs))


def _wins(test: dict) -> bool:
    """`measurably_better` read off a McNemar result: the faces both get right (or both
    miss) cancel, so "right on more" is "right on more of the faces where they differ"."""
    return test["only_first"] > test["only_second"] and test["p"] < SHIPPING_P


def paired(
    scores: np.ndarray,
    reference: FacialExpressionModel,
    faces: FaceSet,
    images: np.ndarray,
    model: FacialExpressionModel | None = None,
) -> dict:
    """A candidate's answers (`scores`, from `model`, or out of fold when None) and a
    `reference` model's, compared face by face on the faces neither trained on: the
    shipping rule's comparison (`better`: `measurably_better`), with McNemar's test."""
    seen = trained_on(reference.metadata, faces.images)
    if seen is None:
        raise FerkitError("the reference model does not list the faces it trained on")
    mine = trained_on(model.metadata, faces.images) if model is not None else None
    keep = ~(seen | mine) if mine is not None else ~seen
    if not keep.any():
        raise FerkitError("the reference or the candidate trained on every one of these faces")
    labels = faces.labels[keep]
    right = scores[keep].argmax(axis=1) == labels
    return _verdict(right, reference.predict_scores(images[keep]).argmax(axis=1) == labels)


def paired_runs(scores: np.ndarray, faces: FaceSet, run: str | Path, reference: str | Path) -> dict:
    """A K-fold run's out-of-fold answers (`scores` of `faces`) and a `reference` K-fold run's
    at its last epoch, compared face by face on all of `faces`: the shipping rule's comparison
    of two recipes, as `paired` gives it.

    Every fold of the reference must be finished and hold out the same faces as one of `run`'s
    (the same split), or one recipe would be scored on other folds than the other. Its folds
    may be kept without their weights (docs/model/folds/), as the shipped recipe's are.
    """
    folds = fold_folders(reference)
    finished = last_epoch_scores(reference, faces)
    if not folds or len(finished) < len(folds):
        raise FerkitError("not a finished K-fold run (a fold-N/ folder per fold, each done)")
    splits = {frozenset(read_list(fold / "val_files.txt")) for fold in fold_folders(run)}
    for name, (held, _) in finished.items():
        if frozenset(held.names) not in splits:
            raise FerkitError(
                f"{name} held out other faces than any fold of {run}: not the same split"
            )
    held_out, theirs = pooled(finished, faces)
    if not held_out.all():
        raise FerkitError(f"no fold held out {int((~held_out).sum())} of these faces")
    return _verdict(scores.argmax(axis=1) == faces.labels, theirs.argmax(axis=1) == faces.labels)


def _verdict(right: np.ndarray, theirs: np.ndarray) -> dict:
    """Two answers' figures on the same faces, McNemar's test and the rule's verdict."""
    test = mcnemar(right, theirs)
    return {
        "n": len(right),
        "accuracy": float(theirs.mean()),
        "accuracy_of_model": float(right.mean()),
        "better": _wins(test),
        **test,
    }


def bootstrap_interval(
    y_true: np.ndarray, y_pred: np.ndarray, n: int = 1000, seed: int = 0
) -> dict[str, list[float]]:
    """95% percentile-bootstrap intervals of accuracy and macro-recall (faces resampled)."""
    rng = np.random.default_rng(seed)
    acc, rec = [], []
    for _ in range(n):
        pick = rng.integers(0, len(y_true), len(y_true))
        m = metrics(y_true[pick], y_pred[pick])
        acc.append(m["accuracy"])
        rec.append(m["macro_recall"])
    return {
        "accuracy": [float(v) for v in np.percentile(acc, [2.5, 97.5])],
        "macro_recall": [float(v) for v in np.percentile(rec, [2.5, 97.5])],
    }


def fold_folders(run: str | Path) -> list[Path]:
    """The fold folders of a K-fold run (`fold-1/` ... `fold-K/`), in fold order (none for
    any other folder)."""
    return sorted(Path(run).glob("fold-*"), key=lambda p: p.name.partition("-")[2].zfill(9))


def last_epoch_scores(run: str | Path, faces: FaceSet) -> dict[str, tuple[FaceSet, np.ndarray]]:
    """Each finished fold of a K-fold run by name: its held-out faces (of `faces`) and their
    scores from its net at the last epoch (`val_scores.npy`'s last row); a fold still training
    is left out.

    The last epoch, not the best: the best validation epoch was chosen on these very faces.
    A fold needs only `metadata.json`, `val_files.txt` and `val_scores.npy`, so this also
    reads the folds docs/model/folds/ keeps without their weights, across sessions.
    """
    folds = {}
    for fold in fold_folders(run):
        if (fold / "metadata.json").exists() and not (fold / "backup").exists():
            held = faces.only(read_list(fold / "val_files.txt"))
            folds[fold.name] = (held, np.load(fold / "val_scores.npy")[-1].astype(np.float32))
    return folds


def pooled(
    folds: dict[str, tuple[FaceSet, np.ndarray]], faces: FaceSet
) -> tuple[np.ndarray, np.ndarray]:
    """Folds' held-out scores (`last_epoch_scores`) laid out in `faces`' order: which faces
    some fold held out, and their scores (zeros elsewhere)."""
    held_out = np.zeros(len(faces), dtype=bool)
    scores = np.zeros((len(faces), NUM_CLASSES), np.float32)
    for held, fold_scores in folds.values():
        index = faces.positions(held.names)
        held_out[index], scores[index] = True, fold_scores
    return held_out, scores


def fold_answers(
    runs: list[str | Path], faces: FaceSet
) -> dict[str, tuple[FaceSet, list[np.ndarray]]]:
    """`last_epoch_scores` of several K-fold runs of the same split, fold by fold (one score
    array a run): the members of an ensemble recipe (one net of each recipe a face), to be
    joined by the ensemble rule and measured out of fold, from folds kept without weights
    too. A fold is in only when every run finished it.
    """
    first, *others = runs
    folds = {
        name: (held, [scores]) for name, (held, scores) in last_epoch_scores(first, faces).items()
    }
    for other in others:
        theirs = last_epoch_scores(other, faces)
        for name in list(folds):
            if name not in theirs:
                del folds[name]
            elif theirs[name][0].names != folds[name][0].names:
                raise FerkitError(f"{other}: {name} held out other faces than {first}'s")
            else:
                folds[name][1].append(theirs[name][1])
    return folds


def keep_folds(out: Path, folds: dict[str, tuple[FaceSet, np.ndarray]], made: str) -> None:
    """Write finished folds' answers as a kept run (docs/model/folds/README.md): what
    `last_epoch_scores`, and so `paired_runs` and `--against`, read; `made` says how they were
    made (an ensemble recipe's joined answers, say), since no net of the run is kept."""
    from ferkit.files import npy_bytes, write_atomic, write_json

    for name, (held, scores) in folds.items():
        fold = out / name
        fold.mkdir(parents=True, exist_ok=True)
        write_list(fold / "val_files.txt", held.names)
        one_epoch = scores[None].astype(np.float16)  # the stated one
        write_atomic(fold / "val_scores.npy", npy_bytes(np.save, one_epoch))
        write_json(fold / "metadata.json", {"labels": list(EMOTIONS), "kept": made})


def fold_models(run: str | Path, engine: str = "auto") -> list:
    """The fold models of a K-fold run (`fold-1/` ... `fold-K/`), in order."""
    from ferkit.model.recognizer import FacialExpressionModel

    folders = fold_folders(run)
    if not folders:
        raise FerkitError(f"{run}: no fold-N/ folders: not a K-fold run ('ferkit train --folds')")
    models = [FacialExpressionModel.load(folder, engine) for folder in folders]
    for folder, model in zip(folders, models, strict=True):
        if not model.metadata.get("trained_on"):
            raise FerkitError(f"{folder}: the model does not list the faces it trained on")
    return models


def out_of_fold_scores(
    run: str | Path, images: np.ndarray, inputs: np.ndarray | None = None, engine: str = "auto"
) -> np.ndarray:
    """Each face scored by the fold models of a K-fold run that never trained on it, known
    from their training lists; `inputs` (default `images`) is what they are shown.

    A K-fold run's own model trained on every sharp face, so its held-out figure is the
    folds': this recomputes it for any copy or subset of the faces. A face no fold trained on
    (outside the sharp set) gets the average of all of them.
    """
    inputs = images if inputs is None else inputs
    hashes = fingerprints(images)  # once, not once a fold
    total, count = np.zeros((len(images), NUM_CLASSES)), np.zeros(len(images))
    for model in fold_models(run, engine):
        unseen = ~np.isin(hashes, decode_fingerprints(model.metadata))
        if unseen.any():
            total[unseen] += model.predict_scores(inputs[unseen])
            count[unseen] += 1
    if (count == 0).any():
        raise FerkitError(
            f"{run}: {int((count == 0).sum())} of these {len(images)} faces were trained on "
            "by every fold model"
        )
    return total / count[:, None]


def joined_with(
    member: FacialExpressionModel,
    images: np.ndarray,
    inputs: np.ndarray,
    scores: list[np.ndarray],
) -> np.ndarray:
    """Out-of-fold `scores` of `images` (one array per net a face) joined with a `member`
    model by the ensemble rule, every one weighing the same (it is shown `inputs`). The member
    must never have trained on any of these faces, or the joined figure would not be out of
    fold."""
    from ferkit.model.recognizer import geometric_mean

    seen = trained_on(member.metadata, images)
    if seen is None:
        raise FerkitError("does not list its training faces: not an out-of-fold member")
    if seen.any():
        raise FerkitError(f"trained on {seen.sum()} of these faces: not an out-of-fold member")
    return geometric_mean([*scores, member.predict_scores(inputs, calibrated=False)])


def agreement(sharp_scores: np.ndarray, blurred_scores: np.ndarray) -> float:
    """Share of faces whose answer is the same sharp and blurred (train/'s blur)."""
    return float((sharp_scores.argmax(axis=1) == blurred_scores.argmax(axis=1)).mean())
