"""The Flask app: application factory, blueprints, one shared recognition pipeline.

Configuration keys (pass a dict to `create_app`): MODEL_DIR and ENGINE (the model), DETECTOR,
MIN_FACE and CROP (how faces are found and framed: see ferkit.pipeline),
SOURCE (the server stream: camera index or video file), MAX_CONTENT_LENGTH (upload cap),
JOB_DIR (private folder for uploads and outputs), JOB_TTL_S (how long finished jobs are
kept), MAX_JOBS (queued video jobs before 429), LIVE_MAX_SIDE (live frames are downscaled).
"""

from __future__ import annotations

import logging
import socket
import tempfile

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ferkit.errors import FerkitError

log = logging.getLogger("ferkit.web")

DEFAULTS = {
    "MODEL_DIR": None,
    "ENGINE": "auto",
    "DETECTOR": "centerface",
    "MIN_FACE": None,
    "CROP": "aligned",
    "SOURCE": None,
    "MAX_CONTENT_LENGTH": 100 * 1024 * 1024,
    "JOB_DIR": None,
    "JOB_TTL_S": 3600,
    "MAX_JOBS": 4,
    # flask-sock: a live frame is a small JPEG; refuse messages over 4 MB
    "SOCK_SERVER_OPTIONS": {"max_message_size": 4 * 1024 * 1024, "ping_interval": 25},
}


def create_app(config: dict | None = None, model=None) -> Flask:
    """The app; `model` (a loaded FacialExpressionModel) saves loading the configured one."""
    from ferkit.pipeline import Pipeline
    from ferkit.recognizer import FacialExpressionModel
    from ferkit.web import api, live, logs, pages, stream
    from ferkit.web.jobs import JobQueue

    app = Flask(__name__)
    app.json.sort_keys = False  # keep scores in label order
    app.config.update(DEFAULTS)
    app.config.update({k: v for k, v in (config or {}).items() if v is not None})
    if app.config["JOB_DIR"] is None:
        app.config["JOB_DIR"] = tempfile.mkdtemp(prefix="ferkit-jobs-")
    model = model or FacialExpressionModel.load(app.config["MODEL_DIR"], app.config["ENGINE"])
    app.extensions["ferkit.pipeline"] = Pipeline(
        model, app.config["DETECTOR"], app.config["CROP"], app.config["MIN_FACE"]
    )
    app.extensions["ferkit.jobs"] = JobQueue(
        app.config["JOB_DIR"],
        app.extensions["ferkit.pipeline"],
        app.config["MAX_JOBS"],
        app.config["JOB_TTL_S"],
    )
    app.extensions["ferkit.stream"] = stream.SharedCapture(
        app.config["SOURCE"], app.extensions["ferkit.pipeline"]
    )
    for module in (pages, api, live, stream):
        app.register_blueprint(module.bp)
    logs.init_app(app)

    @app.errorhandler(HTTPException)
    def json_errors(err: HTTPException):
        return jsonify(error=err.description), err.code

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(err: RequestEntityTooLarge):
        limit = app.config["MAX_CONTENT_LENGTH"] / 1024 / 1024
        return jsonify(error=f"the upload is larger than the server's limit of {limit:g} MB"), 413

    @app.errorhandler(FerkitError)
    def user_error(err: FerkitError):
        """Bad input found anywhere below a view: a 400 whose message names what was wrong."""
        log.info("refused: %s", err)
        return jsonify(error=str(err)), 400

    return app


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
    config: dict, host: str = "127.0.0.1", port: int = 5000, threads: int = 16, model=None
) -> None:
    """Gunicorn with one process (one model in memory) and threads; Ctrl-C stops it.

    Gunicorn's threaded worker hands WebSockets their socket, which waitress cannot. The
    app is created in the worker process, after the fork, so its job thread lives there;
    an ONNX model loaded before (to fail early on a bad one) is reused, not loaded again:
    with one intra-op thread, ONNX Runtime runs on the calling thread and survives the fork.
    """
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            options = {"bind": f"{host}:{port}", "workers": 1, "worker_class": "gthread"}
            options |= {"threads": threads, "timeout": 300, "graceful_timeout": 5}
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return create_app(config, model)

    print(f"ferkit serving on http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    Server().run()
