"""`ferkit batch`: every photo and video of a corpus, locally or on a Dask cluster."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ferkit.cli.common import (
    add_face_options,
    add_model_options,
    add_video_options,
    command,
    count,
    make_folder,
    note_loops,
)

if TYPE_CHECKING:
    import argparse

    from ferkit.cli.common import Subcommands


def add_batch(sub: Subcommands) -> None:
    from ferkit.jobs.executors import EXECUTORS

    p = command(
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
        choices=EXECUTORS,
        help="local: a process pool on this machine; dask: the cluster at --address",
    )
    p.add_argument("--address", help="HOST:PORT of the Dask scheduler (--engine dask)")
    p.add_argument("--workers", type=count, help="local worker processes (default: one per core)")
    p.add_argument(
        "--chunk-frames",
        type=int,
        default=4500,
        help="split longer videos into chunks of this many frames (0: never)",
    )
    p.add_argument("--annotate", action="store_true", help="also write annotated media")
    add_video_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_model_options(p, "--model-engine")
    add_face_options(p)


def cmd_batch(args: argparse.Namespace) -> int:
    from ferkit.jobs.batch import open_executor, run_batch
    from ferkit.model.recognizer import FacialExpressionModel

    make_folder(args.out)
    FacialExpressionModel.load(args.model, args.model_engine)  # a bad --model fails here, once
    options = {
        "model": str(args.model.resolve()) if args.model else None,
        "engine": args.model_engine,
        "detector": args.detector,
        "crop": args.crop,
        "min_face": args.min_face,
        "min_detection": args.min_detection,
    }
    engine = open_executor(args.engine, args.address, args.workers, options)
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
    note_loops(report.loops)
    for error in report.errors:
        print(f"error: {error['error']}", file=sys.stderr)
    unwanted = f", {report.unwanted} neither photo nor video left out" if report.unwanted else ""
    print(
        f"{report.done} file(s) analysed, {report.skipped} already done, "
        f"{len(report.errors)} failed{unwanted}; {report.rows['faces']} face rows -> {args.out}"
    )
    return 1 if report.errors else 0
