"""The pages in a real headless Chromium against a real server on loopback."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from assets import CHROMIUM, astronaut_frames, start_server, write_y4m
from playwright.sync_api import expect, sync_playwright

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def server():
    proc, port = start_server()
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def playwright():
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright, tmp_path_factory, astronaut):
    clip = write_y4m(tmp_path_factory.mktemp("cam") / "cam.y4m", astronaut_frames(astronaut, 30))
    args = [
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={clip}",
    ]  # fmt: skip
    ARTIFACTS.mkdir(exist_ok=True)
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
    yield browser
    browser.close()


def test_live_websocket_protocol(server, astronaut):
    import json

    from simple_websocket import Client

    ws = Client.connect(server.replace("http", "ws") + "/ws/live")
    ws.send(cv2.imencode(".jpg", astronaut)[1].tobytes())
    reply = json.loads(ws.receive(timeout=10))
    assert reply["faces"][0]["emotion"] == "happy" and reply["width"] == 512
    ws.send("hello")
    assert "binary JPEG" in json.loads(ws.receive(timeout=10))["error"]
    ws.send(b"\xff\xd8\xff garbage")
    assert "corrupt" in json.loads(ws.receive(timeout=10))["error"]
    ws.send(cv2.imencode(".jpg", astronaut)[1].tobytes())  # still serving after bad frames
    assert json.loads(ws.receive(timeout=10))["faces"]
    ws.close()


def test_live_page_shows_a_labelled_box(server, browser):
    page = browser.new_page()
    page.goto(server + "/")
    expect(page.locator("#status")).to_have_text("Live", timeout=10_000)
    expect(page.locator(".face-scores").first).to_contain_text("face 1", timeout=3_000)
    expect(page.locator("#rtt")).not_to_have_text("-")
    page.screenshot(path=str(ARTIFACTS / "live.png"))
    pixels = np.frombuffer(page.locator("#overlay").screenshot(), np.uint8)
    assert pixels.size > 0
    page.close()


def test_image_upload_shows_scores(server, browser, tmp_path, astronaut):
    path = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(path), astronaut)
    page = browser.new_page()
    page.goto(server + "/image")
    page.set_input_files("#file", str(path))
    expect(page.locator("tr.face")).to_have_count(1, timeout=10_000)
    expect(page.locator("tr.face td").nth(1)).to_have_text("happy")
    expect(page.locator("#status")).to_have_text("1 face(s) found")
    page.screenshot(path=str(ARTIFACTS / "image.png"), full_page=True)
    page.close()


def test_video_upload_plays_the_result(server, browser, astronaut_video):
    page = browser.new_page()
    page.goto(server + "/video")
    page.set_input_files("#file", str(astronaut_video))
    expect(page.locator("#result")).to_be_visible(timeout=60_000)
    expect(page.locator("#status")).to_have_text("Done: 45 frames")
    assert "?job=" in page.url
    page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=10_000)
    page.reload()  # the job survives a reload
    expect(page.locator("#result")).to_be_visible(timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "video.png"), full_page=True)
    page.close()


def test_live_page_without_camera_says_so(server, playwright):
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True
    )
    page = browser.new_page()
    page.goto(server + "/")
    expect(page.locator("#status")).to_contain_text("camera", timeout=10_000)
    expect(page.locator("#status")).not_to_have_text("Live")
    browser.close()
