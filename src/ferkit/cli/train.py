"""`ferkit explore` and `ferkit train`: the data's balance and quality, and training runs."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ferkit.cli.common import (
    check_data_apart,
    command,
    count,
    make_folder,
    share,
)
from ferkit.errors import FerkitError

if TYPE_CHECKING:
    from ferkit.cli.common import Subcommands


def add_explore(sub: Subcommands) -> None:
    p = command(
        sub,
        "explore",
        "samples per class, class imbalance, image quality",
        [
            "ferkit explore ../shared/data/fer2013/train --val ../shared/data/fer2013/publictest --out explore/"
        ],
    )
    p.add_argument("data", type=Path, help="a class folder or fer2013.csv")
    p.add_argument("--val", type=Path, help="a second split to compare (e.g. publictest/)")
    p.add_argument("--usage", help="fer2013.csv rows to use for DATA")
    p.add_argument("--out", type=Path, required=True, help="folder for the PNGs and explore.json")
    p.add_argument("--augment", action="store_true", help="also draw the training augmentation")


def cmd_explore(args: argparse.Namespace) -> int:
    from ferkit.training import data
    from ferkit.training.explore import explore, format_quality, format_table

    check_data_apart([args.data, args.val], args.out, ["explore.json"])
    make_folder(args.out)
    started = time.time()
    splits = {args.data.name or "data": data.load(args.data, usage=args.usage)}
    if args.val:
        splits[args.val.name if args.val.name not in splits else "val"] = data.load(args.val)
    report = explore(splits, args.out, augment=args.augment)
    for name, part in report.items():
        print(format_table(name, part["classes"]), end="\n\n")
    for name, part in report.items():
        print(format_quality(name, part["quality"]))
    written = [p.name for p in args.out.iterdir() if p.lstat().st_mtime >= started - 1]
    print(f"\nwrote {', '.join(sorted(written))} to {args.out}")
    return 0


def add_train(sub: Subcommands) -> None:
    p = command(
        sub,
        "train",
        "train a model (resumable, best-val checkpoint, live curves); the defaults shown are "
        "those without --recipe, which sets its own (flags still override)",
        [
            "ferkit train ../shared/data/fer2013/train --val ../shared/data/fer2013/publictest --recipe default --out runs/default",
            "ferkit train --resume --out runs/default",
            "ferkit train ../shared/data/fer2013/train --val ../shared/data/fer2013/publictest --recipe default --folds 5 --out runs/kfold",
        ],
    )

    from ferkit.training.config import RECIPES, TrainConfig  # no Keras: the defaults' home

    config = TrainConfig([])
    defaults = {**vars(config), **config.augment}

    def default(key: str) -> str:
        return f" (default {defaults[key]})"

    p.add_argument(
        "data",
        nargs="*",
        help="training sources: class folders, or fer2013.csv (its Training rows)",
    )
    p.add_argument(
        "--val",
        help="validation source, never trained on: a class folder or fer2013.csv (its PublicTest rows)",
    )
    p.add_argument(
        "--val-split",
        type=float,
        help="carve this stratified share of --val out for validation; the rest is trained on",
    )
    p.add_argument(
        "--recipe",
        choices=list(RECIPES),
        help="preset settings (flags still override)",
    )
    for flag, kind, text in (  # the settings with a default (TrainConfig's)
        ("--split-seed", int, "seed of the --val-split carve"),
        ("--val-rest-repeat", int, "repeat the rest of --val this many times in training"),
        (
            "--arch",
            str,
            "architecture: seed, vgg, vgg_wide or vgg_half (vgg at 24x24, for blurred inputs)",
        ),
        ("--epochs", count, "passes over the training data"),
        ("--batch-size", count, "images per training step"),
        ("--learning-rate", float, "Adam's initial learning rate (cosine decay)"),
        ("--label-smoothing", share, "cross-entropy label smoothing (0-1)"),
        ("--class-weight", ["none", "sqrt", "balanced"], "weigh rare classes up in the loss"),
        ("--blur-prob", float, "share of training images given a random blur"),
        ("--erase", float, "share of training images given random erasing"),
        ("--mixup", float, "mix each face with another, its weight uniform in [0, MIXUP]"),
        (
            "--consistency",
            float,
            "weight of the blur-consistency term (each sharp face also trained as its blurred twin)",
        ),
        ("--distill", share, "with --teacher: the teachers' share of each training target (0-1)"),
        ("--seed", int, "random seed (weights, shuffling, augmentation)"),
        (
            "--precision",
            ["float32", "mixed_bfloat16"],
            "bf16 trains 1.4-1.9x faster on CPUs with AVX512-BF16 (and several times slower, "
            "emulated, on CPUs without)",
        ),
    ):
        typed = {"choices": kind} if isinstance(kind, list) else {"type": kind}
        p.add_argument(flag, **typed, help=text + default(flag[2:].replace("-", "_")))
    p.add_argument(
        "--ema",
        type=float,
        help="keep a moving average of the weights with this momentum (e.g. 0.999); it is validated and shipped",
    )
    p.add_argument(
        "--folds",
        type=int,
        help="K-fold over --val: out-of-fold scores at the last epoch, then a final model on all of it",
    )
    p.add_argument(
        "--fold",
        type=_fold_number,
        help="train only this fold (1..K) of the --folds run, or 'final' (the model on all of --val, "
        "every epoch kept), e.g. one per process; --resume finishes the run",
    )
    p.add_argument(
        "--init",
        help="start from this model folder's weights (e.g. a base trained on train/ alone); "
        "the faces it trained on count as this model's",
    )
    p.add_argument(
        "--teacher",
        help="learn from this model's scores as well as the labels, scored once as it serves: a "
        "model folder (an ensemble too), or a K-fold run (its fold i teaches fold i; the final "
        "model learns from all its folds)",
    )
    p.add_argument(
        "--sample-sources",
        type=int,
        dest="sources_sample",
        help="train on a stratified random N of the training sources' faces (--val's part is whole)",
    )
    p.add_argument("--max-minutes", type=float, help="stop after the epoch that passes this time")
    p.add_argument("--out", required=True, type=Path, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--quiet", action="store_true", help="one line per epoch instead of a progress bar"
    )


def _fold_number(text: str) -> int:
    """`--fold`: 1..K, or 'final' (0), the model on every sharp face trained alongside the folds."""
    if text == "final":
        return 0
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a fold number from 1, or 'final', not {text!r}")
    return int(text)


def cmd_train(args: argparse.Namespace) -> int:
    if not args.resume and not args.data and not (args.val and args.val_split):
        raise FerkitError(
            "give at least one training source (a class folder or fer2013.csv), "
            "or --val with --val-split to train on the rest of --val"
        )
    from ferkit.training.evaluate import fold_folders  # numpy only: TensorFlow loads with fit

    if args.teacher and not (
        (Path(args.teacher) / "metadata.json").is_file() or fold_folders(args.teacher)
    ):  # before TensorFlow loads and the run folder is made
        what = "no such folder" if not Path(args.teacher).exists() else "not a ferkit model folder"
        raise FerkitError(f"{args.teacher}: {what} (--teacher takes a model or a K-fold run)")
    from ferkit.training.config import RECIPES, TrainConfig
    from ferkit.training.runs import train

    settings = dict(RECIPES.get(args.recipe, {}))
    for key in (
        "val", "val_split", "split_seed", "val_rest_repeat", "arch", "epochs", "batch_size",
        "learning_rate", "label_smoothing", "class_weight", "seed", "max_minutes", "precision",
        "mixup", "consistency", "ema", "folds", "init", "sources_sample", "teacher", "distill",
    ):  # fmt: skip
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if settings.get("folds"):  # the folds are the validation: no single split as well
        settings.pop("val_split", None)
    for key in ("blur_prob", "erase"):
        if getattr(args, key) is not None:
            settings["augment"] = {
                **settings.get("augment", TrainConfig([]).augment),
                key: getattr(args, key),
            }
    cfg = TrainConfig(sources=[str(p) for p in args.data], **settings)
    try:
        meta = train(
            cfg, args.out, resume=args.resume, verbose=2 if args.quiet else 1, only_fold=args.fold
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: continue with 'ferkit train --resume --out {args.out}'",
            file=sys.stderr,
        )
        return 130
    if args.fold == 0:
        print(
            f"final model: {meta['training']['epochs_run']} epochs kept in {args.out}/final; "
            f"once every fold and the final are done: ferkit train --resume --out {args.out}"
        )
    elif args.fold is not None:
        print(
            f"fold {args.fold}: best validation accuracy {meta['metrics']['best_val_accuracy']:.2%}; "
            f"once every fold (and a --fold final) is done: ferkit train --resume --out {args.out}"
        )
    elif "out_of_fold" in meta["metrics"]:
        oof = meta["metrics"]["out_of_fold"]
        low, high = oof["interval_95"]["accuracy"]
        print(
            f"out-of-fold accuracy {oof['accuracy']:.2%} (95% {low:.2%}-{high:.2%}), "
            f"macro-recall {oof['macro_recall']:.2%}, on {oof['n']} faces at {oof['epochs']} "
            f"epochs; final model (all of --val, {oof['epochs']} epochs) in {args.out}"
        )
    else:
        print(
            f"best validation accuracy {meta['metrics']['best_val_accuracy']:.2%}; model files in {args.out}"
        )
    return 0
