"""The `ferkit` command line: one sub-command per job.

Heavy libraries are imported inside each command, so `ferkit predict` never pays for
TensorFlow and `ferkit --help` answers at once. User mistakes print one `error:` line and
exit with status 2; a failure on some inputs of a batch exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ferkit.errors import FerkitError


def _add_explore(sub) -> None:
    p = sub.add_parser("explore", help="samples per class, class imbalance, image quality")
    p.add_argument("data", type=Path, help="a class folder or fer2013.csv")
    p.add_argument("--val", type=Path, help="a second split to compare (e.g. publictest/)")
    p.add_argument("--usage", help="fer2013.csv rows to use for DATA")
    p.add_argument("--out", type=Path, required=True, help="folder for the PNGs and explore.json")
    p.add_argument("--augment", action="store_true", help="also draw the training augmentation")


def cmd_explore(args) -> int:
    from ferkit import data
    from ferkit.explore import explore, format_quality, format_table

    splits = {args.data.name or "data": data.load(args.data, usage=args.usage)}
    if args.val:
        splits[args.val.name if args.val.name not in splits else "val"] = data.load(args.val)
    report = explore(splits, args.out, augment=args.augment)
    for name, part in report.items():
        print(format_table(name, part["classes"]), end="\n\n")
    for name, part in report.items():
        print(format_quality(name, part["quality"]))
    print(f"\nwrote {', '.join(sorted(p.name for p in args.out.iterdir()))} to {args.out}")
    return 0


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model (resumable, best-val checkpoint, live curves)")
    p.add_argument("data", nargs="*", help="training sources: class folders or fer2013.csv")
    p.add_argument("--val", help="validation source (never trained on)")
    p.add_argument(
        "--val-split",
        type=float,
        help="carve this stratified share of --val out for validation; the rest is trained on",
    )
    p.add_argument("--split-seed", type=int)
    p.add_argument(
        "--val-rest-repeat", type=int, help="repeat the rest of --val this many times in training"
    )
    p.add_argument(
        "--recipe", choices=["seed", "default"], help="preset settings (flags still override)"
    )
    p.add_argument("--arch", help="architecture: seed or vgg")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--class-weight", choices=["none", "sqrt", "balanced"])
    p.add_argument("--blur-prob", type=float, help="share of training images given a random blur")
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--precision",
        choices=["float32", "mixed_bfloat16"],
        help="bf16 trains ~2x faster on CPUs with AVX512-BF16",
    )
    p.add_argument("--max-minutes", type=float, help="stop after the epoch that passes this time")
    p.add_argument("--out", required=True, type=Path, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--quiet", action="store_true", help="one line per epoch instead of a progress bar"
    )


def cmd_train(args) -> int:
    if not args.resume and not args.data:
        raise FerkitError("give at least one training source (a class folder or fer2013.csv)")
    from ferkit.train import RECIPES, TrainConfig, train

    settings = dict(RECIPES.get(args.recipe, {}))
    for key in (
        "val", "val_split", "split_seed", "val_rest_repeat", "arch", "epochs", "batch_size",
        "learning_rate", "label_smoothing", "class_weight", "seed", "max_minutes", "precision",
    ):  # fmt: skip
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.blur_prob is not None:
        settings["augment"] = {
            **settings.get("augment", TrainConfig([]).augment),
            "blur_prob": args.blur_prob,
        }
    cfg = TrainConfig(sources=[str(p) for p in args.data], **settings)
    try:
        meta = train(cfg, args.out, resume=args.resume, verbose=2 if args.quiet else 1)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: continue with 'ferkit train --resume --out {args.out}'",
            file=sys.stderr,
        )
        return 130
    print(
        f"best validation accuracy {meta['metrics']['best_val_accuracy']:.2%}; model files in {args.out}"
    )
    return 0


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy, per-class scores and confusion matrix")
    p.add_argument("data", type=Path, help="a class folder or fer2013.csv")
    _add_model_options(p)
    p.add_argument("--usage", help="fer2013.csv rows to use: Training, PublicTest or PrivateTest")
    p.add_argument("--only", type=Path, help="a file list (one name per line) to restrict to")
    p.add_argument("--blur", type=float, help="blur inputs with this sigma first (as train/ is)")
    p.add_argument("--input-blur", type=float, help="override the model's own input blur sigma")
    p.add_argument(
        "--tta", choices=["on", "off"], help="override the model's flip test-time augmentation"
    )
    p.add_argument("--out", type=Path, help="folder for confusion.png and metrics.json")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_evaluate(args) -> int:
    import numpy as np

    from ferkit import data
    from ferkit.evaluate import format_report, metrics
    from ferkit.preprocess import blur
    from ferkit.recognizer import FacialExpressionModel

    faces = data.load(args.data, usage=args.usage)
    if args.only:
        faces = faces.only(data.read_list(args.only))
    tta = None if args.tta is None else args.tta == "on"
    model = FacialExpressionModel.load(args.model, args.engine, blur_sigma=args.input_blur, tta=tta)
    images = faces.images
    if args.blur:
        images = np.stack([blur(img, args.blur) for img in images])
    predicted = model.predict_scores(images).argmax(axis=1)
    result = metrics(faces.labels, predicted)
    result["data"] = str(args.data) + (f" (only {args.only})" if args.only else "")
    result["blur"] = args.blur or 0.0
    result["engine"] = model.engine
    if args.out:
        from ferkit.files import write_json
        from ferkit.plots import confusion

        args.out.mkdir(parents=True, exist_ok=True)
        confusion(np.array(result["confusion"]), args.out / "confusion.png")
        write_json(args.out / "metrics.json", result)
    print(json.dumps(result) if args.json else format_report(result))
    return 0


def _add_model_options(p) -> None:
    p.add_argument("--model", type=Path, help="model folder (default: the embedded model)")
    p.add_argument("--engine", default="auto", choices=["auto", "keras", "onnx"])


def _pipeline(args):
    from ferkit.pipeline import Pipeline
    from ferkit.recognizer import FacialExpressionModel

    return Pipeline(FacialExpressionModel.load(args.model, args.engine))


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="faces and emotions in photos")
    p.add_argument("inputs", nargs="+", type=Path, help="image files or folders of images")
    p.add_argument("--out", type=Path, help="folder for annotated images and one JSON per image")
    p.add_argument("--json", action="store_true", help="print one JSON line per image")
    _add_model_options(p)


def _image_paths(inputs: list[Path]) -> list[Path]:
    paths = []
    for item in inputs:
        paths += sorted(f for f in item.rglob("*") if f.is_file()) if item.is_dir() else [item]
    return paths


def cmd_predict(args) -> int:
    import cv2

    from ferkit.files import write_atomic, write_json
    from ferkit.images import read_image
    from ferkit.overlay import draw

    pipeline = _pipeline(args)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in _image_paths(args.inputs):
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
            "faces": faces,
        }
        if args.out:
            ok, png = cv2.imencode(".png", draw(image, faces))
            write_atomic(args.out / f"{path.stem}.png", png.tobytes())
            write_json(args.out / f"{path.stem}.json", record)
        if args.json:
            print(json.dumps(record))
        else:
            found = ", ".join(f"{f['emotion']} ({f['scores'][f['emotion']]:.0%})" for f in faces)
            print(f"{path}: {len(faces)} face(s){': ' + found if faces else ''}")
    return 1 if failed else 0


def _add_video(sub) -> None:
    p = sub.add_parser("video", help="annotate a saved video (H.264 MP4, CSV, summary, chart)")
    p.add_argument("input", type=Path)
    p.add_argument("--out", type=Path, required=True, help="annotated video (.mp4)")
    p.add_argument("--csv", type=Path, help="per-frame results")
    p.add_argument("--json", type=Path, help="summary: share of each emotion per face")
    p.add_argument("--chart", type=Path, help="emotion-over-time PNG")
    p.add_argument("--every", type=int, default=1, help="classify every N-th frame")
    p.add_argument("--no-smooth", action="store_true", help="no tracking or score smoothing")
    _add_model_options(p)


def cmd_video(args) -> int:
    from ferkit.video import VideoOutputs, process_video

    if args.out.suffix.lower() != ".mp4":
        raise FerkitError(f"{args.out}: the output must be an .mp4 file")
    outputs = VideoOutputs(args.out, args.csv, args.json, args.chart)
    try:
        pipeline = _pipeline(args).for_stream()
        summary = process_video(args.input, outputs, pipeline, args.every, not args.no_smooth)
    except KeyboardInterrupt:
        print("\ninterrupted: nothing was written", file=sys.stderr)
        return 130
    print(f"{summary['frames']} frames, {len(summary['faces'])} face track(s) -> {args.out}")
    for face_id, face in summary["faces"].items():
        print(f"  face {face_id}: {face['frames']} frames, mostly {face['dominant']}")
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a model folder to ONNX (model.onnx)")
    p.add_argument("model", type=Path, help="model folder with model.json and model.weights.h5")


def cmd_export(args) -> int:
    from ferkit.export import export_onnx

    print(f"wrote {export_onnx(args.model)}")
    return 0


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="the web app (live webcam, server stream, uploads, REST API)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--source", help="server stream source: a camera index (0) or a video file")
    p.add_argument(
        "--threads", type=int, default=16, help="worker threads (each live camera holds one)"
    )
    _add_model_options(p)


def cmd_serve(args) -> int:
    from ferkit.recognizer import FacialExpressionModel
    from ferkit.web import serve

    FacialExpressionModel.load(args.model, args.engine)  # a bad --model fails here, clearly
    serve(
        {"MODEL_DIR": args.model, "ENGINE": args.engine, "SOURCE": args.source},
        args.host,
        args.port,
        args.threads,
    )
    return 0


COMMANDS = {
    "explore": (_add_explore, cmd_explore),
    "train": (_add_train, cmd_train),
    "evaluate": (_add_evaluate, cmd_evaluate),
    "export": (_add_export, cmd_export),
    "predict": (_add_predict, cmd_predict),
    "video": (_add_video, cmd_video),
    "serve": (_add_serve, cmd_serve),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ferkit", description="Facial expression recognition (FER2013)."
    )
    sub = p.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command][1](args)
    except FerkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
