"""Run the app: refuse a busy port before anything loads, then one gunicorn process with
the buffering worker (`ferkit.web.server`)."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from ferkit.errors import FerkitError
from ferkit.web import create_app, shutdown
from ferkit.web.config import HOST, PORT, THREADS

if TYPE_CHECKING:
    from ferkit.model.recognizer import FacialExpressionModel


def check_port(host: str, port: int) -> None:
    """Refuse a port that is taken before anything loads, instead of gunicorn's retry noise."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
            s.bind((host, port))
    except OSError as err:
        raise FerkitError(
            f"cannot listen on {host}:{port} ({err.strerror}); "
            "is another server running there? Pick another with --port"
        ) from err


def serve(
    config: dict,
    host: str = HOST,
    port: int = PORT,
    threads: int = THREADS,
    model: FacialExpressionModel | None = None,
    worker: str = "buffering",
) -> None:
    """One gunicorn process (one model in memory) with the buffering worker of
    `ferkit.web.server`; Ctrl-C or SIGTERM stops it cleanly.

    The app is created in the worker process, after the fork, so its job thread lives there;
    an ONNX model loaded before (to fail early on a bad one) is reused, not loaded again:
    with one intra-op thread, ONNX Runtime runs on the calling thread and survives the fork.
    """
    from ferkit.web.server import RESERVED_THREADS, run

    if config.get("LIVE_MAX") is None:
        config = {**config, "LIVE_MAX": max(1, threads - RESERVED_THREADS)}
    run(lambda: create_app(config, model), host, port, threads, shutdown, worker)
