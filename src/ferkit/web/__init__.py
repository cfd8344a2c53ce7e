"""The Flask app: application factory, blueprints, one shared recognition pipeline.

Configuration keys (pass a dict to `create_app`): MODEL_DIR and ENGINE (the model), DETECTOR,
MIN_FACE, MIN_DETECTION and CROP (how faces are found and framed: see ferkit.vision.pipeline),
SOURCE (the server stream: camera index or video file), MAX_CONTENT_LENGTH (upload cap),
DATA_DIR (the app's data folder: uploads and outputs; default `$FERKIT_DATA` or
`~/.local/state/ferkit`), KEEP_DATA (keep this run's files after a stop), JOB_TTL_S (how
long finished jobs are kept), JOB_MAX_S (processing time one video may take), MAX_JOBS
(queued video jobs before 429), JOBS_PER_CLIENT (of those, from one client address),
LIVE_MAX (live sockets and MJPEG viewers at once), LIVE_PER_CLIENT (of those, from one client
address; 0: no per-address cap, e.g. behind a proxy that all clients come through),
LIVE_IDLE_S (a live socket with no frame for this long is closed).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ferkit.errors import FerkitError
from ferkit.vision.face import MIN_DETECTION


def upload_limit_mb(cap: int) -> str:
    """The upload cap in MB as pages and messages show it ("100", "2.5")."""
    return f"{cap / 2**20:g}"


def too_large_message(cap: int) -> str:
    """The one 413 message, from the app or from the server's front."""
    return f"the upload is larger than the server's limit of {upload_limit_mb(cap)} MB"


log = logging.getLogger("ferkit.web")

DEFAULTS = {
    "MODEL_DIR": None,
    "ENGINE": "auto",
    "DETECTOR": "centerface",
    "MIN_FACE": None,
    "MIN_DETECTION": MIN_DETECTION,
    "CROP": "square",
    "SOURCE": None,
    "MAX_CONTENT_LENGTH": 100 * 1024 * 1024,
    "DATA_DIR": None,
    "KEEP_DATA": False,
    "JOB_TTL_S": 3600,
    "JOB_MAX_S": 120,
    "MAX_JOBS": 4,
    "JOBS_PER_CLIENT": 2,
    "LIVE_MAX": 64,
    "LIVE_PER_CLIENT": 8,
    "LIVE_IDLE_S": 30,
    # flask-sock: a live frame is a small JPEG; refuse messages over 4 MB
    "SOCK_SERVER_OPTIONS": {"max_message_size": 4 * 1024 * 1024, "ping_interval": 25},
}


def create_app(config: dict | None = None, model=None) -> Flask:
    """The app; `model` (a loaded FacialExpressionModel) saves loading the configured one."""
    from ferkit.model.recognizer import FacialExpressionModel
    from ferkit.vision.pipeline import Pipeline
    from ferkit.web import api, live, logs, mjpeg, pages
    from ferkit.web.slots import LiveSlots
    from ferkit.web.uploads import JobQueue

    app = Flask(__name__)
    app.json.sort_keys = False  # keep scores in label order
    # no redirects built from the request: werkzeug answers `//x` (merge_slashes) and `/x`
    # for a rule `/x/` (strict_slashes) with a 308 to an absolute URL on the client's Host
    app.url_map.merge_slashes = app.url_map.strict_slashes = False
    app.config.update(DEFAULTS)
    app.config.update({k: v for k, v in (config or {}).items() if v is not None})
    if app.config["DATA_DIR"] is None:
        app.config["DATA_DIR"] = default_data_dir()
    model = model or FacialExpressionModel.load(app.config["MODEL_DIR"], app.config["ENGINE"])
    app.extensions["ferkit.pipeline"] = Pipeline(
        model,
        app.config["DETECTOR"],
        app.config["CROP"],
        app.config["MIN_FACE"],
        app.config["MIN_DETECTION"],
    )
    # live sockets and MJPEG viewers each hold a thread: one cap for both
    app.extensions["ferkit.live_slots"] = LiveSlots(
        app.config["LIVE_MAX"], app.config["LIVE_PER_CLIENT"]
    )
    jobs = JobQueue(
        app.config["DATA_DIR"],
        app.extensions["ferkit.pipeline"],
        app.config["MAX_JOBS"],
        app.config["JOB_TTL_S"],
        app.config["JOB_MAX_S"],
        app.config["JOBS_PER_CLIENT"],
    )
    app.extensions["ferkit.jobs"] = jobs
    app.config["SPOOL_DIR"] = str(jobs.root)  # request bodies the server's front holds
    if jobs.removed_at_start:
        log.info("removed the files of %d stopped server(s)", jobs.removed_at_start)
    app.extensions["ferkit.stream"] = mjpeg.SharedCapture(
        app.config["SOURCE"], app.extensions["ferkit.pipeline"]
    )
    for module in (pages, api, live, mjpeg):
        app.register_blueprint(module.bp)
    logs.init_app(app)

    @app.errorhandler(HTTPException)
    def json_errors(err: HTTPException):
        """The error in JSON, with the headers it carries (a 405's Allow); a browser that
        asked for a page that does not exist gets a page with the navigation instead."""
        if err.code == 404 and _wants_page():
            return render_template("404.html"), 404
        message = err.description
        if getattr(err, "valid_methods", None):
            message += f" Allowed: {', '.join(err.valid_methods)}."
        headers = [(k, v) for k, v in err.get_headers() if k.lower() != "content-type"]
        return jsonify(error=message), err.code, headers

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(err: RequestEntityTooLarge):
        cap = app.config["MAX_CONTENT_LENGTH"]
        if request.content_length is not None and request.content_length <= cap:  # not size:
            message = "the form has too many parts"  # werkzeug's max_form_parts (1,000)
        else:
            message = too_large_message(cap)
        return jsonify(error=message), 413

    @app.errorhandler(FerkitError)
    def user_error(err: FerkitError):
        """Bad input found anywhere below a view: a 400 whose message names what was wrong."""
        log.info("refused: %s", err)
        return jsonify(error=str(err)), 400

    return app


def _wants_page() -> bool:
    """A browser's GET of a page's address (not the API's, whose clients want JSON)."""
    accept = request.accept_mimetypes
    return (
        request.method == "GET"
        and not request.path.startswith(("/api/", "/ws/", "/static/"))
        and accept["text/html"] > accept["application/json"]
    )


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


def default_data_dir() -> Path:
    """`$FERKIT_DATA`, else the user's state folder (not /tmp: it must survive to be cleaned)."""
    if os.environ.get("FERKIT_DATA"):
        return Path(os.environ["FERKIT_DATA"])
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "ferkit"


def shutdown(app: Flask | None) -> None:
    """Stop in order: the capture thread, the video jobs (files deleted unless KEEP_DATA),
    then the model's sessions, so no thread runs inference while they are freed."""
    if app is None or "ferkit.jobs" not in app.extensions:
        return
    app.extensions["ferkit.stream"].stop()
    app.extensions.pop("ferkit.jobs").shutdown(keep=app.config["KEEP_DATA"])
    app.extensions.pop("ferkit.pipeline")


def serve(
    config: dict,
    host: str = "127.0.0.1",
    port: int = 5000,
    threads: int = 128,
    model=None,
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
    print(f"ferkit serving on http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    run(lambda: create_app(config, model), host, port, threads, shutdown, worker)
