"""`ferkit serve`: the web app."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ferkit.cli.common import (
    add_face_options,
    add_model_options,
    command,
    count,
    port,
    positive,
    whole,
)
from ferkit.errors import FerkitError

if TYPE_CHECKING:
    import argparse

    from ferkit.cli.common import Subcommands


def add_serve(sub: Subcommands) -> None:
    p = command(
        sub,
        "serve",
        "the web app (live webcam, server stream, uploads, REST API)",
        [
            "ferkit serve",
            "ferkit serve --port 8000 --source 0",
            "ferkit serve --host 0.0.0.0 --source clip.mp4 --model runs/default",
        ],
    )
    from ferkit.web import config  # the server's defaults, one home

    p.add_argument("--host", default=config.HOST, help="address to listen on")
    p.add_argument("--port", type=port, default=config.PORT, help="port to listen on (1-65535)")
    p.add_argument(
        "--source",
        help="server stream source: a camera index (0), a video file or a stream URL (rtsp://...)",
    )
    p.add_argument(
        "--threads",
        type=count,
        default=config.THREADS,
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
        type=count,
        help="live cameras and stream viewers served at once (default: threads - 16)",
    )
    p.add_argument(
        "--live-per-client",
        type=whole,
        default=config.DEFAULTS["LIVE_PER_CLIENT"],
        help="of those, the most from one client address (0: no cap; behind a proxy that "
        "all clients come through, use 0)",
    )
    p.add_argument(
        "--jobs-per-client",
        type=whole,
        default=config.DEFAULTS["JOBS_PER_CLIENT"],
        help="video jobs queued or running from one client address (0: no cap)",
    )
    p.add_argument(
        "--live-idle",
        type=positive,
        default=config.DEFAULTS["LIVE_IDLE_S"],
        help="close a live camera's socket after this many seconds without a frame",
    )
    for flag, key, what in (
        ("--max-upload-mb", "MAX_CONTENT_LENGTH", "largest upload accepted (a video)"),
        ("--max-image-mb", "MAX_IMAGE_BYTES", "largest photo accepted (read whole into memory)"),
    ):
        default = config.DEFAULTS[key] // 2**20
        p.add_argument(flag, type=positive, default=default, metavar="MB", help=f"{what}, in MB")
    add_model_options(p)
    add_face_options(p)


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


def cmd_serve(args: argparse.Namespace) -> int:
    from ferkit.model.recognizer import FacialExpressionModel
    from ferkit.web.serve import check_port, serve

    _check_source(args.source)
    check_port(args.host, args.port)  # a busy port fails here, before anything loads
    model = FacialExpressionModel.load(args.model, args.engine)  # so does a bad --model
    print(f"ferkit serving on http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
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
            "MAX_IMAGE_BYTES": int(args.max_image_mb * 2**20),
        },
        args.host,
        args.port,
        args.threads,
        # TensorFlow hangs in a forked worker, so only ONNX Runtime's models are handed over
        model=model if "keras" not in model.engine else None,
    )
    return 0
