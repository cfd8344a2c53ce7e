"""Hostile clients and faults against a real `ferkit serve` on loopback: idle and slow
sockets, decompression bombs, uploads over the cap, phone photos, kill -9, DELETE, SIGTERM.

Counts and waits are bounded; waits poll a condition against a deadline.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from fractions import Fraction
from pathlib import Path
from unittest import mock

import assets
import av
import cv2
import numpy as np
import psutil
import pytest
from assets import wait_for
from simple_websocket import Client, ConnectionClosed
from wsproto.events import CloseConnection, TextMessage

from ferkit.cli import main as ferkit
from ferkit.errors import FerkitError
from ferkit.media.images import decode_image
from ferkit.training import data
from ferkit.web import create_app, shutdown


def call(
    port: int,
    method: str,
    path: str,
    body=None,
    headers=None,
    timeout: float = 30,
    source: str | None = None,
):
    """(status, parsed JSON) of one request, from loopback address `source` if given."""
    address = (source, 0) if source else None
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=address)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    return response.status, json.loads(data) if data else None


def health_within(port: int, seconds: float) -> bool:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=seconds) as r:
            return r.status == 200 and time.perf_counter() - started < seconds
    except OSError:
        return False


def live_from(port: int, source: str = "127.0.0.1", serve: bool = False) -> Client:
    """A live-camera socket from a loopback address (127.0.0.2, ...: another client). With
    `serve`, one frame is sent and answered first: the server took a slot for it (a socket's
    handshake is answered before its handler runs, so the order of slots is not the order
    of connections)."""

    class Bound(socket.socket):
        def connect(self, address):
            self.bind((source, 0))
            super().connect(address)

    with mock.patch("simple_websocket.ws.socket.socket", Bound):
        ws = Client.connect(f"ws://127.0.0.1:{port}/ws/live")
    if serve:
        ws.send(jpeg(assets.one_face()))
        assert "faces" in json.loads(ws.receive(timeout=10))
    return ws


def refusal(ws: Client) -> tuple[str, int]:
    """The error a refused live socket is sent, and its close code. A refusal right after the
    handshake can reach simple_websocket's client in the same read as the handshake's answer,
    and the client then leaves it unread in its protocol buffer: read it from there too."""
    try:
        reply = ws.receive(timeout=5)
    except ConnectionClosed:
        reply = None
    wait_for(lambda: not ws.connected, 5, "the refused socket to close")
    code = ws.close_reason
    for event in ws.ws.events():
        if isinstance(event, TextMessage) and reply is None:
            reply = event.data
        elif isinstance(event, CloseConnection):
            code = event.code
    return json.loads(reply)["error"], code


def files_under(folder: Path) -> list[Path]:
    """Every file a server left, its lock file aside."""
    return [p for p in folder.rglob("*") if p.is_file() and p.name != ".lock"]


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image)[1].tobytes()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the tests that leave it running: few threads, so holding them shows."""
    data = tmp_path_factory.mktemp("data")
    proc, port = assets.start_server(
        "--threads", "20", "--live-max", "3", "--live-idle", "2", "--data-dir", str(data)
    )
    wait_for(lambda: health_within(port, 1), 60, "the server")
    yield port, data
    assets.stop_server(proc)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """A clip that takes several seconds to process (the job is running when we act)."""
    frames = list(assets.astronaut_frames(assets.astronaut(), 30))
    path = tmp_path_factory.mktemp("video") / "long.mp4"
    return assets.write_video(path, frames * 5)


def test_slow_clients_hold_no_thread(server):
    port, _ = server
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]  # 2x threads
    try:
        for s in socks:
            s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab")
        for _ in range(2):  # keep dripping, as slowloris does
            for s in socks:
                s.sendall(b"c")
            assert health_within(port, 1)
        status, body = call(port, "POST", "/api/predict", jpeg(assets.one_face()))
        assert status == 200 and body["faces"]
    finally:
        for s in socks:
            s.close()


def test_live_sockets_are_capped_and_idle_ones_closed(server):
    port, _ = server
    idle = [live_from(port, serve=True) for _ in range(3)]  # the cap, then no frame
    try:
        error, code = refusal(Client.connect(f"ws://127.0.0.1:{port}/ws/live"))
        assert "busy" in error and code == 1013  # try again later
        assert health_within(port, 1)
        for ws in idle:  # --live-idle 2: each is told why and closed
            assert "no frame" in json.loads(ws.receive(timeout=10))["error"]
            wait_for(lambda ws=ws: not ws.connected, 5, "the idle socket to close")
        live = Client.connect(f"ws://127.0.0.1:{port}/ws/live")  # a slot is free again
        live.send(jpeg(assets.one_face()))
        reply = json.loads(live.receive(timeout=10))
        assert "faces" in reply and reply["width"] == 640  # served (faces count after 3 frames)
        live.close()
    finally:
        for ws in idle:
            if ws.connected:
                ws.close()


def test_one_address_gets_a_share_of_live_slots_and_video_jobs(tmp_path, long_video):
    """--live-per-client and --jobs-per-client: a client that opens viewers or sends
    videos in a loop fills its own share and is told so (429), others are still served."""
    proc, port = assets.start_server(
        "--live-max", "3", "--live-per-client", "2", "--jobs-per-client", "1",
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    sockets = []
    try:
        wait_for(lambda: health_within(port, 1), 60, "the server")
        sockets = [live_from(port, serve=True) for _ in range(2)] + [live_from(port)]
        assert refusal(sockets[2]) == (
            "too many live viewers from your address (2); close one and try again",
            1013,
        )
        sockets.append(live_from(port, "127.0.0.2", serve=True))  # another client: served
        sockets.append(live_from(port, "127.0.0.3"))  # all 3 slots held: busy for everyone
        assert refusal(sockets[-1])[0].startswith("server busy")

        video = long_video.read_bytes()
        status, first = call(port, "POST", "/api/videos", video, source="127.0.0.1")
        assert status == 202
        status, body = call(port, "POST", "/api/videos", video, source="127.0.0.1")
        assert status == 429 and body["error"].startswith("you have 1 video jobs in progress")
        assert call(port, "GET", f"/api/videos/{first['id']}")[1]["status"] != "done"
        status, second = call(port, "POST", "/api/videos", video, source="127.0.0.2")
        assert status == 202
        for job in (first, second):
            assert call(port, "DELETE", f"/api/videos/{job['id']}")[0] == 200
        status, _ = call(port, "POST", "/api/videos", video, source="127.0.0.1")
        assert status == 202  # its job deleted, the address has its share again
    finally:
        for ws in sockets:
            if ws.connected:
                ws.close()
        assets.stop_server(proc)


def test_raw_idle_handshakes_do_not_block_health(server):
    """Sockets that complete the WebSocket handshake and never answer anything."""
    port, _ = server
    socks = []
    for _ in range(10):
        s = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(
            b"GET /ws/live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        socks.append(s)
    try:
        assert health_within(port, 1)
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize(
    "make, kind, message",
    [
        (assets.tile_bomb_tiff, "image/tiff", "TIFF tile too large"),
        (assets.png16_rgba, "image/png", "too large to decode"),
    ],
)
def test_decompression_bombs_refused_before_decoding(server, make, kind, message):
    port, _ = server
    data = make()
    assert len(data) < 400_000
    started = time.perf_counter()
    status, body = call(port, "POST", "/api/predict", data, {"Content-Type": kind})
    assert status == 400 and message in body["error"] and " at 0x" not in body["error"]
    assert time.perf_counter() - started < 5
    ws = Client.connect(f"ws://127.0.0.1:{port}/ws/live")
    ws.send(data)
    assert message in json.loads(ws.receive(timeout=10))["error"]
    ws.close()


@pytest.mark.parametrize("path, kind", [("/api/predict", "image/jpeg"), ("/api/videos", "")])
def test_chunked_upload_over_the_cap_is_413_and_nothing_stored(server, astronaut_video, path, kind):
    port, data_dir = server
    head = jpeg(assets.one_face()) if kind else astronaut_video.read_bytes()

    def body():
        yield head
        for _ in range(101):  # 101 MB more: over the 100 MB cap
            yield bytes(1 << 20)

    headers = {"Content-Type": kind or "video/mp4"}
    status, reply = call(port, "POST", path, body(), headers)  # http.client sends it chunked
    assert status == 413 and "limit" in reply["error"]
    assert files_under(data_dir) == []


def test_phone_photo_is_turned_upright(server, tmp_path, astronaut, capsys):
    port, _ = server
    photo = assets.exif_rotated_jpeg(astronaut)
    status, body = call(port, "POST", "/api/predict", photo, {"Content-Type": "image/jpeg"})
    assert status == 200 and body["width"] == body["height"] == 512
    assert [f["emotion"] for f in body["faces"]] == ["happy"]
    ws = Client.connect(f"ws://127.0.0.1:{port}/ws/live")
    ws.send(photo)
    assert json.loads(ws.receive(timeout=10))["width"] == 512
    ws.close()
    (tmp_path / "phone.jpg").write_bytes(photo)
    assert ferkit(["predict", str(tmp_path / "phone.jpg"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["width"] == 512 and [f["emotion"] for f in record["faces"]] == ["happy"]


def test_delete_cancels_a_running_job_and_its_files(server, long_video):
    port, data_dir = server
    status, job = call(port, "POST", "/api/videos", long_video.read_bytes())
    assert status == 202
    wait_for(lambda: call(port, "GET", f"/api/videos/{job['id']}")[1]["progress"] > 0, 60, "start")
    assert call(port, "DELETE", f"/api/videos/{job['id']}") == (
        200,
        {"id": job["id"], "status": "deleted"},
    )
    assert call(port, "GET", f"/api/videos/{job['id']}")[0] == 404
    wait_for(lambda: files_under(data_dir) == [], 30, "the job's files to go")
    assert call(port, "DELETE", f"/api/videos/{job['id']}")[0] == 404


def test_kill_9_during_a_job_then_restart_leaves_no_files(tmp_path, long_video):
    proc, port = assets.start_server("--data-dir", str(tmp_path))
    try:
        status, job = call(port, "POST", "/api/videos", long_video.read_bytes())
        assert status == 202 and files_under(tmp_path)
        wait_for(lambda: call(port, "GET", f"/api/videos/{job['id']}")[1]["progress"] > 0, 60)
        worker = psutil.Process(proc.pid).children()[0]
        worker.send_signal(signal.SIGKILL)  # gunicorn's master starts a new worker
        wait_for(lambda: worker.pid not in [c.pid for c in psutil.Process(proc.pid).children()])
        wait_for(lambda: health_within(port, 1), 60, "the new worker")
        assert files_under(tmp_path) == []
        assert len(list((tmp_path / "jobs").iterdir())) == 1  # the new worker's, empty
        assert call(port, "GET", f"/api/videos/{job['id']}")[0] == 404
        assert call(port, "POST", "/api/videos", long_video.read_bytes())[0] == 202
        for process in [*psutil.Process(proc.pid).children(), psutil.Process(proc.pid)]:
            process.send_signal(signal.SIGKILL)  # master and worker at once
        proc.wait(10)
        assert files_under(tmp_path)  # the upload is still there: nobody cleaned up
        proc, port = assets.start_server("--data-dir", str(tmp_path))
        wait_for(lambda: health_within(port, 1), 60, "the new server")
        assert files_under(tmp_path) == []
        assert len(list((tmp_path / "jobs").iterdir())) == 1
    finally:
        assets.stop_server(proc)


def test_finished_jobs_are_deleted_by_a_timer(tmp_path, astronaut_video):
    app = create_app({"DATA_DIR": str(tmp_path), "JOB_TTL_S": 0.5})
    reply = app.test_client().post(
        "/api/videos", data=astronaut_video.read_bytes(), content_type="video/mp4"
    )
    job = app.extensions["ferkit.jobs"].jobs[reply.get_json()["id"]]
    assert job.finished.wait(60) and job.status == "done" and files_under(tmp_path)
    wait_for(lambda: files_under(tmp_path) == [], 10, "the timer")  # nobody asked for the job
    shutdown(app)


def test_sigterm_after_live_traffic_exits_cleanly_and_removes_files(tmp_path, astronaut_video):
    proc, port = assets.start_server("--data-dir", str(tmp_path), "--source", str(astronaut_video))
    wait_for(lambda: health_within(port, 1), 60, "the server")
    ws = Client.connect(f"ws://127.0.0.1:{port}/ws/live")
    for _ in range(5):
        ws.send(jpeg(assets.one_face()))
        assert "faces" in json.loads(ws.receive(timeout=10))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/video_feed", timeout=10) as feed:
        assert b"image/jpeg" in feed.read(4096)  # the capture thread runs
    status, _ = call(port, "POST", "/api/videos", astronaut_video.read_bytes())
    assert status == 202
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    log = "".join(proc.log)
    assert "SIGABRT" not in log and "terminate called" not in log, log[-2000:]
    assert list((tmp_path / "jobs").iterdir()) == []


def test_videos_over_the_caps_fail_with_the_limit(tmp_path, astronaut_video):
    """Resolution and duration caps are read from the header; a job has a time cap."""
    app = create_app({"DATA_DIR": str(tmp_path), "JOB_MAX_S": 0})
    client = app.test_client()
    big = assets.write_video(tmp_path / "big.mp4", [np.zeros((1200, 2000, 3), np.uint8)] * 2)
    long = tmp_path / "long.mp4"
    with av.open(str(long), "w") as out:  # 2 frames, 700 s apart
        stream = out.add_stream("libx264", rate=Fraction(1, 700))
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for _ in range(2):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8))))
        out.mux(stream.encode())
    for path, message in ((big, "limit 1920x1080"), (long, "limit 600 s")):  # refused at once
        reply = client.post("/api/videos", data=path.read_bytes(), content_type="video/mp4")
        assert reply.status_code == 400, reply.get_json()
        error = reply.get_json()["error"]
        assert message in error and error.startswith("upload:") and str(tmp_path) not in error
    reply = client.post("/api/videos", data=astronaut_video.read_bytes(), content_type="video/mp4")
    job = app.extensions["ferkit.jobs"].get(reply.get_json()["id"])
    assert job.finished.wait(30) and job.status == "failed"
    assert "took over 0 s, the limit for one video" in job.error
    shutdown(app)
    assert list((tmp_path / "jobs").iterdir()) == []


def test_small_faults_give_clear_errors(tmp_path):
    with pytest.raises(FerkitError) as err:
        decode_image(b"\xff\xd8\xff\xe0 not really a JPEG", "x.jpg")
    assert str(err.value).startswith("x.jpg: corrupt image") and " at 0x" not in str(err.value)
    pixels = " ".join(["7"] * 48 * 48)
    bom = tmp_path / "bom.csv"
    bom.write_text(f"\ufeffemotion,pixels,Usage\n3,{pixels},Training\n", encoding="utf-8")
    assert data.load_csv(bom).labels.tolist() == [3]
    huge = tmp_path / "huge.csv"
    huge.write_text(f"emotion,pixels,Usage\n3,{'1 ' * 70_000},Training\n")
    with pytest.raises(FerkitError, match=r"huge.csv: line 2: malformed CSV \(field larger"):
        data.load_csv(huge)


def test_phone_photo_upright_on_the_image_page(server, tmp_path):
    """The page shows the photo as the browser orients it, and the server's boxes match."""
    from playwright.sync_api import expect, sync_playwright

    port, _ = server
    path = tmp_path / "portrait.jpg"
    path.write_bytes(assets.exif_rotated_jpeg(assets.one_face()))  # stored 480x640
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=assets.CHROMIUM, args=["--no-sandbox"], headless=True
        )
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"http://127.0.0.1:{port}/image")
        with page.expect_response("**/api/predict") as response:
            page.set_input_files("#file", str(path))
        reply = response.value.json()
        expect(page.locator("#status")).to_have_text("1 face found", timeout=15_000)
        shown = page.eval_on_selector("#photo", "i => [i.naturalWidth, i.naturalHeight]")
        browser.close()
    assert [reply["width"], reply["height"]] == shown == [640, 480]


def test_keep_data_keeps_a_stopped_servers_files(tmp_path):
    kept = create_app({"DATA_DIR": str(tmp_path), "KEEP_DATA": True})
    folder = kept.extensions["ferkit.jobs"].root
    (folder / "output.mp4").write_bytes(b"a result the user wants")
    shutdown(kept)
    later = create_app({"DATA_DIR": str(tmp_path)})  # its start-up sweep leaves kept folders
    assert (folder / "output.mp4").exists()
    shutdown(later)
    assert sorted((tmp_path / "jobs").iterdir()) == [folder]


def test_front_reads_requests_under_deadlines():
    """The server's front: chunked bodies de-chunked, framing headers replaced, deadlines."""
    from ferkit.web.front import BODY_GRACE_S, HEAD_TIMEOUT_S, Front, Refused

    front = Front(cap=10, spool_dir=None)
    front.feed(b"POST / HTTP/1.1\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n")
    for byte in b"5\r\nhello\r\n3;x=1\r\nabc\r\n0\r\nTrailer: 1\r\n\r\n":
        front.feed(bytes([byte]))
    head, body = list(front.request())
    assert body == b"helloabc" and head.count(b"Content-Length") == 1
    assert b"Content-Length: 8\r\n" in head and b"chunked" not in head
    with pytest.raises(Refused) as refused:  # over the cap by the chunk sizes
        Front(cap=10, spool_dir=None).feed(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n"
        )
    assert refused.value.code == 413
    slow = Front(cap=10, spool_dir=None)
    slow.feed(b"GET / HTTP/1.1\r\n")
    assert not slow.late(slow.started + HEAD_TIMEOUT_S - 1) and slow.late(
        slow.started + HEAD_TIMEOUT_S + 1
    )
    slow.feed(b"Content-Length: 9\r\n\r\nab")
    assert not slow.late(slow.started + BODY_GRACE_S) and slow.late(slow.started + BODY_GRACE_S + 1)


@pytest.mark.parametrize(
    "request_bytes, code",
    [
        (b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1_0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX-A: a\x00b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n folded: x\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"POST / HTTP/1.1\r\nExpect: foo\r\n\r\n", 417),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + b"X: y\r\n" * 12000, 431),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1\r\nx\r\n" * 1100, 400),
    ],
)
def test_front_refuses_what_gunicorn_would_answer_in_html(request_bytes, code):
    """Malformed framing is refused by the front (a JSON answer), not passed to gunicorn's
    parser (an HTML one); trailers are bounded and a flood of tiny chunks is cut short."""
    from ferkit.web.front import Front, Refused

    with pytest.raises(Refused) as refused:
        Front(cap=10_000, spool_dir=None).feed(request_bytes)
    assert refused.value.code == code


def json_reply(port: int, request: bytes) -> tuple[bytes, dict]:
    """Send raw bytes, read until the server closes; the head and the JSON body it sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"application/json" in head, reply[:300]
    return head, json.loads(body)


def test_malformed_requests_and_handshakes_get_json_errors(server):
    port, _ = server

    def raw(request: bytes) -> tuple[int, dict]:
        head, body = json_reply(port, request)
        return int(head.split()[1]), body

    assert raw(b"GET /api/health HTTP/1.1\r\nX-A: " + b"b" * 9000 + b"\r\n\r\n")[0] == 200
    status, body = raw(b"GET /api/health?" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")
    assert status == 431 and "too large" in body["error"]
    assert raw(b"POST /api/predict HTTP/1.1\r\nContent-Length: +5\r\n\r\n")[0] == 400
    upgrade = b"GET /ws/live HTTP/1.1\r\nConnection: close, Upgrade\r\nUpgrade: websocket\r\n"
    status, body = raw(upgrade + b"Sec-WebSocket-Version: 13\r\n\r\n")
    assert status == 400 and "Sec-WebSocket-Key" in body["error"]
    assert raw(upgrade + b"Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: x\r\n\r\n")[0] == 426
    status, body = raw(b"GET /ws/live HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert status == 400 and "WebSocket client" in body["error"]
    assert health_within(port, 1)


def test_live_client_that_never_waits_is_answered_for_its_newest_frames(server):
    """Frames sent without waiting for replies: simple_websocket kept every one (110 MB/s,
    3 GB in 25 s; here 2,000 replies and +200 MB); the socket now holds at most LIVE_QUEUE,
    dropping the oldest."""
    from ferkit.web.live import LIVE_QUEUE

    port, _ = server
    worker = server_worker(port)
    ws = Client.connect(f"ws://127.0.0.1:{port}/ws/live")
    frame = jpeg(assets.one_face())
    ws.send(frame)  # the pipeline warmed up: what grows next is what the socket holds
    assert "faces" in json.loads(ws.receive(timeout=10))
    before = worker.memory_info().rss
    for _ in range(2000):  # 60 MB, as fast as loopback takes them
        ws.send(frame)
    replies = []
    while (reply := ws.receive(timeout=1)) is not None:  # under --live-idle 2
        replies.append(json.loads(reply))
    grew = worker.memory_info().rss - before
    ws.close()
    assert 1 <= len(replies) < 100 * LIVE_QUEUE and all("faces" in r for r in replies)
    assert grew < 50 * 2**20, f"the worker grew by {grew / 2**20:.0f} MB"
    assert health_within(port, 1)


def server_worker(port: int) -> psutil.Process:
    """The worker process of the server started with `--port PORT` (the master's child)."""
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "--port" in cmdline and cmdline[cmdline.index("--port") + 1 :][:1] == [str(port)]:
            if proc.parent() is not None and proc.parent().cmdline() == cmdline:
                return proc
    raise AssertionError(f"no server worker on port {port}")


def test_parked_connections_are_capped_and_health_answers(server):
    """1,000 clients that each send part of a request and go silent held every connection
    gunicorn accepts (no /api/health answered in 30 s): past MAX_FRONTS requests being
    read, the one silent for longest is answered 503 and closed."""
    from ferkit.web.server import MAX_FRONTS

    port, _ = server
    socks = []
    try:
        for _ in range(2 * MAX_FRONTS):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\nab")
            socks.append(s)
        assert health_within(port, 1)
        socks[0].settimeout(10)
        head, _, body = socks[0].recv(4096).partition(b"\r\n\r\n")  # the first one parked
        assert head.startswith(b"HTTP/1.1 503") and json.loads(body) == {
            "error": "server busy; try again"
        }
    finally:
        for s in socks:
            s.close()
    assert health_within(port, 1)


def test_parked_bodies_are_capped_in_bytes(tmp_path):
    """Bodies being read went to disk with no total cap (2 GB from 50 clients): all of them
    together now fit PARKED_UPLOADS uploads at the cap; a stalled one makes room for a
    client that sends, with a 503."""
    from ferkit.web.server import PARKED_UPLOADS, STALLED_S

    proc, port = assets.start_server("--max-upload-mb", "1", "--data-dir", str(tmp_path))
    socks = []
    try:
        wait_for(lambda: health_within(port, 1), 60, "the server")
        head = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
        for _ in range(PARKED_UPLOADS):  # each 900 KB of its 1 MB, then silence
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
            socks[-1].sendall(head + bytes(900_000))
        time.sleep(STALLED_S + 0.5)  # the rule's own delay: they are stalled now
        photo = jpeg(assets.one_face()) + bytes(900_000)  # 4.5 + 0.9 MB: over 5 MiB
        status, body = call(port, "POST", "/api/predict", photo)
        assert status == 200 and body["faces"]  # served: stalled bodies made room
        reply = socks[0].recv(4096)
        assert reply.startswith(b"HTTP/1.1 503") and b"request stalled; dropped" in reply
        assert health_within(port, 1)
    finally:
        for s in socks:
            s.close()
        assets.stop_server(proc)


def test_no_redirect_built_from_host_and_gunicorn_errors_in_json(server):
    """`//api/health` was answered 308 to http://<Host header>/api/health; a SCRIPT_NAME
    header that is not the path's prefix got gunicorn's HTML 500."""
    port, _ = server
    head, body = json_reply(
        port, b"GET //api/health HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    )
    assert head.split()[1] in (b"200", b"404") and b"Location" not in head  # not sent elsewhere
    head, body = json_reply(
        port, b"GET /api/health HTTP/1.1\r\nHost: x\r\nSCRIPT_NAME: /elsewhere\r\n\r\n"
    )
    assert b"Location" not in head
    assert head.startswith(b"HTTP/1.1 400") and "SCRIPT_NAME" in body["error"]


SLOW_APP = """
import sys, time
from ferkit.web import create_app, shutdown
from ferkit.web.server import run

def factory():
    app = create_app({"DATA_DIR": sys.argv[2]})
    root = app.extensions["ferkit.jobs"].root

    @app.post("/slow")
    def slow():  # a request still busy long after the stop (a slow decode)
        (root / "upload.bin").write_bytes(b"the request's file")
        time.sleep(60)
        return "done"

    return app

run(factory, "127.0.0.1", int(sys.argv[1]), 4, shutdown)
"""


def test_sigterm_during_a_long_request_removes_the_files(tmp_path):
    """gunicorn waited for a busy thread as long as the master's graceful timeout, and the
    master then killed the worker before the app removed its files (2 runs in 6). The stop
    now waits STOP_WAIT_S, then removes the files and exits."""
    import subprocess
    import sys
    import threading

    from ferkit.web.server import STOP_WAIT_S

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_APP, str(port), str(tmp_path)], stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: health_within(port, 1), 60, "the server")

        def slow_request() -> None:
            try:
                call(port, "POST", "/slow", b"", timeout=60)
            except (OSError, http.client.HTTPException):
                pass  # the stop closes it unanswered

        threading.Thread(target=slow_request, daemon=True).start()
        wait_for(lambda: files_under(tmp_path), 10, "the request's file")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert time.monotonic() - started < STOP_WAIT_S + 4  # well before the master's kill
        assert list((tmp_path / "jobs").iterdir()) == []
    finally:
        if proc.poll() is None:
            proc.kill()
