"""`ferkit evaluate`, `ferkit export` and `ferkit ensemble`: a model's figures (held out, out of
fold, calibrated, against another model), its ONNX files, and ensembles of model folders.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ferkit.cli.common import (
    add_model_options,
    check_data_apart,
    command,
    make_folder,
    output_folder,
)
from ferkit.errors import FerkitError

if TYPE_CHECKING:
    import argparse

    from ferkit.cli.common import Subcommands

MAX_BLUR_SIGMA = 20.0  # evaluate's --blur/--input-blur: far past train/'s ~3.3 on a 48 px face


def add_evaluate(sub: Subcommands) -> None:
    p = command(
        sub,
        "evaluate",
        "accuracy, per-class scores and confusion matrix",
        [
            "ferkit evaluate ../shared/data/fer2013/publictest --only splits/publictest_val.txt",
            "ferkit evaluate fer2013.csv --usage PrivateTest --json --out metrics/",
        ],
    )
    p.add_argument("data", type=Path, help="a class folder or fer2013.csv")
    add_model_options(p)
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
        "--ensemble-with",
        type=Path,
        metavar="MODEL",
        help="with --out-of-fold: join each fold model with this model folder (one that never "
        "trained on these faces, e.g. the blurred specialist) by the geometric mean, as "
        "'ferkit ensemble' does, and compare with the fold models alone (McNemar)",
    )
    p.add_argument(
        "--against",
        type=Path,
        metavar="MODEL",
        help="also score this model folder (e.g. the shipped one) on the same faces, those "
        "neither trained on, and compare them face by face (McNemar); with --out-of-fold it "
        "may be a K-fold run of the same split (its folds kept without weights too), compared "
        "out of fold on every face",
    )
    p.add_argument(
        "--require-better",
        action="store_true",
        help="with --against: exit 1 unless --model is right on more of those faces, by more "
        "than chance (McNemar's test; the shipping rule, MODEL.md)",
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


def cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from ferkit.model.calibration import apply_temperature, expected_calibration_error
    from ferkit.model.fingerprints import trained_on, training_overlap
    from ferkit.model.preprocess import blur
    from ferkit.model.recognizer import FacialExpressionModel
    from ferkit.training import data
    from ferkit.training.evaluate import fold_folders, format_report, metrics, out_of_fold_scores

    if args.out:
        check_data_apart(
            [args.data], args.out, ["metrics.json", "confusion.png", "reliability.png"]
        )
        make_folder(args.out)
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
    if args.ensemble_with and not args.out_of_fold:
        raise FerkitError("--ensemble-with needs --out-of-fold and --model RUN")
    if args.blur and args.out_of_fold and args.against and fold_folders(args.against):
        raise FerkitError(
            f"--blur: {args.against} kept its folds' answers on the faces as they are"
        )
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
        overlap, engine = 0, "out-of-fold"
        if args.ensemble_with:
            scores, alone = _join(args, faces, images, scores), scores
        raw = scores
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
    # calibration is a matter of held-out answers: the faces the model never trained on
    unseen = np.ones(len(faces), bool) if not overlap else ~trained_on(model.metadata, faces.images)
    labels, raw, scores_unseen = faces.labels[unseen], raw[unseen], scores[unseen]
    result["ece"] = expected_calibration_error(scores_unseen, labels)
    if args.calibrate:
        result["calibration"] = _write_calibration(args.model, raw, labels, source)
    result["trained_on"] = overlap
    result["data"] = source
    result["blur"] = args.blur or 0.0
    result["engine"] = engine
    if args.ensemble_with:
        result["alone"] = _alone(args, faces.labels, scores, alone)
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
        shown = raw if temperature else scores_unseen
        reliability_diagram(shown, labels, args.out / "reliability.png", after)
        write_json(args.out / "metrics.json", result)
    print(json.dumps(result) if args.json else format_report(result))
    if args.require_better and not result["against"]["better"]:
        return 1
    return 0


def _join(args, faces, images, fold_scores):
    """The out-of-fold answers of each fold model joined with `--ensemble-with`."""
    from ferkit.model.recognizer import FacialExpressionModel
    from ferkit.training.evaluate import joined_with

    partner = FacialExpressionModel.load(args.ensemble_with, args.engine)
    try:
        return joined_with(partner, faces.images, images, [fold_scores])
    except FerkitError as err:  # say which model
        raise FerkitError(f"{args.ensemble_with}: {err}") from err


def _alone(args, labels, joined, alone) -> dict:
    """The fold models alone on the same faces, against the ensemble, face by face."""
    from ferkit.training.evaluate import mcnemar, metrics

    result = metrics(labels, alone.argmax(axis=1))
    right = joined.argmax(axis=1) == labels
    test = mcnemar(right, alone.argmax(axis=1) == labels)
    print(
        f"joined with {args.ensemble_with}: {right.mean():.2%} vs "
        f"{result['accuracy']:.2%} for the fold models alone (right only joined "
        f"{test['only_first']}, only alone {test['only_second']}, McNemar p = {test['p']:.3f})",
        file=sys.stderr,
    )
    return {
        "model": str(args.ensemble_with),
        "accuracy": result["accuracy"],
        "macro_recall": result["macro_recall"],
        **test,
    }


def _compare(args, model, faces, images, scores) -> dict:
    """The candidate (`--model`) and `--against` on the faces neither trained on, or, for
    two K-fold runs, out of fold on all of them."""
    from ferkit.model.recognizer import FacialExpressionModel
    from ferkit.training.evaluate import fold_folders, paired, paired_runs

    runs = args.out_of_fold and bool(fold_folders(args.against))
    try:
        if runs:
            result = paired_runs(scores, faces, args.model, args.against)
        else:
            reference = FacialExpressionModel.load(args.against, args.engine)
            result = paired(scores, reference, faces, images, model)
    except FerkitError as err:  # say which model
        raise FerkitError(f"{args.against}: {err}") from err
    where = "faces, both out of fold" if runs else "faces neither trained on"
    print(
        f"against {args.against} on the {result['n']} {where}: "
        f"{result['accuracy_of_model']:.2%} vs {result['accuracy']:.2%} (right only here "
        f"{result['only_first']}, only there {result['only_second']}, McNemar p = "
        f"{result['p']:.3f})",
        file=sys.stderr,
    )
    return {"model": str(args.against), **result}


def _write_calibration(model: Path, raw, labels, data: str) -> dict:
    """Fit the temperature on held-out answers and keep it in the model folder's metadata."""
    from ferkit.model.calibration import calibrate
    from ferkit.model.folder import write_calibration

    record = write_calibration(model, {**calibrate(raw, labels), "fitted_on": data})
    print(
        f"calibration: temperature {record['temperature']:.3f}; expected calibration error "
        f"{record['ece_before']:.3f} -> {record['ece_after']:.3f} "
        f"({record['ece_after_cross_fitted']:.3f} fitted on the other half); written to {model}",
        file=sys.stderr,
    )
    return record


def add_export(sub: Subcommands) -> None:
    p = command(
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


def cmd_export(args: argparse.Namespace) -> int:
    from ferkit.training.export import export_onnx

    print(f"wrote {export_onnx(args.model)}")
    if args.int8:
        from ferkit.training import data
        from ferkit.training.export import calibration_faces, export_int8

        faces = calibration_faces(args.model, data.load(args.int8).images)
        path, same = export_int8(args.model, faces)
        print(f"wrote {path} (same answer as float32 on {same:.1%} of {len(faces)} faces)")
    return 0


def add_ensemble(sub: Subcommands) -> None:
    p = command(
        sub,
        "ensemble",
        "join model folders into one ensemble folder (each member keeps its preprocessing; "
        "scores combined by their geometric mean)",
        ["ferkit ensemble runs/default runs/blurred --out runs/ensemble"],
    )
    p.add_argument("models", type=Path, nargs="+", help="model folders (named by their folder)")
    p.add_argument("--out", type=Path, required=True, help="the new ensemble folder")


def cmd_ensemble(args: argparse.Namespace) -> int:
    from ferkit.model.folder import write_ensemble

    names = [m.resolve().name for m in args.models]
    if len(set(names)) != len(names) or len(names) < 2:
        raise FerkitError("give two or more model folders with different names")
    output_folder(args.out)
    write_ensemble(args.out, dict(zip(names, args.models, strict=True)))
    print(f"wrote the ensemble of {', '.join(names)} to {args.out}")
    return 0
