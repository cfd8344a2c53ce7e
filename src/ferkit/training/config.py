"""What a training run is: its settings (`TrainConfig`, saved as the run's config.json) and the
recipes, named presets of them. No Keras here: the CLI reads the defaults for its help.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ferkit.training.augment import AugmentConfig


@dataclass
class TrainConfig:
    sources: list[str]
    val: str | None = None
    val_split: float | None = None
    split_seed: int = 0
    val_rest_repeat: int = 1
    arch: str = "vgg"
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 1e-3
    label_smoothing: float = 0.0
    class_weight: str = "none"
    seed: int = 1
    augment: dict = field(default_factory=lambda: AugmentConfig().to_dict())
    max_minutes: float | None = None
    precision: str = "float32"  # or "mixed_bfloat16": 1.4-1.9x faster on CPUs with AVX512-BF16
    mixup: float = 0.0  # the partner face's weight is uniform in [0, mixup]
    consistency: float = 0.0  # weight of the sharp/blurred-twin Jensen-Shannon term
    ema: float | None = None  # momentum of a weight moving average (validated and shipped)
    folds: int | None = None  # K-fold over the --val set
    fold: int | None = None  # which fold this run holds out (None: all of --val trained on)
    stop_after: int | None = None  # epochs to train (the schedule still spans `epochs`)
    init: str | None = None  # a model folder whose weights start the run (e.g. a blurred base)
    sources_sample: int | None = None  # train on this many faces of the sources (stratified)
    keep_epochs: bool = False  # keep every epoch's weights (a fold does anyway; --fold final)
    teacher: str | None = None  # a model folder or K-fold run whose answers are soft targets
    distill: float = 0.5  # with `teacher`: the teachers' share of each training target
    input_blur: float = 0.0  # Gaussian sigma for validation and served inputs (the specialist)


RECIPES: dict[str, dict] = {
    # The classroom recipe: train/ only, the seed net, geometric augmentation, no blur.
    "seed": {"arch": "seed", "epochs": 15, "augment": AugmentConfig(blur_prob=0.0).to_dict()},
    # The shipped model: train/ plus 80% of the sharp publictest/ (4x oversampled), label
    # smoothing, sqrt class weights; validation is the other 20% of publictest/, never
    # trained on. Random blur is off: it cost 1.4 points on sharp faces; bf16 is as
    # accurate as float32 and 1.4-1.9x faster on the CPU (docs/experiments.md).
    "default": {
        "arch": "vgg",
        "epochs": 40,
        "val_split": 0.2,
        "split_seed": 0,
        "val_rest_repeat": 4,
        "label_smoothing": 0.1,
        "class_weight": "sqrt",
        "augment": AugmentConfig(blur_prob=0.0).to_dict(),
        "precision": "mixed_bfloat16",
    },
    # The blurred specialist: train/ alone (no sharp face), and every face it is shown later,
    # in validation or served, blurred as train/ is (sigma ~3.3): it then sees faces the way
    # it learnt them. Alone it is weak on sharp faces; beside the joint model it adds what
    # train/'s 28,709 faces know (docs/experiments.md). Validated on the same 20% of
    # publictest/ as the default recipe, so the two can be paired on those faces.
    "blurred": {
        "arch": "vgg_half",  # as accurate as vgg on blurred faces at a quarter of the cost
        "epochs": 30,
        "val_split": 0.2,
        "split_seed": 0,
        "val_rest_repeat": 0,
        "input_blur": 3.3,
        "label_smoothing": 0.1,
        "class_weight": "sqrt",
        "augment": AugmentConfig(blur_prob=0.0).to_dict(),
        "precision": "mixed_bfloat16",
    },
}
