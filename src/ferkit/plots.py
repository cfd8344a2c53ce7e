"""The charts ferkit draws (training curves, class counts, confusion, reliability, emotions over time),
each written atomically; annotated photos and frames are `overlay`'s.

Figures are plain `matplotlib.figure.Figure` objects, never pyplot: no screen is needed and
the caller's backend (a notebook's inline plots, say) is left alone.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from ferkit.files import write_atomic
from ferkit.labels import EMOTIONS

if TYPE_CHECKING:
    from typing import Any


def figure(
    nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (8, 4), squeeze: bool = True
) -> tuple[Figure, Any]:
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def save(fig: Figure, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    write_atomic(Path(path), buf.getvalue())


def training_curves(history: dict[str, list[float]], path: Path) -> None:
    """Loss and accuracy per epoch, train against validation."""
    fig, axes = figure(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for ax, key in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + key, [])
            if values:
                ax.plot(epochs[: len(values)], values, style, label=(prefix or "train_") + key)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    save(fig, path)


def confusion(matrix: np.ndarray, path: Path, title: str = "") -> None:
    """Row-normalised confusion matrix with the counts written in each cell."""
    rows = matrix.sum(axis=1, keepdims=True)
    share = matrix / np.maximum(rows, 1)
    fig, ax = figure(figsize=(7, 6))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(EMOTIONS)):
        for j in range(len(EMOTIONS)):
            color = "white" if share[i, j] > 0.5 else "black"
            ax.text(j, i, f"{matrix[i, j]}", ha="center", va="center", color=color, fontsize=8)
    ax.set_title(title or "confusion (rows: true class)")
    save(fig, path)


def image_grid(rows: list[tuple[str, np.ndarray]], path: Path, title: str = "") -> None:
    """One row of gray images per label."""
    n_cols = max(len(images) for _, images in rows)
    fig, axes = figure(len(rows), n_cols, figsize=(n_cols * 1.1, len(rows) * 1.2), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(images[c], cmap="gray", vmin=0, vmax=255)
        axes[r, 0].set_title(label, loc="left", fontsize=9)
    if title:
        fig.suptitle(title)
    save(fig, path)


def class_bars(counts: dict[str, np.ndarray], path: Path) -> None:
    """Samples per class, one bar group per class and one colour per split."""
    fig, ax = figure(figsize=(9, 4))
    width = 0.8 / len(counts)
    x = np.arange(len(EMOTIONS))
    for i, (split, values) in enumerate(counts.items()):
        ax.bar(x + i * width, values, width, label=split)
    ax.set_xticks(x + width * (len(counts) - 1) / 2, EMOTIONS)
    ax.set_ylabel("images")
    ax.set_title("class distribution")
    ax.legend()
    save(fig, path)


def emotions_over_time(times: np.ndarray, scores: np.ndarray, path: Path, title: str = "") -> None:
    """Per-emotion score (mean over faces) against time in seconds, each emotion in the
    colour its boxes have (`labels.COLORS`), so the chart reads like the video.

    Sized for a phone as well as a desktop: a 700 px wide image with 13-15 pt text (about
    8-9 CSS px on a 390 px phone, 16 px at 800 px), the legend under the axes where it
    hides no line."""
    from ferkit.labels import hex_colors

    colors = hex_colors()
    fig, ax = figure(figsize=(7, 4.6))
    for i, name in enumerate(EMOTIONS):
        ax.plot(times, scores[:, i], label=name, color=colors[name], linewidth=2.4)
    if np.isnan(scores).all():
        ax.text(0.5, 0.5, "no faces found", transform=ax.transAxes, ha="center", fontsize=18)
    ax.set_xlabel("time (s)", fontsize=15)
    ax.set_ylabel("score", fontsize=15)
    ax.tick_params(labelsize=14)
    ax.set_ylim(0, 1)
    ax.set_xlim(0, max(float(times.max()) if len(times) else 0.0, 1e-3))  # also with no face
    ax.legend(ncol=4, fontsize=14, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    ax.set_title(title or "emotions over time (mean over the faces)", fontsize=15)
    save(fig, path)


def reliability_diagram(
    scores: np.ndarray, labels: np.ndarray, path: Path, calibrated: np.ndarray | None = None
) -> None:
    """Accuracy against confidence per bin (the diagonal is a perfectly calibrated model),
    as served and, when given, after a fitted temperature; bars show how many answers."""
    from ferkit.model.calibration import expected_calibration_error, reliability

    fig, (top, bottom) = figure(2, 1, figsize=(5, 6))
    top.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1)
    runs = [("as trained", scores)] + (
        [("calibrated", calibrated)] if calibrated is not None else []
    )
    for k, ((name, s), colour) in enumerate(zip(runs, ("tab:red", "tab:blue"), strict=False)):
        table = reliability(s, labels)
        used = np.array(table["count"]) > 0
        conf, acc = np.array(table["confidence"])[used], np.array(table["accuracy"])[used]
        ece = expected_calibration_error(s, labels)
        top.plot(conf, acc, marker="o", color=colour, label=f"{name} (ECE {ece:.3f})")
        width = 1 / len(table["count"]) / len(runs)  # the runs' bars side by side in a bin
        left = np.array(table["edges"][:-1]) + k * width
        bottom.bar(left, table["count"], width=width, align="edge", color=colour, label=name)
    top.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    top.legend(loc="upper left")
    bottom.set(xlabel="confidence", ylabel="answers", xlim=(0, 1))
    save(fig, path)
