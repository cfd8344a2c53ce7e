"""The `ferkit` command line: one sub-command per job.

Heavy libraries are imported inside each command, so `ferkit predict` never pays for
TensorFlow and `ferkit --help` answers at once. User mistakes print one `error:` line and
exit with status 2; a failure on some inputs of a batch exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import NoReturn

from ferkit import __version__
from ferkit.errors import FerkitError
from ferkit.model.folder import ENGINES
from ferkit.quiet import quiet_tensorflow


class _Parser(argparse.ArgumentParser):
    """argparse's, with a usage mistake said as every other mistake is: one `error:` line
    (where to look, not the whole usage block), exit status 2. Sub-commands' parsers are of
    the class of their parent, so this holds for every command."""

    commands: dict[str, argparse.ArgumentParser] = {}  # the top parser's, by name

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")

    def parse_args(self, args=None, namespace=None) -> argparse.Namespace:
        known, extras = self.parse_known_args(args, namespace)
        if extras:  # said by the command's parser: its --help lists what it takes
            command = self.commands.get(getattr(known, "command", None), self)
            command.error(f"unrecognized arguments: {' '.join(extras)}")
        return known


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written, and every option's default shown where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        has_default = action.default not in (None, False, argparse.SUPPRESS)
        if action.option_strings and has_default and "default" not in text:  # not said already
            text += " (default: %(default)s)"
        return text


def _command(sub, name: str, summary: str, examples: list[str]) -> argparse.ArgumentParser:
    """A sub-command whose --help ends with examples to copy."""
    return sub.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=_HelpFormatter,
    )


def _make_folder(folder: Path, output: Path | None = None) -> None:
    """Create an output folder before any work is done, or say in one line why it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FerkitError(
            f"{output or folder}: cannot create the folder {folder} ({err.strerror})"
        ) from err
    if not os.access(folder, os.W_OK):
        raise FerkitError(f"{output or folder}: the folder {folder} is not writable")


def _output_folder(path: Path | None) -> None:
    """`_make_folder` for the folder an output file goes into."""
    if path is not None:
        _make_folder(Path(path).parent, path)


def _add_explore(sub) -> None:
    p = _command(
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


def cmd_explore(args) -> int:
    from ferkit.training import data
    from ferkit.training.explore import explore, format_quality, format_table

    _check_data_apart([args.data, args.val], args.out, ["explore.json"])
    _make_folder(args.out)
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


MAX_BLUR_SIGMA = 20.0  # evaluate's --blur/--input-blur: far past train/'s ~3.3 on a 48 px face


def _add_train(sub) -> None:
    p = _command(
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

    from ferkit.training.config import TrainConfig  # no Keras: the one home of the defaults

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
        choices=["seed", "default", "blurred"],
        help="preset settings (flags still override)",
    )
    for flag, kind, text in (  # the settings with a default (TrainConfig's)
        ("--split-seed", int, "seed of the --val-split carve"),
        ("--val-rest-repeat", int, "repeat the rest of --val this many times in training"),
        ("--arch", str, "architecture: seed, vgg or vgg_wide"),
        ("--epochs", _count, "passes over the training data"),
        ("--batch-size", _count, "images per training step"),
        ("--learning-rate", float, "Adam's initial learning rate (cosine decay)"),
        ("--label-smoothing", _share, "cross-entropy label smoothing (0-1)"),
        ("--class-weight", ["none", "sqrt", "balanced"], "weigh rare classes up in the loss"),
        ("--blur-prob", float, "share of training images given a random blur"),
        ("--erase", float, "share of training images given random erasing"),
        ("--mixup", float, "mix each face with another, its weight uniform in [0, MIXUP]"),
        (
            "--consistency",
            float,
            "weight of the blur-consistency term (each sharp face also trained as its blurred twin)",
        ),
        ("--distill", _share, "with --teacher: the teachers' share of each training target (0-1)"),
        ("--seed", int, "random seed (weights, shuffling, augmentation)"),
        (
            "--precision",
            ["float32", "mixed_bfloat16"],
            "bf16 trains 1.4-1.9x faster on CPUs with AVX512-BF16",
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
        help="K-fold over --val: out-of-fold scores fix the epoch count, then a final model on all of it",
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
        help="learn from this model's scores as well as the labels: a model folder, or a K-fold "
        "run (its fold i teaches fold i; the final model learns from all its folds)",
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


def _count(text: str) -> int:
    """A whole number of 1 or more (frames, workers): anything else is a usage error."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of 1 or more, not {text!r}")
    return int(text)


def _port(text: str) -> int:
    """A TCP port, 1-65535: anything else is a usage error, not a traceback from bind()."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"a port from 1 to 65535, not {text!r}")
    return int(text)


def _share(text: str) -> float:
    """A number from 0 to 1 (a share of the target): anything else is a usage error."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a number from 0 to 1, not {text!r}")
    return value


def _fold_number(text: str) -> int:
    """`--fold`: 1..K, or 'final' (0), the model on every sharp face trained alongside the folds."""
    if text == "final":
        return 0
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a fold number from 1, or 'final', not {text!r}")
    return int(text)


def cmd_train(args) -> int:
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

    logging.basicConfig(level=logging.INFO, format="%(message)s")
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


def _add_evaluate(sub) -> None:
    p = _command(
        sub,
        "evaluate",
        "accuracy, per-class scores and confusion matrix",
        [
            "ferkit evaluate ../shared/data/fer2013/publictest --only splits/publictest_val.txt",
            "ferkit evaluate fer2013.csv --usage PrivateTest --json --out metrics/",
        ],
    )
    p.add_argument("data", type=Path, help="a class folder or fer2013.csv")
    _add_model_options(p)
    p.add_argument("--usage", help="fer2013.csv rows to use: Training, PublicTest or PrivateTest")
    p.add_argument("--only", type=Path, help="a file list (one name per line) to restrict to")
    p.add_argument(
        "--blur",
        type=float,
        help=f"blur inputs with this sigma first (as train/ is), 0-{MAX_BLUR_SIGMA:g}",
    )
    p.add_argument(
        "--input-blur",
        type=float,
        help=f"override the model's own input blur sigma, 0-{MAX_BLUR_SIGMA:g}",
    )
    p.add_argument(
        "--tta", choices=["on", "off"], help="override the model's flip test-time augmentation"
    )
    p.add_argument(
        "--out-of-fold",
        action="store_true",
        help="--model is a K-fold run: score each face with its fold models that never trained on it",
    )
    p.add_argument(
        "--against",
        type=Path,
        metavar="MODEL",
        help="also score this model folder (e.g. the shipped one) on the same faces, those "
        "neither trained on, and compare them face by face (McNemar)",
    )
    p.add_argument(
        "--require-better",
        action="store_true",
        help="with --against: exit 1 unless --model is right on more of those faces "
        "(the shipping rule)",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="fit the score temperature on these faces (never trained on) and write it into "
        "--model's metadata; every predicting path then applies it",
    )
    p.add_argument(
        "--out", type=Path, help="folder for confusion.png, reliability.png and metrics.json"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_evaluate(args) -> int:
    import numpy as np

    from ferkit.model.calibration import apply_temperature, expected_calibration_error
    from ferkit.model.fingerprints import trained_on, training_overlap
    from ferkit.model.preprocess import blur
    from ferkit.model.recognizer import FacialExpressionModel
    from ferkit.training import data
    from ferkit.training.evaluate import format_report, metrics, out_of_fold_scores

    if args.out:
        _check_data_apart(
            [args.data], args.out, ["metrics.json", "confusion.png", "reliability.png"]
        )
        _make_folder(args.out)
    if args.require_better and not args.against:
        raise FerkitError("--require-better needs --against MODEL")
    if args.calibrate and args.model is None:
        raise FerkitError("--calibrate needs --model FOLDER: the temperature is written into it")
    for flag in ("blur", "input_blur"):
        sigma = getattr(args, flag)
        if sigma is not None and not 0 <= sigma <= MAX_BLUR_SIGMA:
            raise FerkitError(
                f"--{flag.replace('_', '-')} must be 0 to {MAX_BLUR_SIGMA}, got {sigma}"
            )
    if args.out_of_fold and args.model is None:
        raise FerkitError("--out-of-fold needs --model RUN, a 'ferkit train --folds' run folder")
    if args.out_of_fold and (args.tta or args.input_blur is not None):
        raise FerkitError("--out-of-fold runs the fold models as trained: no --tta or --input-blur")
    faces = data.load(args.data, usage=args.usage)
    if args.only:
        names = data.read_list(args.only)
        if not names:
            raise FerkitError(f"{args.only}: lists no images")
        faces = faces.only(names)
    images = faces.images
    if args.blur:
        images = np.stack([blur(img, args.blur) for img in images])
    if args.out_of_fold:
        scores = out_of_fold_scores(args.model, faces.images, images, args.engine)
        overlap, engine, raw = 0, "out-of-fold", scores
    else:
        tta = None if args.tta is None else args.tta == "on"
        model = FacialExpressionModel.load(
            args.model, args.engine, blur_sigma=args.input_blur, tta=tta
        )
        overlap, engine = training_overlap(model.metadata, faces.images), model.engine
        if overlap:
            print(
                f"warning: {overlap} of these {len(faces)} faces ({overlap / len(faces):.1%}) "
                "are in the model's training data (same pixels): the figure is not fully "
                "held-out (for a K-fold run: --out-of-fold)",
                file=sys.stderr,
            )
        raw = model.predict_scores(images, calibrated=False)
        scores = apply_temperature(raw, model.temperature)
    source = str(args.data) + (f" (only {args.only})" if args.only else "")
    result = metrics(faces.labels, scores.argmax(axis=1))
    result["ece"] = expected_calibration_error(scores, faces.labels)
    if args.calibrate:  # on the faces the model never trained on only
        unseen = (
            np.ones(len(faces), bool) if not overlap else ~trained_on(model.metadata, faces.images)
        )
        result["calibration"] = _write_calibration(
            args.model, raw[unseen], faces.labels[unseen], source
        )
    result["trained_on"] = overlap
    result["data"] = source
    result["blur"] = args.blur or 0.0
    result["engine"] = engine
    if args.against:
        result["against"] = _compare(
            args, model if not args.out_of_fold else None, faces, images, scores
        )
    if args.out:
        from ferkit.files import write_json
        from ferkit.plots import confusion, reliability_diagram

        confusion(np.array(result["confusion"]), args.out / "confusion.png")
        temperature = result.get("calibration", {}).get("temperature")
        after = apply_temperature(raw, temperature) if temperature else None
        reliability_diagram(
            raw if temperature else scores, faces.labels, args.out / "reliability.png", after
        )
        write_json(args.out / "metrics.json", result)
    print(json.dumps(result) if args.json else format_report(result))
    if args.require_better and not result["against"]["better"]:
        return 1
    return 0


def _compare(args, model, faces, images, scores) -> dict:
    """The candidate (`--model`) and `--against` on the faces neither trained on."""
    from ferkit.model.fingerprints import trained_on
    from ferkit.model.recognizer import FacialExpressionModel
    from ferkit.training.evaluate import mcnemar

    reference = FacialExpressionModel.load(args.against, args.engine)
    seen = trained_on(reference.metadata, faces.images)
    if seen is None:
        raise FerkitError(f"{args.against}: the model does not list the faces it trained on")
    if model is not None:  # out of fold, no face was seen by the model that scored it
        mine = trained_on(model.metadata, faces.images)
        seen = seen | (mine if mine is not None else False)
    keep = ~seen
    if not keep.any():
        raise FerkitError(f"{args.against}: it or --model trained on every one of these faces")
    labels = faces.labels[keep]
    right = scores[keep].argmax(axis=1) == labels
    theirs = reference.predict_scores(images[keep]).argmax(axis=1) == labels
    test = mcnemar(right, theirs)
    comparison = {
        "model": str(args.against),
        "n": int(keep.sum()),
        "accuracy": float(theirs.mean()),
        "accuracy_of_model": float(right.mean()),
        "better": bool(right.sum() > theirs.sum()),
        **test,
    }
    print(
        f"against {args.against} on the {comparison['n']} faces neither trained on: "
        f"{right.mean():.2%} vs {theirs.mean():.2%} (right only here {test['only_first']}, "
        f"only there {test['only_second']}, McNemar p = {test['p']:.3f})",
        file=sys.stderr,
    )
    return comparison


def _write_calibration(model: Path, raw, labels, data: str) -> dict:
    """Fit the temperature on held-out answers and keep it in the model folder's metadata
    (of a K-fold run: the run's own model, whose folds gave the answers)."""
    from ferkit.model.calibration import calibrate
    from ferkit.model.folder import read_metadata, write_metadata

    record = {**calibrate(raw, labels), "fitted_on": data}
    metadata = read_metadata(model)
    if not metadata:
        raise FerkitError(f"{model}: no metadata.json to keep the temperature in")
    write_metadata(model, {**metadata, "calibration": record})
    print(
        f"calibration: temperature {record['temperature']:.3f}; expected calibration error "
        f"{record['ece_before']:.3f} -> {record['ece_after']:.3f} "
        f"({record['ece_after_cross_fitted']:.3f} fitted on the other half); written to {model}",
        file=sys.stderr,
    )
    return record


def _add_model_options(p, engine_flag: str = "--engine") -> None:
    """--model and its engine (`batch` names it --model-engine: its --engine is the cluster's)."""
    p.add_argument("--model", type=Path, help="model folder (default: the embedded model)")
    p.add_argument(
        engine_flag,
        default="auto",
        choices=ENGINES,
        help="auto: ONNX Runtime on model.int8.onnx, else model.onnx, when the folder has one; else Keras",
    )


def _add_video_options(p) -> None:
    """How videos are read: shared by `video` and `batch`."""
    p.add_argument("--every", type=_count, default=1, help="classify every N-th frame")
    p.add_argument(
        "--no-smooth", action="store_true", help="no score smoothing (faces are still tracked)"
    )
    p.add_argument(
        "--min-track",
        type=_count,
        default=3,
        help="frames a face must be seen in before it counts (shorter tracks are left out of "
        "the video, CSV, chart and summary; default: %(default)s)",
    )


def _add_face_options(p) -> None:
    from ferkit.vision.face import DOUBTFUL, MIN_DETECTION

    p.add_argument(
        "--detector",
        default="centerface",
        choices=["centerface", "haar", "none"],
        help="face detector (default: %(default)s); none: each image is one face crop",
    )
    p.add_argument(
        "--min-face",
        type=float,
        help="smallest face to look for, in pixels (default: 1/16 of the image's long side, "
        "20-40 px; 1%% of it above 4000 px)",
    )
    p.add_argument(
        "--min-detection",
        type=_share,
        default=MIN_DETECTION,
        help="drop faces the detector rates below this, 0-1 (default: %(default)s); those "
        f"below {DOUBTFUL} are kept but marked doubtful",
    )
    p.add_argument(
        "--crop",
        default="square",
        choices=["square", "aligned", "box"],
        help="model input: the box made square (default), aligned to FER2013's framing by its "
        "landmarks, or the bare box",
    )


def _pipeline(args):
    from ferkit.model.recognizer import FacialExpressionModel
    from ferkit.vision.pipeline import Pipeline

    model = FacialExpressionModel.load(args.model, args.engine)
    return Pipeline(model, args.detector, args.crop, args.min_face, args.min_detection)


def _add_predict(sub) -> None:
    p = _command(
        sub,
        "predict",
        "faces and emotions in photos",
        [
            "ferkit predict photo.jpg",
            "ferkit predict photos/ --out annotated/ --csv faces.csv",
            "ferkit predict photo.jpg --json",
        ],
    )
    p.add_argument("inputs", nargs="+", type=Path, help="image files or folders of images")
    p.add_argument("--out", type=Path, help="folder for annotated images and one JSON per image")
    p.add_argument("--json", action="store_true", help="print one JSON line per image")
    p.add_argument(
        "--csv", type=Path, help="one row per face of every image (file, face_id, box, scores)"
    )
    _add_model_options(p)
    _add_face_options(p)


def _check_outputs(inputs: list[Path], outputs: list[Path | None]) -> None:
    """Refuse, before any work, an output that would replace an input (`--out clip.mp4` for
    clip.mp4), another output (`--csv x --json x`) or a folder."""
    given = {p.resolve() for p in inputs if os.path.exists(p)}  # False where it may not look
    taken: set[Path] = set()
    for path in outputs:
        if path is None:
            continue
        real = path.resolve()
        if real in given:
            raise FerkitError(f"{path}: this output would overwrite an input; choose another name")
        if real in taken:
            raise FerkitError(f"{path}: named for two outputs; give each its own name")
        if path.is_dir():
            raise FerkitError(f"{path}: is a folder; give a file name for this output")
        taken.add(real)


def _check_data_apart(data: list[Path | None], out: Path, names: list[str]) -> None:
    """`--out` of explore/evaluate: not inside a class folder given as data (its PNGs would
    be read as faces next time), and none of its `names` an input file."""
    for path in filter(None, data):
        if path.is_dir() and out.resolve().is_relative_to(path.resolve()):
            raise FerkitError(f"{out}: inside the data folder {path}; choose a folder outside it")
    _check_outputs([p for p in data if p is not None], [out / n for n in names])


def _csv_rows(path: Path, faces) -> list[list]:
    return [[str(path), *face.csv_row()] for face in faces]


def _note_loops(loops: list[Path]) -> None:
    """One line for each link in an input folder that leads round in a loop (left out)."""
    for link in loops:
        print(f"note: left out {link}: a symbolic link loop", file=sys.stderr)


def cmd_predict(args) -> int:
    from ferkit.files import find_inputs, unique_name, write_csv, write_json
    from ferkit.media.images import read_image, sniff_file
    from ferkit.vision.face import CSV_FIELDS
    from ferkit.vision.overlay import write_annotated

    paths, unwanted, loops = find_inputs(args.inputs, args.out, lambda f: sniff_file(f) == "image")
    _note_loops(loops)
    if unwanted:
        print(
            f"note: left out {unwanted} file(s) in the folders that are not photos", file=sys.stderr
        )
    taken: set[str] = set()  # one output name per input: a/x.jpg, b/x.jpg -> x, x-2
    names = [unique_name(path.stem, taken) for path in paths]
    if args.out:
        _make_folder(args.out)
    annotated = (
        [args.out / f"{n}{ext}" for n in names for ext in (".png", ".json")] if args.out else []
    )
    _check_outputs(paths, [*annotated, args.csv])
    _output_folder(args.csv)
    pipeline = _pipeline(args)
    failed, rows = 0, []
    for path, name in zip(paths, names, strict=True):
        try:
            image = read_image(path)
            faces = pipeline(image)
        except FerkitError as err:
            failed += 1
            print(f"error: {err}", file=sys.stderr)
            continue
        record = {
            "file": str(path),
            "width": image.shape[1],
            "height": image.shape[0],
            "faces": [f.to_dict() for f in faces],
        }
        if args.out:
            write_annotated(args.out / f"{name}.png", image, faces)
            write_json(args.out / f"{name}.json", record)
        rows += _csv_rows(path, faces)
        if args.json:
            print(json.dumps(record))
        else:
            found = ", ".join(f"#{f.face_id} {f.emotion} ({f.score:.0%})" for f in faces)
            print(f"{path}: {len(faces)} face(s){': ' + found if faces else ''}")
    if args.csv:
        write_csv(args.csv, ["file", *CSV_FIELDS], rows)
    return 1 if failed else 0


def _add_video(sub) -> None:
    p = _command(
        sub,
        "video",
        "annotate a saved video (H.264 MP4, CSV, summary, chart)",
        [
            "ferkit video clip.mp4 --out annotated.mp4",
            "ferkit video clip.mp4 --out out/clip.mp4 --csv out/frames.csv --chart out/chart.png",
        ],
    )
    p.add_argument("input", type=Path, help="the video to annotate (MP4, MOV, WebM, AVI, ...)")
    p.add_argument("--out", type=Path, required=True, help="annotated video (.mp4)")
    p.add_argument("--csv", type=Path, help="per-frame results")
    p.add_argument("--json", type=Path, help="summary: share of each emotion per face")
    p.add_argument("--chart", type=Path, help="emotion-over-time PNG")
    _add_video_options(p)
    _add_model_options(p)
    _add_face_options(p)


def cmd_video(args) -> int:
    from ferkit.jobs.video import VideoOutputs, process_video

    if args.out.suffix.lower() != ".mp4":
        raise FerkitError(f"{args.out}: the output must be an .mp4 file")
    for path in (args.out, args.csv, args.json, args.chart):
        _output_folder(path)
    _check_outputs([args.input], [args.out, args.csv, args.json, args.chart])
    outputs = VideoOutputs(args.out, args.csv, args.json, args.chart)
    try:
        stream = _pipeline(args).stream(smooth=not args.no_smooth, min_frames=args.min_track)
        summary = process_video(args.input, outputs, stream, args.every)
    except KeyboardInterrupt:
        print("\ninterrupted: nothing was written", file=sys.stderr)
        return 130
    print(f"{summary['frames']} frames, {len(summary['faces'])} face track(s) -> {args.out}")
    for face_id, face in summary["faces"].items():
        print(f"  face {face_id}: {face['frames']} frames, mostly {face['dominant']}")
    return 0


def _add_export(sub) -> None:
    p = _command(
        sub,
        "export",
        "export a model folder to ONNX (model.onnx, and model.int8.onnx with --int8)",
        [
            "ferkit export runs/default",
            "ferkit export runs/default --int8 ../shared/data/fer2013/publictest",
        ],
    )
    p.add_argument("model", type=Path, help="model folder with model.json and model.weights.h5")
    p.add_argument(
        "--int8",
        type=Path,
        metavar="DATA",
        help="also write an int8 model calibrated on faces of DATA the model trained on",
    )


def cmd_export(args) -> int:
    from ferkit.training.export import export_onnx

    print(f"wrote {export_onnx(args.model)}")
    if args.int8:
        from ferkit.training import data
        from ferkit.training.export import calibration_faces, export_int8

        faces = calibration_faces(args.model, data.load(args.int8).images)
        path, same = export_int8(args.model, faces)
        print(f"wrote {path} (same answer as float32 on {same:.1%} of {len(faces)} faces)")
    return 0


def _add_ensemble(sub) -> None:
    p = _command(
        sub,
        "ensemble",
        "join model folders into one ensemble folder (each member keeps its preprocessing; "
        "scores combined by their geometric mean)",
        ["ferkit ensemble runs/default runs/blurred --out runs/ensemble"],
    )
    p.add_argument("models", type=Path, nargs="+", help="model folders (named by their folder)")
    p.add_argument("--out", type=Path, required=True, help="the new ensemble folder")


def cmd_ensemble(args) -> int:
    from ferkit.model.folder import write_ensemble

    names = [m.resolve().name for m in args.models]
    if len(set(names)) != len(names) or len(names) < 2:
        raise FerkitError("give two or more model folders with different names")
    _output_folder(args.out)
    write_ensemble(args.out, dict(zip(names, args.models, strict=True)))
    print(f"wrote the ensemble of {', '.join(names)} to {args.out}")
    return 0


def _add_serve(sub) -> None:
    p = _command(
        sub,
        "serve",
        "the web app (live webcam, server stream, uploads, REST API)",
        [
            "ferkit serve",
            "ferkit serve --port 8000 --source 0",
            "ferkit serve --host 0.0.0.0 --source clip.mp4 --model runs/default",
        ],
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=_port, default=5000, help="port to listen on (1-65535)")
    p.add_argument(
        "--source",
        help="server stream source: a camera index (0), a video file or a stream URL (rtsp://...)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=128,
        help="worker threads: each live camera holds one, 16 are kept for requests",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help="folder for uploads and outputs (default: $FERKIT_DATA or ~/.local/state/ferkit)",
    )
    p.add_argument(
        "--keep-data", action="store_true", help="keep this run's uploads and outputs after a stop"
    )
    p.add_argument(
        "--live-max",
        type=int,
        help="live cameras and stream viewers served at once (default: threads - 16)",
    )
    p.add_argument(
        "--live-per-client",
        type=int,
        default=8,
        help="of those, the most from one client address (0: no cap; behind a proxy that "
        "all clients come through, use 0)",
    )
    p.add_argument(
        "--jobs-per-client",
        type=int,
        default=2,
        help="video jobs queued or running from one client address (0: no cap)",
    )
    p.add_argument(
        "--live-idle",
        type=float,
        default=30,
        help="close a live camera's socket after this many seconds without a frame",
    )
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=100,
        metavar="MB",
        help="largest photo or video accepted, in megabytes",
    )
    _add_model_options(p)
    _add_face_options(p)


def _check_source(source: str | None) -> None:
    """`--source` is what OpenCV opens: a camera index, a stream URL, or a video file, which
    must be there now (a mistyped path would only show as a stream page that stays blank)."""
    if source is None or source.isdigit() or "://" in source:
        return
    if not os.path.exists(source):
        raise FerkitError(
            f"--source {source}: no such file (give a video file, a camera index such as 0, "
            "or a stream URL)"
        )
    if os.path.isdir(source):
        raise FerkitError(f"--source {source}: is a folder; give a video file")


def cmd_serve(args) -> int:
    from ferkit.model.recognizer import FacialExpressionModel
    from ferkit.web import logs
    from ferkit.web.serve import check_port, serve

    _check_source(args.source)
    logs.setup()
    check_port(args.host, args.port)  # a busy port fails here, before anything loads
    model = FacialExpressionModel.load(args.model, args.engine)  # so does a bad --model
    serve(
        {
            "MODEL_DIR": args.model,
            "ENGINE": args.engine,
            "SOURCE": args.source,
            "DETECTOR": args.detector,
            "MIN_FACE": args.min_face,
            "MIN_DETECTION": args.min_detection,
            "CROP": args.crop,
            "DATA_DIR": args.data_dir,
            "KEEP_DATA": args.keep_data,
            "LIVE_MAX": args.live_max,
            "LIVE_PER_CLIENT": args.live_per_client,
            "JOBS_PER_CLIENT": args.jobs_per_client,
            "LIVE_IDLE_S": args.live_idle,
            "MAX_CONTENT_LENGTH": int(args.max_upload_mb * 2**20),
        },
        args.host,
        args.port,
        args.threads,
        # TensorFlow hangs in a forked worker, so only ONNX Runtime's models are handed over
        model=model if "keras" not in model.engine else None,
    )
    return 0


def _add_batch(sub) -> None:
    p = _command(
        sub,
        "batch",
        "every photo and video of a corpus: tables across files, resumable, local or on Dask",
        [
            "ferkit batch recordings/ photos/*.jpg --out results/",
            "ferkit batch recordings/ --out results/ --engine dask --address 10.0.0.5:8786",
        ],
    )
    p.add_argument("inputs", nargs="+", help="files, folders (recursive) or globs")
    p.add_argument("--out", type=Path, required=True, help="folder for the tables and manifest")
    p.add_argument(
        "--engine",
        default="local",
        choices=["local", "dask"],
        help="local: a process pool on this machine; dask: the cluster at --address",
    )
    p.add_argument("--address", help="HOST:PORT of the Dask scheduler (--engine dask)")
    p.add_argument("--workers", type=_count, help="local worker processes (default: one per core)")
    p.add_argument(
        "--chunk-frames",
        type=int,
        default=4500,
        help="split longer videos into chunks of this many frames (0: never)",
    )
    p.add_argument("--annotate", action="store_true", help="also write annotated media")
    _add_video_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_model_options(p, "--model-engine")
    _add_face_options(p)


def cmd_batch(args) -> int:
    from ferkit.jobs.batch import run_batch
    from ferkit.jobs.executors import open_engine
    from ferkit.model.recognizer import FacialExpressionModel

    _make_folder(args.out)
    FacialExpressionModel.load(args.model, args.model_engine)  # a bad --model fails here, once
    options = {
        "model": str(args.model.resolve()) if args.model else None,
        "engine": args.model_engine,
        "detector": args.detector,
        "crop": args.crop,
        "min_face": args.min_face,
        "min_detection": args.min_detection,
    }
    engine = open_engine(args.engine, args.address, args.workers, options)
    try:
        report = run_batch(
            args.inputs,
            args.out,
            engine,
            chunk_frames=args.chunk_frames,
            every=args.every,
            smooth=not args.no_smooth,
            min_track=args.min_track,
            annotate=args.annotate,
            show_bar=not args.quiet,
        )
    except KeyboardInterrupt:
        print(
            "\ninterrupted: finished files are kept; run the same command to go on", file=sys.stderr
        )
        return 130
    finally:
        engine.close()
    _note_loops(report.loops)
    for error in report.errors:
        print(f"error: {error['error']}", file=sys.stderr)
    unwanted = f", {report.unwanted} neither photo nor video left out" if report.unwanted else ""
    print(
        f"{report.done} file(s) analysed, {report.skipped} already done, "
        f"{len(report.errors)} failed{unwanted}; {report.rows['faces']} face rows -> {args.out}"
    )
    return 1 if report.errors else 0


COMMANDS = {
    "explore": (_add_explore, cmd_explore),
    "train": (_add_train, cmd_train),
    "evaluate": (_add_evaluate, cmd_evaluate),
    "export": (_add_export, cmd_export),
    "ensemble": (_add_ensemble, cmd_ensemble),
    "predict": (_add_predict, cmd_predict),
    "video": (_add_video, cmd_video),
    "batch": (_add_batch, cmd_batch),
    "serve": (_add_serve, cmd_serve),
}


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="ferkit",
        description="Facial expression recognition (FER2013).",
        epilog="'ferkit COMMAND --help' shows a command's options and examples.",
    )
    p.add_argument("--version", action="version", version=f"ferkit {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    p.commands = sub.choices
    return p


def _interrupted(signum, frame) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C: temporary files removed, exit 130


def main(argv: list[str] | None = None) -> int:
    quiet_tensorflow()  # train, explore --augment, export, --engine keras: ferkit's lines only
    previous = {}
    try:
        args = parser().parse_args(argv)
        if args.command != "serve" and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):  # `kill`, a closed terminal
                if signal.getsignal(sig) is signal.SIG_DFL:  # not under nohup, not a host's
                    previous[sig] = signal.signal(sig, _interrupted)
        code = COMMANDS[args.command][1](args)
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at exit
        return code
    except FerkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `ferkit ... | head`: the reader has gone, which is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:  # a file the user named that cannot be read or written
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # commands with something to keep say more themselves
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
