"""Accuracy, macro-recall, per-class precision/recall/F1 and the confusion matrix."""

from __future__ import annotations

import numpy as np

from ferkit.labels import EMOTIONS, NUM_CLASSES


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
    """A plain-text table for the terminal."""
    lines = [
        f"images: {result['n']}   accuracy: {result['accuracy']:.2%}   "
        f"macro-recall: {result['macro_recall']:.2%}",
        "",
        f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}",
    ]
    for name, row in result["per_class"].items():
        lines.append(
            f"{name:<10}{row['precision']:>10.3f}{row['recall']:>10.3f}"
            f"{row['f1']:>10.3f}{row['support']:>10}"
        )
    lines += [
        "",
        "confusion (rows: true, columns: predicted)",
        " " * 10 + "".join(f"{n[:7]:>8}" for n in EMOTIONS),
    ]
    for name, row in zip(EMOTIONS, result["confusion"]):
        lines.append(f"{name:<10}" + "".join(f"{v:>8}" for v in row))
    return "\n".join(lines)
