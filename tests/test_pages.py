"""What the pages and the server's edges promise, checked with Flask's client: colours shared
by boxes, pages and chart; the icon; clear error replies; a request id on every log line;
and the Makefile that brings everything the suite needs."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from assets import ROOT

from ferkit.labels import COLORS, EMOTIONS, hex_colors
from ferkit.web import create_app, logs

LIMIT = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return create_app(
        {"DATA_DIR": str(tmp_path_factory.mktemp("data")), "MAX_CONTENT_LENGTH": LIMIT}
    )


@pytest.fixture()
def client(app):
    return app.test_client()


def test_pages_carry_the_box_colours_and_the_upload_limit(client):
    html = client.get("/image").get_data(as_text=True)
    colors = json.loads(re.search(r'data-colors="([^"]*)"', html)[1].replace("&#34;", '"'))
    assert colors == hex_colors() and colors["happy"] == "#f0c828"  # yellow, as on the boxes
    assert f'data-max-bytes="{LIMIT}"' in html and "up to 2 MB" in html


def test_a_photo_has_its_own_smaller_cap(tmp_path):
    """A photo is read whole into memory, a video never: the photo page and the API hold
    photos to MAX_IMAGE_BYTES while videos may reach the upload cap."""
    app = create_app({"DATA_DIR": str(tmp_path), "MAX_IMAGE_BYTES": LIMIT // 2})
    client = app.test_client()
    photo_page = client.get("/image").get_data(as_text=True)
    video_page = client.get("/video").get_data(as_text=True)
    assert f'data-max-bytes="{LIMIT // 2}"' in photo_page and "up to 1 MB" in photo_page
    assert 'data-max-bytes="104857600"' in video_page and "up to 100 MB" in video_page
    body = b"\xff\xd8\xff" + bytes(LIMIT // 2)  # one cap's worth and 3 bytes over it
    reply = client.post("/api/predict", data={"image": (io.BytesIO(body), "big.jpg")})
    assert reply.status_code == 413
    assert reply.get_json()["error"] == "the image is larger than the server's limit of 1 MB"
    at_cap = b"\xff\xd8\xff" + bytes(LIMIT // 2 - 3)  # at the cap: read, then refused as junk
    reply = client.post("/api/predict", data=at_cap, content_type="image/jpeg")
    assert reply.status_code == 400 and "JPEG" in reply.get_json()["error"]


def test_chart_lines_have_the_box_colours(tmp_path, monkeypatch):
    from ferkit import plots

    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, path: drawn.setdefault("fig", fig))
    plots.emotions_over_time(np.arange(5.0), np.full((5, 7), 1 / 7), tmp_path / "c.png")
    lines = drawn["fig"].axes[0].get_lines()
    expected = {name: "#{:02x}{:02x}{:02x}".format(*reversed(COLORS[name])) for name in EMOTIONS}
    assert {line.get_label(): line.get_color() for line in lines} == expected
    fig = drawn["fig"]  # readable on a 390 px phone: at most 700 px wide, 14 pt text
    assert fig.get_figwidth() * 100 <= 700
    ax = fig.axes[0]
    assert min(t.get_fontsize() for t in ax.get_legend().get_texts()) >= 14
    assert min(t.get_fontsize() for t in ax.get_xticklabels()) >= 14


def test_chart_without_faces_says_so(tmp_path, monkeypatch):
    from ferkit import plots

    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, path: drawn.setdefault("fig", fig))
    plots.emotions_over_time(np.arange(3.0), np.full((3, 7), np.nan), tmp_path / "c.png")
    ax = drawn["fig"].axes[0]
    assert ax.get_ylim() == (0, 1) and [t.get_text() for t in ax.texts] == ["no faces found"]


def test_favicon(client):
    reply = client.get("/favicon.ico", follow_redirects=True)
    assert reply.status_code == 200 and reply.mimetype == "image/svg+xml"
    assert 'rel="icon"' in client.get("/").get_data(as_text=True)


def test_a_mistyped_address_is_a_page_for_browsers_and_json_for_the_api(client):
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    reply = client.get("/imag", headers=browser)
    assert reply.status_code == 404 and reply.mimetype == "text/html"
    page = reply.get_data(as_text=True)
    assert "no page at <code>/imag</code>" in page and 'href="/image"' in page  # a way on
    for path, headers in [("/imag", {}), ("/api/nope", browser), ("/static/x.js", browser)]:
        reply = client.get(path, headers=headers)
        assert reply.status_code == 404 and reply.is_json, path


def test_user_errors_are_400_json_without_repeated_words(client):
    ok, png = cv2.imencode(".png", np.zeros((7000, 7000), np.uint8))  # 49 MP, 50 KB
    reply = client.post("/api/predict", data={"image": (io.BytesIO(png.tobytes()), "big.png")})
    error = reply.get_json()["error"]
    assert reply.status_code == 400 and "too large" in error and "7000x7000" in error
    words = re.findall(r"[a-z]+", error.lower())
    assert all(a != b for a, b in zip(words, words[1:], strict=False)), error


def test_too_large_upload_names_the_limit(client):
    body = b"\xff\xd8\xff" + bytes(LIMIT + 10)
    reply = client.post("/api/predict", data=body, content_type="image/jpeg")
    assert reply.status_code == 413 and "limit of 2 MB" in reply.get_json()["error"]


def test_log_lines_carry_the_request_id(app, client):
    stream = io.StringIO()
    handler = logs.setup(stream, logging.INFO)
    try:
        reply = client.post("/api/predict", data=b"\xff\xd8\xff junk", content_type="image/jpeg")
        request_id = reply.headers["X-Request-Id"]
        client.get("/api/health", headers={"X-Request-Id": "bad id] forged line"})
    finally:
        logging.getLogger("ferkit").removeHandler(handler)
    lines = stream.getvalue().splitlines()
    ours = [line for line in lines if f"[{request_id}]" in line]
    assert any("refused: upload: corrupt" in line for line in ours), lines
    assert any("POST /api/predict -> 400" in line for line in ours), lines
    assert not any("forged line" in line for line in lines)  # an odd header is replaced
    assert all(re.search(r" \[[A-Za-z0-9._-]+\] ", line) for line in lines), lines


def make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=60
    )


def test_make_install_brings_chromium_or_says_what_to_run(tmp_path):
    missing = str(tmp_path / "no-chromium")
    as_root = make("-n", "system", f"CHROMIUM={missing}", "AS_ROOT=yes")
    assert as_root.returncode == 0 and "apt-get install -y -qq chromium" in as_root.stdout
    as_user = make("-s", "system", f"CHROMIUM={missing}", "AS_ROOT=")
    assert as_user.returncode == 0 and as_user.stdout == ""
    assert as_user.stderr.strip().count("\n") == 0  # one line
    assert "run 'sudo apt-get install -y chromium'" in as_user.stderr
    present = make("-n", "system", "CHROMIUM=/bin/sh", "AS_ROOT=yes")
    assert "apt-get" not in present.stdout
    assert "install: system $(STAMP)" in (ROOT / "Makefile").read_text()
    stamp = tmp_path / "installed"  # newer than pyproject.toml: nothing to install
    stamp.touch()
    no_browser = make("-s", "test", f"CHROMIUM={missing}", "AS_ROOT=", f"STAMP={stamp}")
    assert (
        no_browser.returncode != 0 and "error: the browser tests need Chromium" in no_browser.stderr
    )


def test_ci_is_a_thin_call_of_make_test():
    commands = [
        line
        for line in Path(ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith("set ")
    ]
    assert commands == ["exec make test"]


def test_a_video_job_logs_under_its_id(app, client, astronaut_video):
    stream = io.StringIO()
    handler = logs.setup(stream, logging.INFO)
    try:
        video = astronaut_video.read_bytes()
        reply = client.post("/api/videos", data={"video": (io.BytesIO(video), "a.mp4")})
        job_id = reply.get_json()["id"]
        assert app.extensions["ferkit.jobs"].get(job_id).finished.wait(30)
    finally:
        logging.getLogger("ferkit").removeHandler(handler)
    lines = stream.getvalue().splitlines()
    request_id = reply.headers["X-Request-Id"]
    assert any(f"[{request_id}]" in line and f"queued as job-{job_id}" in line for line in lines)
    job_lines = [line for line in lines if f"[job-{job_id}]" in line]
    assert len(job_lines) == 2 and job_lines[1].endswith("done"), lines


def test_min_detection_comes_from_the_config(client, tmp_path, astronaut):
    """The app's MIN_DETECTION (`ferkit serve --min-detection`) filters its replies; each
    face says how sure the detector is and whether that is doubtful."""
    photo = cv2.imencode(".jpg", astronaut)[1].tobytes()
    (face,) = client.post("/api/predict", data=photo).get_json()["faces"]
    assert face["detection"] > 0.5 and face["doubtful"] is False
    strict = create_app({"DATA_DIR": str(tmp_path), "MIN_DETECTION": 0.99})
    assert strict.test_client().post("/api/predict", data=photo).get_json()["faces"] == []
