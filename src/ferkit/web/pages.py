"""The HTML pages: live camera, server stream, image and video upload.

Each page is a template of the same name; this one table gives both the routes and the
navigation bar.
"""

from functools import partial

from flask import Blueprint, render_template

bp = Blueprint("pages", __name__)
PAGES = [  # (URL, template and endpoint name, navigation label)
    ("/", "live", "Live camera"),
    ("/stream", "stream", "Server stream"),
    ("/image", "image", "Image"),
    ("/video", "video", "Video"),
]

for url, name, _ in PAGES:
    bp.add_url_rule(url, name, partial(render_template, f"{name}.html"), methods=["GET"])


@bp.app_context_processor
def navigation() -> dict:
    return {"pages": [(f"pages.{name}", label) for _, name, label in PAGES]}
