"""How far a score can be trusted: temperature scaling, expected calibration error, and the
reliability table behind a reliability diagram.

A network trained with cross-entropy says 0.9 more often than it is right 90% of the time
(or less often: label smoothing pulls the other way). One temperature T, fitted on answers
the model gave to faces it never trained on, rescales its log-scores (softmax(log p / T));
the label never changes, only how sure it says it is. The model folder's metadata keeps T
(`calibration.temperature`), and `FacialExpressionModel` applies it on every predicting path.
"""

from __future__ import annotations

import numpy as np

BINS = 15  # the usual ECE binning (Guo et al., 2017): equal-width confidence bins
_TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(4.0), 401))  # 0.7% steps


def apply_temperature(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Scores rescaled by `temperature` (1: unchanged); rows still sum to 1, argmax unchanged."""
    if temperature == 1.0 or len(scores) == 0:
        return scores
    logits = np.log(np.clip(scores, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return (out / out.sum(axis=1, keepdims=True)).astype(scores.dtype)


def negative_log_likelihood(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(scores[np.arange(len(labels)), labels], 1e-12, 1.0)).mean())


def fit_temperature(scores: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of the true labels.

    A grid over 0.25-4 (the likelihood has one minimum in T, and a grid needs no optimiser
    and cannot diverge on a few hundred faces)."""
    losses = [negative_log_likelihood(apply_temperature(scores, t), labels) for t in _TEMPERATURES]
    return float(_TEMPERATURES[int(np.argmin(losses))])


def reliability(scores: np.ndarray, labels: np.ndarray, bins: int = BINS) -> dict:
    """Per confidence bin: how many answers, their mean confidence and their accuracy."""
    confidence = scores.max(axis=1)
    correct = scores.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_conf = np.bincount(which, confidence, bins) / count
        accuracy = np.bincount(which, correct.astype(float), bins) / count
    return {
        "edges": np.linspace(0, 1, bins + 1).tolist(),
        "count": count.tolist(),
        "confidence": np.nan_to_num(mean_conf).tolist(),
        "accuracy": np.nan_to_num(accuracy).tolist(),
    }


def expected_calibration_error(scores: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """The answers' mean gap between confidence and accuracy, bin by bin, weighted by count."""
    table = reliability(scores, labels, bins)
    count = np.array(table["count"], dtype=float)
    gap = np.abs(np.array(table["confidence"]) - np.array(table["accuracy"]))
    return float((count * gap).sum() / max(count.sum(), 1))


def cross_fitted_ece(scores: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """ECE after temperature scaling, each half of the faces scaled by the temperature fitted
    on the other half: the figure a fitted temperature earns on faces it was not fitted on."""
    order = np.random.default_rng(seed).permutation(len(labels))
    halves = np.array_split(order, 2)
    scaled = np.empty_like(scores)
    for mine, other in (halves, halves[::-1]):
        scaled[mine] = apply_temperature(
            scores[mine], fit_temperature(scores[other], labels[other])
        )
    return expected_calibration_error(scaled, labels)


def calibrate(scores: np.ndarray, labels: np.ndarray) -> dict:
    """The temperature for these held-out answers and what it does: the record kept in a
    model folder's metadata (`calibration`)."""
    temperature = fit_temperature(scores, labels)
    return {
        "temperature": temperature,
        "n": int(len(labels)),
        "ece_before": expected_calibration_error(scores, labels),
        "ece_after": expected_calibration_error(apply_temperature(scores, temperature), labels),
        "ece_after_cross_fitted": cross_fitted_ece(scores, labels),
        "nll_before": negative_log_likelihood(scores, labels),
        "nll_after": negative_log_likelihood(apply_temperature(scores, temperature), labels),
    }
