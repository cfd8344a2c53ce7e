"""The pages in a real headless Chromium against a real server on loopback, at a desktop
(1280x800) and a phone (390x844) size. Each test writes screenshots of what it checked to
test-artifacts/ (<page>-<size>.png), to be looked at as a user would."""

import base64
import json
import re
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
from assets import (
    CHROMIUM,
    astronaut_frames,
    group_photo,
    paste_faces,
    start_server,
    stop_server,
    three_faces,
    wait_for,
    write_video,
    write_y4m,
)
from playwright.sync_api import expect, sync_playwright

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
LIMIT_MB = 3  # the test server's upload limit


@pytest.fixture(scope="module")
def server():
    proc, port = start_server("--max-upload-mb", str(LIMIT_MB))
    yield f"http://127.0.0.1:{port}"
    stop_server(proc)


@pytest.fixture(scope="module")
def playwright():
    with sync_playwright() as p:
        yield p


BROWSER_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser(playwright, tmp_path_factory, astronaut):
    clip = write_y4m(tmp_path_factory.mktemp("cam") / "cam.y4m", astronaut_frames(astronaut, 30))
    args = BROWSER_ARGS + [
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={clip}",
    ]  # fmt: skip
    ARTIFACTS.mkdir(exist_ok=True)
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def no_camera_browser(playwright):
    """A browser whose camera permission is refused, as when a user clicks 'Block'."""
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[*BROWSER_ARGS, "--use-fake-device-for-media-stream", "--deny-permission-prompts"],
        headless=True,
    )
    yield browser
    browser.close()


class Page:
    """A page at one size that records failed responses, script errors and POSTs."""

    def __init__(self, browser, size: str):
        width, height = SIZES[size]
        self.size, self.width = size, width
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.failed, self.errors, self.posts = [], [], []
        self.page.on(
            "response", lambda r: r.status >= 400 and self.failed.append((r.status, r.url))
        )
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: r.method == "POST" and self.posts.append(r.url))

    def assert_fits(self) -> None:
        """No sideways scrolling, and the navigation on one line."""
        scroll = self.page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= self.width, f"{self.size}: the page is {scroll} px wide"
        tops = self.page.eval_on_selector_all("nav a", "links => links.map(a => a.offsetTop)")
        assert len(tops) == 4 and len(set(tops)) == 1, tops
        header = self.page.eval_on_selector("header", "h => h.getBoundingClientRect().height")
        assert header < 70

    def labels(self, canvas: str = "#overlay") -> dict:
        return json.loads(self.page.get_attribute(canvas, "data-labels") or "{}")

    def assert_labels_readable(self, n: int) -> list[str]:
        """`n` labels, each inside the picture at a readable size; their texts."""
        drawn = self.labels()
        assert len(drawn["labels"]) == n, drawn
        for label in drawn["labels"]:
            assert 0 <= label["x"] and label["x"] + label["w"] <= drawn["width"] + 0.5, label
            assert 0 <= label["y"] and label["y"] + label["h"] <= drawn["height"] + 0.5, label
            assert label["h"] >= 20  # 14 px text on screen, whatever the photo's resolution
        for i, a in enumerate(drawn["labels"]):  # none covers another (faces side by side)
            for b in drawn["labels"][i + 1 :]:
                apart_x = a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
                assert apart_x or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"], (a, b)
        return [label["text"] for label in drawn["labels"]]

    def assert_no_face_covered(self) -> None:
        """No label on the canvas covers any face's box (both as drawn, in CSS pixels)."""
        drawn = self.labels()
        for label in drawn["labels"]:
            for box in drawn["faces"]:
                apart_x = label["x"] + label["w"] <= box["x"] or box["x"] + box["w"] <= label["x"]
                apart_y = label["y"] + label["h"] <= box["y"] or box["y"] + box["h"] <= label["y"]
                assert apart_x or apart_y, (self.size, label, box)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{name}-{self.size}.png"), full_page=True)

    def close(self, allowed=()) -> None:
        assert not self.errors, self.errors
        assert [f for f in self.failed if not any(a in f[1] for a in allowed)] == []
        self.page.close()


def test_live_websocket_protocol(server, astronaut):
    from simple_websocket import Client

    ws = Client.connect(server.replace("http", "ws") + "/ws/live")
    for _ in range(5):  # a live face is shown once its track is confirmed, within a few frames
        ws.send(cv2.imencode(".jpg", astronaut)[1].tobytes())
        reply = json.loads(ws.receive(timeout=10))
        if reply["faces"]:
            break
    assert reply["faces"][0]["emotion"] == "happy" and reply["width"] == 512
    ws.send("hello")
    assert "binary JPEG" in json.loads(ws.receive(timeout=10))["error"]
    ws.send(b"\xff\xd8\xff garbage")
    assert "corrupt" in json.loads(ws.receive(timeout=10))["error"]
    ws.send(cv2.imencode(".jpg", astronaut)[1].tobytes())  # still serving after bad frames
    assert json.loads(ws.receive(timeout=10))["faces"]
    ws.close()


def test_live_face_numbers_stay_stable(server, astronaut):
    """The live socket keeps one Stream: a moving, zooming face keeps number 1 throughout."""
    from simple_websocket import Client

    ws = Client.connect(server.replace("http", "ws") + "/ws/live")
    ids = []
    for frame in astronaut_frames(astronaut, 30):
        ws.send(cv2.imencode(".jpg", frame)[1].tobytes())
        ids.append([f["face_id"] for f in json.loads(ws.receive(timeout=10))["faces"]])
    ws.close()
    assert ids[-27:] == [[1]] * 27  # confirmed within 3 frames, then always face 1


@pytest.mark.parametrize("size", SIZES)
def test_live_page_numbers_boxes_and_panels(server, browser, size):
    p = Page(browser, size)
    p.page.goto(server + "/")
    expect(p.page.locator("#status")).to_have_text("Live", timeout=10_000)
    expect(p.page.locator(".face-scores").first).to_contain_text("#1 ", timeout=5_000)
    expect(p.page.locator("#rtt")).not_to_have_text("-")
    p.page.wait_for_function(
        "JSON.parse(document.getElementById('overlay').dataset.labels || '{}').labels?.length > 0"
    )
    texts = p.assert_labels_readable(1)
    assert texts[0].startswith("#1 ")
    assert p.page.locator(".face-scores .score").count() == 7  # a labelled bar per emotion
    p.assert_fits()
    p.shot("live")
    p.close()


def test_live_page_reconnects_when_the_server_restarts(browser):
    proc, port = start_server()
    p = Page(browser, "desktop")
    try:
        p.page.goto(f"http://127.0.0.1:{port}/")
        expect(p.page.locator("#status")).to_have_text("Live", timeout=10_000)
        expect(p.page.locator(".face-scores")).to_have_count(1, timeout=5_000)
        stop_server(proc)
        expect(p.page.locator("#status")).to_contain_text("reconnecting", timeout=10_000)
        expect(p.page.locator("#status")).to_have_class("status error")
        expect(p.page.locator(".face-scores")).to_have_count(0)  # no frozen box
        assert p.labels()["labels"] == []
        proc, _ = start_server(port=port)
        expect(p.page.locator("#status")).to_have_text("Live", timeout=30_000)
        expect(p.page.locator(".face-scores")).to_have_count(1, timeout=5_000)
    finally:
        stop_server(proc)
    p.page.close()


def test_live_page_says_why_a_second_viewer_from_one_address_is_refused(browser):
    proc, port = start_server("--live-per-client", "1")
    first, second = Page(browser, "desktop"), Page(browser, "phone")
    try:
        first.page.goto(f"http://127.0.0.1:{port}/")
        expect(first.page.locator("#status")).to_have_text("Live", timeout=10_000)
        expect(first.page.locator(".face-scores")).to_have_count(1, timeout=5_000)  # served
        second.page.goto(f"http://127.0.0.1:{port}/")
        status = second.page.locator("#status")
        expect(status).to_contain_text(
            "Too many live viewers from your address (1); close one and try again; reconnecting",
            timeout=10_000,
        )
        expect(status).to_have_class("status error")
        second.shot("live-refused")
        first.page.close()  # its slot is free: the second page's retry is served
        expect(status).to_have_text("Live", timeout=30_000)
    finally:
        stop_server(proc)
    second.close()


@pytest.mark.parametrize("size", SIZES)
def test_live_page_without_camera_offers_a_way_forward(server, no_camera_browser, size):
    p = Page(no_camera_browser, size)
    p.page.goto(server + "/")
    status = p.page.locator("#status")
    expect(status).to_contain_text("try again", timeout=10_000)
    expect(status).to_have_class("status error")
    expect(p.page.locator("#stats")).to_be_hidden()  # no "FPS 0 - round trip - ms"
    expect(p.page.locator("#retry")).to_be_visible()
    assert p.page.get_attribute("#help a[href='/image']", "class")
    assert p.page.get_attribute("#help a[href='/video']", "class")
    p.assert_fits()
    p.shot("live-no-camera")
    p.page.click("#retry")
    expect(status).to_have_class("status error", timeout=10_000)
    expect(p.page.locator("#help")).to_be_visible()
    p.close()


@pytest.mark.parametrize("size", SIZES)
def test_stream_page_without_source_says_how_to_start_it(server, browser, size):
    p = Page(browser, size)
    p.page.goto(server + "/stream")
    status = p.page.locator("#status")
    expect(status).to_contain_text("No server stream: cannot open", timeout=15_000)
    expect(status).to_have_class("status error")
    expect(p.page.locator("#feed")).to_be_hidden()  # no broken-image icon
    expect(p.page.locator("#help")).to_contain_text("ferkit serve --source 0")
    p.assert_fits()
    p.shot("stream")
    p.close(allowed=["/video_feed"])  # its 503 is the message shown


def test_stream_page_with_a_source(browser, astronaut_video):
    proc, port = start_server("--source", str(astronaut_video))
    try:
        for size in SIZES:
            p = Page(browser, size)
            p.page.goto(f"http://127.0.0.1:{port}/stream")
            expect(p.page.locator("#status")).to_have_text("Live from the server", timeout=20_000)
            expect(p.page.locator("#help")).to_be_hidden()
            width = p.page.eval_on_selector("#feed", "img => img.getBoundingClientRect().width")
            assert 0 < width <= SIZES[size][0]
            p.assert_fits()
            p.shot("stream-live")
            p.page.close()  # an endless MJPEG response: nothing to check on close
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def photos(tmp_path_factory, astronaut):
    folder = tmp_path_factory.mktemp("photos")
    big = cv2.resize(astronaut, (3000, 3000), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(folder / "big.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 80])
    cv2.imwrite(str(folder / "three.jpg"), three_faces(astronaut))
    row = paste_faces(astronaut, (1200, 400), [(20 + 230 * i, 90, 220) for i in range(5)])
    cv2.imwrite(str(folder / "row.jpg"), row)  # faces side by side: labels must not collide
    strip = paste_faces(astronaut, (950, 210), [(10 + 188 * i, 10, 180) for i in range(5)])
    cv2.imwrite(str(folder / "strip.jpg"), strip)  # no room above or below: numbers only
    cv2.imwrite(str(folder / "group7.jpg"), group_photo(7, (640, 360))[0])  # small: fitted
    cv2.imwrite(str(folder / "group28.jpg"), group_photo(28, (1400, 1000))[0])
    cv2.imwrite(str(folder / "three.tif"), three_faces(astronaut))  # Chromium cannot show TIFF
    cv2.imwrite(str(folder / "wall.png"), np.full((300, 400, 3), 128, np.uint8))
    (folder / "notes.jpg").write_text("not a photo")
    (folder / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(int((LIMIT_MB + 0.5) * 2**20)))
    return folder


@pytest.mark.parametrize("size", SIZES)
def test_image_page(server, browser, photos, size):
    p = Page(browser, size)
    p.page.goto(server + "/image")
    expect(p.page.locator(".hint")).to_be_visible()
    expect(p.page.locator("label.picker")).to_have_text("Choose a photo…")  # not the bare input
    assert p.page.eval_on_selector("#file", "i => getComputedStyle(i).opacity") == "0"
    status, panels = p.page.locator("#status"), p.page.locator(".face-scores")

    p.page.set_input_files("#file", str(photos / "big.jpg"))  # 3000 px, shown at page size
    expect(status).to_have_text("1 face found", timeout=15_000)
    expect(status).to_have_class("status ok")
    expect(panels).to_have_count(1)
    expect(panels.first.locator("strong")).to_contain_text("#1 happy")
    texts = p.assert_labels_readable(1)
    assert panels.first.locator("strong").inner_text() == texts[0]  # the box says which panel
    p.assert_fits()
    p.shot("image")

    p.page.set_input_files("#file", str(photos / "three.jpg"))  # each box names its panel
    expect(status).to_have_text("3 faces found", timeout=15_000)
    texts = p.assert_labels_readable(3)
    assert [t.split()[0] for t in texts] == ["#1", "#2", "#3"]
    assert panels.locator("strong").all_inner_texts() == texts
    p.shot("image-three")

    p.page.set_input_files("#file", str(photos / "row.jpg"))
    expect(status).to_have_text("5 faces found", timeout=15_000)
    p.assert_labels_readable(5)
    p.shot("image-row")
    p.page.set_input_files("#file", str(photos / "strip.jpg"))
    expect(status).to_have_text("5 faces found", timeout=15_000)
    texts = p.assert_labels_readable(5)
    assert [t.split()[0] for t in texts] == ["#1", "#2", "#3", "#4", "#5"]

    p.page.set_input_files("#file", str(photos / "three.tif"))  # read, but not showable
    expect(status).to_contain_text("3 faces found; this browser cannot show", timeout=15_000)
    expect(panels).to_have_count(3)

    p.page.set_input_files("#file", str(photos / "notes.jpg"))  # an error clears the result
    expect(status).to_have_class("status error", timeout=10_000)
    expect(status).to_contain_text("Error: notes.jpg: not an image")
    expect(p.page.locator("#stage")).to_be_hidden()
    expect(panels).to_have_count(0)
    p.shot("image-error")

    posts = len(p.posts)
    p.page.set_input_files("#file", str(photos / "huge.png"))  # refused before sending
    expect(status).to_have_text(f"Error: huge.png is 3.5 MB; the limit is {LIMIT_MB}.0 MB")
    assert len(p.posts) == posts

    p.page.set_input_files("#file", str(photos / "wall.png"))
    expect(status).to_have_text("No face found in this photo.", timeout=10_000)
    expect(status).to_have_class("status info")
    expect(p.page.locator("#faces .empty")).to_contain_text("No face found")

    with overtaken(p.page, "/api/predict", "big.jpg"):  # its reply comes after wall.png's
        p.page.set_input_files("#file", str(photos / "big.jpg"))
        p.page.set_input_files("#file", str(photos / "wall.png"))
        expect(status).to_have_text("No face found in this photo.", timeout=10_000)
    expect(status).to_have_text("No face found in this photo.")  # the file chosen last
    assert p.page.eval_on_selector("#photo", "img => img.naturalWidth") == 400

    photo = base64.b64encode((photos / "three.jpg").read_bytes()).decode()
    p.page.evaluate(  # dropped on the heading, outside the box: analysed, not opened
        """b64 => {
          const file = new File([Uint8Array.from(atob(b64), c => c.charCodeAt(0))], "three.jpg");
          const dataTransfer = new DataTransfer();
          dataTransfer.items.add(file);
          const drop = new DragEvent("drop", { dataTransfer, bubbles: true, cancelable: true });
          window.dropAccepted = !document.querySelector("h1").dispatchEvent(drop);
        }""",
        photo,
    )
    expect(status).to_have_text("3 faces found", timeout=15_000)
    assert p.page.evaluate("window.dropAccepted")  # the browser's default (open it) prevented
    p.close(allowed=["/api/predict"])  # the refused upload


@pytest.mark.parametrize("size", SIZES)
def test_image_page_with_a_crowd(server, browser, photos, size):
    """Group photos: every box carries its number and covers no face, the labels, scores and
    detection confidence are in the panels, one per face in number order; a small photo is
    shown as wide as the page allows."""
    p = Page(browser, size)
    p.page.goto(server + "/image")
    status, panels = p.page.locator("#status"), p.page.locator(".face-scores")
    for name, least in (("group7", 7), ("group28", 26)):
        p.page.set_input_files("#file", str(photos / f"{name}.jpg"))
        expect(status).to_have_text(re.compile(r"\d+ faces found"), timeout=20_000)
        drawn = p.labels()
        n = len(drawn["faces"])
        assert n >= least and drawn["listed"]  # crowded: numbers on the photo
        texts = p.assert_labels_readable(n)
        assert texts == [
            f"#{i + 1}" + ("?" if t.endswith("?") else "") for i, t in enumerate(texts)
        ]
        p.assert_no_face_covered()
        expect(panels).to_have_count(n)
        numbers = panels.evaluate_all("els => els.map(e => Number(e.dataset.face))")
        assert numbers == list(range(1, n + 1))
        for text, panel in zip(texts, panels.all(), strict=True):  # a "?" on both or neither
            heading = panel.locator("strong").inner_text()
            assert heading.startswith(text.rstrip("?") + " ")
            assert heading.endswith("?") == text.endswith("?")
            assert "detected 0." in panel.locator(".detection").inner_text()
        stage = p.page.eval_on_selector("#stage", "s => s.clientWidth")
        shown = p.page.eval_on_selector("#photo", "i => i.getBoundingClientRect().width")
        assert shown >= min(stage, 0.75 * SIZES[size][1] * 640 / 360) - 1 or name == "group28"
        p.assert_fits()
        p.shot(f"image-{name}")
    order = p.page.evaluate(  # a live reply lists tracks in any order: panels by number
        """() => {
          const f = (face_id, e) => ({ face_id, emotion: "happy", detection: e, doubtful: e < 0.5,
            scores: { happy: 0.9, sad: 0.1 } });
          const list = document.createElement("div");
          list.innerHTML = facePanels([f(3, 0.9), f(1, 0.4), f(2, 0.8)], "");
          return [...list.children].map(e => e.querySelector("strong").textContent);
        }"""
    )
    assert order == ["#1 happy 90%?", "#2 happy 90%", "#3 happy 90%"]
    p.close()


@contextmanager
def overtaken(page, path: str, filename: str):
    """Hold the upload of `filename` to `path` until the block is done, then let it go and
    wait until the page has had its reply: a reply that a newer upload overtook."""
    held = []

    def hold(route):
        body = route.request.post_data_buffer or b""
        held.append(route) if f'filename="{filename}"'.encode() in body else route.continue_()

    page.route("**" + path, hold)
    yield
    assert len(held) == 1
    with page.expect_request_finished(lambda r: r.url.endswith(path)):
        held[0].continue_()
    page.unroute("**" + path)
    page.evaluate("() => new Promise(requestAnimationFrame)")  # its reply's handler has run


def record_statuses(page) -> None:
    """Keep every text #status shows, to check the short-lived ones."""
    page.add_init_script(
        """window.statuses = [];
        document.addEventListener("DOMContentLoaded", () => {
          const el = document.getElementById("status");
          new MutationObserver(() => window.statuses.push(el.textContent))
            .observe(el, { childList: true, characterData: true, subtree: true });
        });"""
    )


def test_video_page(server, browser, astronaut_video, tmp_path):
    p = Page(browser, "desktop")
    record_statuses(p.page)
    p.page.goto(server + "/video")
    expect(p.page.locator(".hint")).to_be_visible()
    status = p.page.locator("#status")
    p.page.set_input_files("#file", str(astronaut_video))
    expect(p.page.locator("#result")).to_be_visible(timeout=60_000)
    expect(status).to_have_text("Done: 45 frames, 1 face")
    expect(p.page.locator("#progress")).to_be_hidden()
    expect(p.page.locator("tr.face td").first).to_have_text("#1")
    statuses = p.page.evaluate("window.statuses")
    assert any(s.startswith("Uploading astronaut.mp4… ") for s in statuses), statuses
    assert any(s.startswith("Processing… ") for s in statuses), statuses
    assert "?job=" in p.page.url
    with p.page.expect_download() as download:  # named after the upload, not frames.csv
        p.page.click("#csv")
    assert download.value.suggested_filename == "astronaut-frames.csv"  # ferkit's name
    assert Path(download.value.path()).read_text().startswith("frame,time_s,face_id")
    p.page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=10_000)
    job_url = p.page.url
    job_api = server + "/api/videos/" + job_url.split("?job=")[1]

    for size in SIZES:  # the finished job, after a reload, at both sizes
        q = Page(browser, size)
        q.page.goto(job_url)
        expect(q.page.locator("#result")).to_be_visible(timeout=10_000)
        q.page.wait_for_function("document.getElementById('chart').naturalWidth > 0")
        q.assert_fits()
        q.shot("video")
        q.close()

    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    p.page.set_input_files("#file", str(bad))  # the last result goes, the error shows
    expect(status).to_have_class("status error", timeout=10_000)
    expect(p.page.locator("#result")).to_be_hidden()
    expect(p.page.locator("#progress")).to_be_hidden()
    assert "?job=" not in p.page.url
    wait_for(
        lambda: p.page.request.get(job_api).status == 404, 10, "the job's deletion"
    )  # deleted on the server too

    blank = write_video(tmp_path / "blank.mp4", (np.full((120, 160, 3), 40, np.uint8),) * 10)
    p.page.set_input_files("#file", str(blank))
    expect(status).to_have_text("Done: 10 frames, no faces found", timeout=30_000)
    expect(p.page.locator("#chart")).to_be_hidden()  # not an empty chart
    expect(p.page.locator("#summary")).to_contain_text("No faces found")

    jobs = []  # the upload a newer one overtook: its job is deleted, the page shows the newer
    p.page.on("response", lambda r: r.url.endswith("/api/videos") and jobs.append(r))
    with overtaken(p.page, "/api/videos", "astronaut.mp4"):
        p.page.set_input_files("#file", str(astronaut_video))
        p.page.set_input_files("#file", str(blank))
        expect(status).to_have_text("Done: 10 frames, no faces found", timeout=30_000)
    ids = {b"astronaut.mp4" in r.request.post_data_buffer: r.json()["id"] for r in jobs}
    wait_for(lambda: p.page.request.get(f"{server}/api/videos/{ids[True]}").status == 404, 10)
    expect(status).to_have_text("Done: 10 frames, no faces found")
    assert p.page.url.endswith(f"?job={ids[False]}")
    p.close(allowed=["/api/videos"])  # the refused upload


@pytest.mark.parametrize("path", ["/", "/stream", "/image", "/video"])
def test_every_page_has_an_icon_and_fits_a_phone(server, browser, path):
    p = Page(browser, "phone")
    p.page.goto(server + path)
    p.page.wait_for_load_state("networkidle") if path != "/stream" else None
    icon = p.page.evaluate("fetch('/favicon.ico').then(r => [r.status, r.url])")
    assert icon[0] == 200 and icon[1].endswith("favicon.svg")
    p.assert_fits()
    p.close(allowed=["/video_feed"])
