"""The HTML pages: live camera, server stream, image and video upload."""

from flask import Blueprint, render_template

from ferkit.labels import EMOTIONS

bp = Blueprint("pages", __name__)
PAGES = [
    ("pages.live", "Live camera"),
    ("pages.stream", "Server stream"),
    ("pages.image", "Image"),
    ("pages.video", "Video"),
]


@bp.app_context_processor
def navigation():
    return {"pages": PAGES, "emotions": EMOTIONS}


@bp.get("/")
def live():
    return render_template("live.html")


@bp.get("/stream")
def stream():
    return render_template("stream.html")


@bp.get("/image")
def image():
    return render_template("image.html")


@bp.get("/video")
def video():
    return render_template("video.html")
