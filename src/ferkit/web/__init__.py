"""The Flask app: the application factory (`create_app`), blueprints, one shared recognition
pipeline, and its orderly stop (`shutdown`). The settings and their defaults are in
`ferkit.web.config`; running it under gunicorn is `ferkit.web.serve`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ferkit.errors import FerkitError
from ferkit.web.config import DEFAULTS, default_data_dir, too_large_message

if TYPE_CHECKING:
    from ferkit.model.recognizer import FacialExpressionModel

log = logging.getLogger("ferkit.web")


def create_app(config: dict | None = None, model: FacialExpressionModel | None = None) -> Flask:
    """The app; `model` (a loaded FacialExpressionModel) saves loading the configured one."""
    from ferkit.model.recognizer import FacialExpressionModel
    from ferkit.vision.pipeline import Pipeline
    from ferkit.web import api, live, logs, mjpeg, pages
    from ferkit.web.slots import LiveSlots
    from ferkit.web.uploads import VideoJobQueue

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
    jobs = VideoJobQueue(
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
        if err.description != RequestEntityTooLarge.description:  # a view's own (an image)
            return jsonify(error=err.description), 413
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


def shutdown(app: Flask | None) -> None:
    """Stop in order: the capture thread, the video jobs (files deleted unless KEEP_DATA),
    then the model's sessions, so no thread runs inference while they are freed."""
    if app is None or "ferkit.jobs" not in app.extensions:
        return
    app.extensions["ferkit.stream"].stop()
    app.extensions.pop("ferkit.jobs").shutdown(keep=app.config["KEEP_DATA"])
    app.extensions.pop("ferkit.pipeline")
