"""`ferkit predict` (photos) and `ferkit video` (a saved video)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ferkit.cli.common import (
    add_face_options,
    add_model_options,
    add_video_options,
    check_outputs,
    command,
    make_folder,
    note_loops,
    output_folder,
    pipeline,
)
from ferkit.errors import FerkitError

if TYPE_CHECKING:
    import argparse

    from ferkit.cli.common import Subcommands


def add_predict(sub: Subcommands) -> None:
    p = command(
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
    add_model_options(p)
    add_face_options(p)


def _csv_rows(path: Path, faces) -> list[list]:
    return [[str(path), *face.csv_row()] for face in faces]


def cmd_predict(args: argparse.Namespace) -> int:
    from ferkit.files import find_inputs, unique_name, write_csv, write_json
    from ferkit.media.images import read_image, sniff_file
    from ferkit.vision.face import CSV_FIELDS
    from ferkit.vision.overlay import write_annotated
    from ferkit.vision.result import ImageResult

    paths, unwanted, loops = find_inputs(args.inputs, args.out, lambda f: sniff_file(f) == "image")
    note_loops(loops)
    if unwanted:
        print(
            f"note: left out {unwanted} file(s) in the folders that are not photos", file=sys.stderr
        )
    taken: set[str] = set()  # one output name per input: a/x.jpg, b/x.jpg -> x, x-2
    names = [unique_name(path.stem, taken) for path in paths]
    if args.out:
        make_folder(args.out)
    annotated = (
        [args.out / f"{n}{ext}" for n in names for ext in (".png", ".json")] if args.out else []
    )
    check_outputs(paths, [*annotated, args.csv])
    output_folder(args.csv)
    pipe = pipeline(args)
    failed, rows = 0, []
    for path, name in zip(paths, names, strict=True):
        try:
            image = read_image(path)
            faces = pipe(image)
        except FerkitError as err:
            failed += 1
            print(f"error: {err}", file=sys.stderr)
            continue
        result = ImageResult.of(image, faces, str(path))
        if args.out:
            write_annotated(args.out / f"{name}.png", image, faces)
            write_json(args.out / f"{name}.json", result.to_dict())
        rows += _csv_rows(path, faces)
        print(json.dumps(result.to_dict()) if args.json else f"{path}: {result.summary()}")
    if args.csv:
        write_csv(args.csv, ["file", *CSV_FIELDS], rows)
    return 1 if failed else 0


def add_video(sub: Subcommands) -> None:
    p = command(
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
    add_video_options(p)
    add_model_options(p)
    add_face_options(p)


def cmd_video(args: argparse.Namespace) -> int:
    from ferkit.jobs.video import VideoOutputs, process_video

    if args.out.suffix.lower() != ".mp4":
        raise FerkitError(f"{args.out}: the output must be an .mp4 file")
    for path in (args.out, args.csv, args.json, args.chart):
        output_folder(path)
    check_outputs([args.input], [args.out, args.csv, args.json, args.chart])
    outputs = VideoOutputs(args.out, args.csv, args.json, args.chart)
    try:
        stream = pipeline(args).stream(smooth=not args.no_smooth, min_frames=args.min_track)
        summary = process_video(args.input, outputs, stream, args.every)
    except KeyboardInterrupt:
        print("\ninterrupted: nothing was written", file=sys.stderr)
        return 130
    print(f"{summary['frames']} frames, {len(summary['faces'])} face track(s) -> {args.out}")
    for face_id, face in summary["faces"].items():
        print(f"  face {face_id}: {face['frames']} frames, mostly {face['dominant']}")
    return 0
