"""REST API: predict on an image, video jobs, health. Errors are JSON with a 4xx code."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import IO, TYPE_CHECKING

from flask import Blueprint, abort, current_app, jsonify, request, send_file

from ferkit.media.images import SNIFF_BYTES, decoded, sniff
from ferkit.vision.result import ImageResult
from ferkit.web.config import too_large_message, upload_caps
from ferkit.web.slots import client_address
from ferkit.web.uploads import QueueFull

if TYPE_CHECKING:
    from flask import Response

bp = Blueprint("api", __name__, url_prefix="/api")
log = logging.getLogger(__name__)


ACCEPTED = {
    "image": "a JPEG, PNG, GIF, BMP, WebP or TIFF file",
    "video": "an MP4, MOV, WebM, AVI or Ogg file",
}


@bp.before_request
def _bounded_body() -> None:
    """Enforce the upload cap on the bytes read when no Content-Length says it (chunked):
    read one byte past the cap, answer 413 if it came, so nothing cut short is processed.
    (Behind `ferkit serve` the server's front already did; this covers any other server.)"""
    if request.content_length is not None or request.method != "POST":
        return
    cap = current_app.config["MAX_CONTENT_LENGTH"]
    body = request.environ["wsgi.input"].read(cap + 1)
    if len(body) > cap:
        abort(413)  # the app's 413 handler says the limit
    request.environ["wsgi.input"] = io.BytesIO(body)
    request.environ["CONTENT_LENGTH"] = str(len(body))


def _body(kind: str) -> IO[bytes]:
    """The multipart field named `kind`, or the raw body, as a stream (werkzeug keeps a large
    multipart file on disk, and the server's front a large body)."""
    if request.mimetype == "multipart/form-data":
        if kind in request.form:  # sent as text: no filename in its Content-Disposition
            abort(400, f"the multipart field '{kind}' is text, not a file (curl -F {kind}=@FILE)")
        if kind not in request.files:  # werkzeug drops a part it cannot decode, silently
            unread = "" if request.files or request.form else " (no part could be read)"
            abort(400, f"expected the multipart field '{kind}'{unread}")
        return request.files[kind].stream
    return request.stream


def _sent_name(kind: str, default: str = "upload") -> str:
    """The multipart file's name as the client sent it, for messages and a video's summary
    ("clip.mp4: corrupt..."): its last part, printable characters only; `default` for a raw
    body or a part without a name."""
    upload = request.files.get(kind) if request.mimetype == "multipart/form-data" else None
    name = (upload.filename or "") if upload is not None else ""
    name = name.rpartition("/")[2]  # a client may send a path: the server's business is none
    return "".join(c for c in name if c.isprintable())[:255] or default


def _upload_name(kind: str) -> str:
    """The multipart file's name without its extension, safe in a header and a file name;
    `kind` ("video") for a raw body or a name with nothing usable."""
    stem = Path(_sent_name(kind, "")).stem
    return re.sub(r"[^\w.-]+", "_", stem).strip("._")[:60] or kind


def _check_kind(kind: str, head: bytes) -> None:
    """400 for nothing sent, 415 when the first bytes are not of that kind (naming the file
    as it was sent)."""
    if not head:
        abort(400, f"no {kind}: send the multipart field '{kind}' or the file as the body")
    if sniff(head) != kind:
        article = "an" if kind == "image" else "a"
        abort(415, f"{_sent_name(kind)}: not {article} {kind}: send {ACCEPTED[kind]}")


def _image_upload() -> bytes:
    """The image in memory (it is decoded there anyway), at most its cap: one byte more is
    read to tell a file over the cap (413) from one at it. Checked by content."""
    cap = upload_caps(current_app.config)["image"]
    data = _body("image").read(cap + 1)
    if len(data) > cap:
        abort(413, too_large_message(cap, "image"))
    _check_kind("image", data)
    return data


def _jobs():
    return current_app.extensions["ferkit.jobs"]


@bp.get("/health")
def health() -> Response:
    pipeline = current_app.extensions["ferkit.pipeline"]
    return jsonify(status="ok", engine=pipeline.model.engine)


@bp.post("/predict")
def predict() -> Response:
    image_data = _image_upload()  # a FerkitError is a 400 (create_app), naming the file
    with decoded(image_data, _sent_name("image")) as image:
        faces = current_app.extensions["ferkit.pipeline"](image)
    return jsonify(ImageResult.of(image, faces).to_dict())


@bp.post("/videos")
def create_video_job() -> tuple[Response, int]:
    body = _body("video")  # copied to the job's folder, never whole in memory
    head = body.read(SNIFF_BYTES)
    _check_kind("video", head)
    try:
        job = _jobs().submit(
            head, body, client_address(), _upload_name("video"), _sent_name("video")
        )
    except QueueFull as err:
        abort(429, str(err))
    log.info("queued as job-%s", job.id)
    return jsonify(job.to_dict()), 202


@bp.get("/videos/<job_id>")
def video_job(job_id: str) -> Response:
    job = _jobs().get(job_id)
    if job is None:
        abort(404, "no such job (it may have expired)")
    return jsonify(job.to_dict())


@bp.delete("/videos/<job_id>")
def delete_video_job(job_id: str) -> Response:
    """Cancel the job (a running one stops at its next frame) and delete its files."""
    if not _jobs().delete(job_id):
        abort(404, "no such job (it may have expired)")
    return jsonify(id=job_id, status="deleted")


@bp.get("/videos/<job_id>/<name>")
def video_file(job_id: str, name: str) -> Response:
    job = _jobs().get(job_id)
    path = job.output(name) if job else None
    if path is None:
        abort(404, "no such file")
    return send_file(path, conditional=True, download_name=f"{job.name}-{name}")
