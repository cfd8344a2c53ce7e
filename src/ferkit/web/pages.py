"""The HTML pages: live camera, server stream, image and video upload.

Each page is a template of the same name; this one table gives both the routes and the
navigation bar (a full label, and a short one that fits a phone's width).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from flask import Blueprint, current_app, redirect, render_template, url_for

from ferkit.labels import hex_colors
from ferkit.web.config import upload_caps, upload_limit_mb

if TYPE_CHECKING:
    from werkzeug.wrappers import Response

bp = Blueprint("pages", __name__)
PAGES = [  # (URL, template and endpoint name, navigation label, short label)
    ("/", "live", "Live camera", "Live"),
    ("/stream", "stream", "Server stream", "Stream"),
    ("/image", "image", "Image", "Image"),
    ("/video", "video", "Video", "Video"),
]

for url, name, _, _ in PAGES:
    bp.add_url_rule(url, name, partial(render_template, f"{name}.html"), methods=["GET"])


@bp.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for this path whatever the page links; answer with the page icon."""
    return redirect(url_for("static", filename="favicon.svg"), 301)


@bp.app_context_processor
def page_context() -> dict:
    """What every template may use: the navigation, the emotion colours (the same as the
    boxes drawn by the server and the chart), and the upload limits checked before sending."""
    return {
        "pages": [(f"pages.{name}", label, short) for _, name, label, short in PAGES],
        "colors": hex_colors(),
        "upload_caps": {
            field: (cap, upload_limit_mb(cap))
            for field, cap in upload_caps(current_app.config).items()
        },
    }
