"""Dataset exploration: samples per class, class imbalance, and image quality per split.

Quality matters here: FER2013's train/ folder is heavily blurred while publictest/ and
real cameras are sharp, and that shift decides what a model can learn. The variance of
the Laplacian (sharpness) and per-image contrast show it at a glance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferkit import plots
from ferkit.files import write_json
from ferkit.labels import EMOTIONS
from ferkit.model.preprocess import sharpness
from ferkit.training.data import FaceSet


def imbalance(faces: FaceSet) -> list[dict]:
    """Per class: count, share of the split, and ratio to the largest class."""
    counts = faces.class_counts()
    return [
        {
            "class": name,
            "count": int(counts[i]),
            "share": float(counts[i] / counts.sum()),
            "ratio_to_largest": float(counts[i] / counts.max()),
        }
        for i, name in enumerate(EMOTIONS)
    ]


def quality(faces: FaceSet, max_images: int = 2000, seed: int = 0) -> dict:
    """Sharpness (variance of the Laplacian) and contrast (pixel std), median and 10th-90th."""
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(faces))[:max_images]
    sharp = sharpness(faces.images[pick])
    contrast = faces.images[pick].reshape(len(pick), -1).std(axis=1)

    def summary(values: np.ndarray) -> dict:
        p10, p50, p90 = np.percentile(values, [10, 50, 90])
        return {"median": float(p50), "p10": float(p10), "p90": float(p90)}

    return {"laplacian_var": summary(sharp), "contrast_std": summary(contrast), "n": len(pick)}


def samples(faces: FaceSet, per_class: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """A few random faces per class (seeded, so reports are comparable between runs)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, name in enumerate(EMOTIONS):
        idx = np.flatnonzero(faces.labels == i)
        rows.append((name, faces.images[rng.permutation(idx)[:per_class]]))
    return rows


def format_table(name: str, table: list[dict]) -> str:
    lines = [
        f"{name}: {sum(r['count'] for r in table)} images",
        f"{'class':<10}{'count':>8}{'share':>9}{'vs largest':>12}",
    ]
    for r in table:
        lines.append(
            f"{r['class']:<10}{r['count']:>8}{r['share']:>9.1%}{r['ratio_to_largest']:>12.2f}"
        )
    return "\n".join(lines)


def format_quality(name: str, q: dict) -> str:
    s, c = q["laplacian_var"], q["contrast_std"]
    return (
        f"{name}: sharpness (Laplacian variance) median {s['median']:.1f} "
        f"(10-90%: {s['p10']:.1f}-{s['p90']:.1f}); contrast (std) median {c['median']:.1f}"
    )


def explore(
    splits: dict[str, FaceSet], out: Path, augment: bool = False, per_class: int = 8
) -> dict:
    """Write the PNGs and explore.json into `out`; return the report."""
    out.mkdir(parents=True, exist_ok=True)
    report = {name: {"classes": imbalance(f), "quality": quality(f)} for name, f in splits.items()}
    for name, faces in splits.items():
        plots.image_grid(
            samples(faces, per_class), out / f"samples_{name}.png", f"{name}: random samples"
        )
    plots.class_bars(
        {name: f.class_counts() for name, f in splits.items()}, out / "class_distribution.png"
    )
    if len(splits) > 1:
        happy = EMOTIONS.index("happy")
        rows = [(f"{name}: happy", samples(f, per_class)[happy][1]) for name, f in splits.items()]
        plots.image_grid(rows, out / "quality_side_by_side.png", "the same class in each split")
    if augment:
        first = next(iter(splits.values()))
        plots.image_grid(
            augmented_rows(first, per_class),
            out / "augmented.png",
            "training augmentation (the default recipe's)",
        )
    write_json(out / "explore.json", report)
    return report


def augmented_rows(faces: FaceSet, per_class: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """The same faces, then three training batches' worth of them as the default recipe
    makes them (`ferkit.training.batches.make_batch`, the code training runs); needs Keras."""
    from ferkit.training.batches import BATCH_UNIFORMS, make_batch
    from ferkit.training.config import RECIPES, TrainConfig

    cfg = TrainConfig([], **RECIPES["default"])
    rng = np.random.default_rng(seed)
    faces_row = np.stack([imgs[0] for _, imgs in samples(faces, 1, seed) if len(imgs)])[:per_class]
    x = faces_row[..., None].astype("float32")
    labels = np.zeros((len(x), len(EMOTIONS)), dtype="float32")
    sharp = np.ones(len(x), dtype=bool)
    rows = [("original", faces_row)]
    for k in range(3):
        u = rng.random((len(x), BATCH_UNIFORMS), dtype=np.float32)
        batch = np.asarray(make_batch(x, labels, sharp, u, cfg)[0])
        rows.append((f"default recipe {k + 1}", batch[..., 0]))
    return rows
