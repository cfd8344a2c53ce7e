"""Hostile clients against a real server on loopback, for each server design.

Per design: open N idle WebSockets (handshake sent, then silence; each from its own
loopback address) and N slow clients (a request head sent one header line every 2 s), then
measure `/api/health` (answered within 1 s?) and one live client's round trips over the
WebSocket (p95 < 150 ms?). Then, on the kept design, 8 hostile image uploads at once
(tile-bomb TIFFs, 6300x6300 16-bit PNGs), 8 large legitimate photos (40 MP JPEGs) and 8
90 MB video uploads from one address: the worker's peak memory. Last, on each design, fast
senders: two clients sending as fast as loopback allows (1-byte chunks, endless chunk
trailers, a body going on after its 413): how long `/api/health` takes meanwhile.

With --round-two, only the cases of issue 25's second sweep, on the kept design (hostile
media, a WebSocket that never waits, 1,000 parked bodies, redirects): each case's answer,
the worker's CPU seconds, the server's peak memory and its memory after, and /api/health
meanwhile (bench/results/hostile_round_two.json).

    .venv/bin/python bench/hostile_clients.py [--clients 64] [--seconds 8] [--round-two]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import psutil
from common import report, tree_rss_mb
from media import (
    ROOT,
    astronaut,
    astronaut_frames,
    empty_markers_jpeg,
    many_scans_jpeg,
    many_streams_video,
    one_face,
    png16_rgba,
    tiff16_rgba,
    tile_bomb_tiff,
    write_video,
)
from simple_websocket import Client

# design: (gunicorn worker, threads, slow clients as a multiple of --clients)
DESIGNS = {
    "gthread, 16 threads (before)": ("gthread", 16, 1),
    "gthread, 160 threads": ("gthread", 160, 1),
    "buffering front, 128 threads (kept)": ("buffering", 128, 1),
    "gthread, 160 threads, 4x slow": ("gthread", 160, 4),
    "buffering front, 128 threads, 4x slow": ("buffering", 128, 4),
}
SERVE = (
    "import sys; from ferkit.web.serve import serve; "
    "serve({'DATA_DIR': sys.argv[2]}, port=int(sys.argv[1]), threads=int(sys.argv[3]), "
    "worker=sys.argv[4])"
)


def start(worker: str, threads: int, data_dir: str) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(port), data_dir, str(threads), worker],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if health(port, 1.0) is not None:
            return proc, port
        time.sleep(0.2)
    raise RuntimeError("the server did not start")


def health(port: int, timeout: float) -> float | None:
    """Seconds to answer /api/health, or None when it did not within `timeout`."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=timeout) as r:
            r.read()
    except OSError:
        return None
    return time.perf_counter() - started


def idle_websocket(port: int, i: int) -> socket.socket:
    """A WebSocket handshake, then nothing: no frame, no answer to pings. Each comes from its
    own loopback address (127.0.1.x): many clients, which the per-address cap cannot stop."""
    source = (f"127.0.{1 + i // 250}.{1 + i % 250}", 0)
    sock = socket.create_connection(("127.0.0.1", port), source_address=source)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws/live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    return sock


def slow_clients(port: int, n: int, stop: threading.Event) -> list[socket.socket]:
    """n clients that send a request head one header line every 2 s (slowloris)."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    for s in socks:
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\n")

    def drip():
        while not stop.wait(2):
            for s in socks:
                try:
                    s.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    pass

    threading.Thread(target=drip, daemon=True).start()
    return socks


def live_client(port: int, jpeg: bytes, frames: int) -> tuple[list[float], str | None]:
    """Round trips of one live client at 10 frames/s; an error string if it was not served."""
    times: list[float] = []
    try:
        ws = Client.connect(f"ws://127.0.0.1:{port}/ws/live")
    except Exception as err:
        return times, f"connect: {type(err).__name__}"
    try:
        return _frames(ws, jpeg, frames, times)
    except Exception as err:  # the server closed or reset the socket
        return times, f"{type(err).__name__}: {err}"
    finally:
        if ws.connected:
            ws.close()


def _frames(ws, jpeg: bytes, frames: int, times: list[float]) -> tuple[list[float], str | None]:
    for _ in range(frames):
        started = time.perf_counter()
        ws.send(jpeg)
        reply = ws.receive(timeout=5)
        if reply is None:
            return times, "no reply within 5 s"
        if "faces" not in json.loads(reply):
            return times, json.loads(reply).get("error", "no faces key")
        times.append(time.perf_counter() - started)
        time.sleep(max(0.0, 0.1 - (time.perf_counter() - started)))
    return times, None


def measure_design(
    name: str, worker: str, threads: int, n: int, n_slow: int, seconds: float, jpeg: bytes
):
    data_dir = tempfile.mkdtemp(prefix="ferkit-bench-")
    proc, port = start(worker, threads, data_dir)
    stop = threading.Event()
    opened: list[socket.socket] = []
    try:
        rss_before = tree_rss_mb(proc)
        opened += [idle_websocket(port, i) for i in range(n)]
        opened += slow_clients(port, n_slow, stop)
        time.sleep(1)  # let the server take them all in
        answers, until = [], time.monotonic() + seconds
        live = {}
        thread = threading.Thread(
            target=lambda: live.update(zip(("times", "error"), live_client(port, jpeg, 60))),
            daemon=True,
        )
        thread.start()
        while time.monotonic() < until:
            answers.append(health(port, 3.0))
            time.sleep(0.5)
        thread.join(30)
        if thread.is_alive():
            live["error"] = "not served within 30 s"
        answered = [a for a in answers if a is not None]
        ms = 1000 * np.array(live.get("times") or [np.nan])
        return {
            "design": name,
            "idle_websockets": n,
            "slow_clients": n_slow,
            "health_answered": f"{len(answered)}/{len(answers)}",
            "health_max_s": max(answered) if answered else None,
            "live_frames": len(live.get("times") or []),
            "live_p50_ms": float(np.percentile(ms, 50)),
            "live_p95_ms": float(np.percentile(ms, 95)),
            "live_error": live.get("error"),
            "rss_mb": tree_rss_mb(proc) - rss_before,
        }
    finally:
        stop.set()
        for s in opened:
            s.close()
        proc.terminate()
        proc.wait(30)


def post(port: int, data: bytes, content_type: str) -> int:
    path = "/api/videos" if content_type.startswith("video/") else "/api/predict"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def measure_uploads(port: int, proc, label: str, data: bytes, kind: str, at_once: int) -> dict:
    """`at_once` uploads at once; the worker's memory before and at its peak."""
    worker = psutil.Process(proc.pid).children()[0]
    before, peak, codes = worker.memory_info().rss, 0, []
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, worker.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    threads = [
        threading.Thread(target=lambda: codes.append(post(port, data, kind)))
        for _ in range(at_once)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    sampler.join()
    return {
        "upload": label,
        "bytes": len(data),
        "at_once": at_once,
        "statuses": ",".join(str(c) for c in sorted(codes)),
        "seconds": time.perf_counter() - started,
        "worker_rss_before_mb": before / 2**20,
        "worker_peak_mb": peak / 2**20,
    }


SENDERS = {  # what a fast sender sends after its head, over and over
    "1-byte chunks": (b"Transfer-Encoding: chunked\r\n\r\n", b"1\r\nX\r\n" * 65536),
    "endless trailers": (b"Transfer-Encoding: chunked\r\n\r\n0\r\n", b"X-T: v\r\n" * 8192),
    "body after a 413": (b"Content-Length: 900000000\r\n\r\n", bytes(512 * 1024)),
}


def fast_sender(port: int, head: bytes, piece: bytes, until: float) -> str:
    """Send `piece` again and again until `until`; how it ended."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        try:
            s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\n" + head)
            while time.monotonic() < until:
                s.sendall(piece)
        except OSError as err:
            return f"cut off ({err.strerror})"
    return "sent until the end"


def measure_senders(design: str, worker: str, threads: int, seconds: float) -> list[dict]:
    rows = []
    for name, (head, piece) in SENDERS.items():
        proc, port = start(worker, threads, tempfile.mkdtemp(prefix="ferkit-bench-"))
        try:
            until, ends = time.monotonic() + seconds, []
            senders = [
                threading.Thread(target=lambda: ends.append(fast_sender(port, head, piece, until)))
                for _ in range(2)
            ]
            for t in senders:
                t.start()
            time.sleep(0.5)
            answers = []
            while time.monotonic() < until:
                answers.append(health(port, 20.0))
            for t in senders:
                t.join()
            answered = [a for a in answers if a is not None]
            rows.append(
                {
                    "design": design,
                    "senders": f"2 x {name}",
                    "health_answered": f"{len(answered)}/{len(answers)}",
                    "health_max_s": max(answered) if answered else None,
                    "senders_end": "; ".join(sorted(set(ends))),
                }
            )
        finally:
            proc.terminate()
            proc.wait(30)
    return rows


def request(port: int, method: str, path: str, body: bytes = b"", headers=None) -> tuple:
    """(status, the JSON error or the Location header) of one request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
    except OSError as err:
        return None, f"{type(err).__name__}"
    finally:
        conn.close()
    try:
        error = json.loads(data).get("error")
    except ValueError:
        error = f"not JSON: {data[:40]!r}"
    return response.status, response.getheader("Location") or error


def flood_websocket(port: int, frame: bytes, seconds: float) -> tuple:
    """Frames sent as fast as loopback takes them, replies never read."""
    ws = Client.connect(f"ws://127.0.0.1:{port}/ws/live")
    sent, until = 0, time.monotonic() + seconds
    while time.monotonic() < until:
        ws.send(frame)
        sent += 1
    ws.close()
    return 101, f"{sent:,} frames of {len(frame) // 1024} KB sent"


def parked_bodies(port: int, clients: int, body: int) -> tuple:
    """`clients` requests that send `body` bytes of their body, then go silent for 10 s."""
    socks, refused = [], 0
    head = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (2 * body)
    for _ in range(clients):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(head + bytes(body))
            socks.append(s)
        except OSError:
            refused += 1
    time.sleep(10)
    answered = 0
    for s in socks:
        s.setblocking(False)
        try:
            answered += s.recv(16).startswith(b"HTTP/1.1 503")
        except OSError:
            pass
        s.close()
    return 503, f"{answered} of {clients} answered 503 while silent, {refused} not connected"


def concurrent(calls) -> tuple:
    """Run the calls at once; the statuses and the first error."""
    results: list = []
    threads = [threading.Thread(target=lambda c=c: results.append(c())) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = ",".join(str(r[0]) for r in results)
    return statuses, next((r[1] for r in results if r[1]), None)


def measure_case(proc, port: int, idle_mb: float, name: str, attack) -> dict:
    """One case: its answer, the worker's CPU, the tree's peak and after, health meanwhile."""
    worker = psutil.Process(proc.pid).children()[0]
    cpu = sum(worker.cpu_times()[:2])
    done, peak, answers = threading.Event(), [0.0], []

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_mb(proc))
            answers.append(health(port, 5.0))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.perf_counter()
    status, detail = attack()
    seconds = time.perf_counter() - started
    time.sleep(2)  # the attack over: what the server keeps
    done.set()
    watcher.join()
    answered = [a for a in answers if a is not None]
    return {
        "case": name,
        "status": status,
        "answer": (detail or "")[:90],
        "seconds": seconds,
        "worker_cpu_s": sum(worker.cpu_times()[:2]) - cpu,
        "tree_peak_mb": peak[0],
        "tree_after_mb": tree_rss_mb(proc),
        "tree_idle_mb": idle_mb,
        "health": f"{len(answered)}/{len(answers)}",
        "health_p50_s": sorted(answered)[len(answered) // 2] if answered else None,
        "health_max_s": max(answered) if answered else None,
    }


def round_two(only: str = "") -> None:
    """The cases of issue 25's second sweep against the kept design."""
    folder = Path(tempfile.mkdtemp(prefix="ferkit-bench-"))
    streams = many_streams_video(folder / "streams.mp4", 101).read_bytes()
    markers = empty_markers_jpeg(24_750_000)  # 99 MB
    markers_10 = empty_markers_jpeg(2_500_000)
    scans = many_scans_jpeg(2000)
    rng = np.random.default_rng(0)
    photo = cv2.imencode(".jpg", rng.integers(0, 255, (2000, 3000, 3), np.uint8))[1].tobytes()
    frame = cv2.imencode(".jpg", one_face())[1].tobytes()
    tiff = tiff16_rgba(4600)
    jpg = {"Content-Type": "image/jpeg"}
    video, tif = {"Content-Type": "video/mp4"}, {"Content-Type": "image/tiff"}
    cases = [
        ("MP4, 101 streams (100 of 4096x2304)", lambda: request(port, "POST", "/api/videos", streams, video)),  # noqa: E501
        ("JPEG, 99 MB of empty markers", lambda: request(port, "POST", "/api/predict", markers, jpg)),  # noqa: E501
        ("JPEG, 10 MB of empty markers, 8 at once", lambda: concurrent(
            [lambda: request(port, "POST", "/api/predict", markers_10, jpg)] * 8)),
        (f"WebSocket, {len(frame) // 1024} KB frames, replies never read, 10 s", lambda: flood_websocket(port, frame, 10)),  # noqa: E501
        ("1,000 clients, 1 MB of body each, then silent", lambda: parked_bodies(port, 1000, 2**20)),  # noqa: E501
        ("progressive JPEG, 2,000 scans, 2 at once + a 6 MP photo", lambda: concurrent(
            [lambda: request(port, "POST", "/api/predict", scans, jpg)] * 2
            + [lambda: request(port, "POST", "/api/predict", photo, jpg)])),
        ("TIFF, 4600x4600 16-bit RGBA", lambda: request(port, "POST", "/api/predict", tiff, tif)),
        ("GET //api/health, Host: evil.example", lambda: request(
            port, "GET", "//api/health", headers={"Host": "evil.example"})),
        ("SCRIPT_NAME header not a prefix of the path", lambda: request(
            port, "GET", "/api/health", headers={"SCRIPT_NAME": "/elsewhere"})),
    ]  # fmt: skip
    proc, port = start("buffering", 128, str(folder / "data"))
    try:
        request(port, "POST", "/api/predict", frame, jpg)  # the pipeline warmed up
        idle = tree_rss_mb(proc)
        rows = [measure_case(proc, port, idle, *case) for case in cases if only in case[0]]
    finally:
        proc.terminate()
        proc.wait(30)
    columns = ["case", "status", "answer", "seconds", "worker_cpu_s", "tree_peak_mb"]
    health_columns = ["health", "health_p50_s", "health_max_s"]
    report("hostile_round_two", [*columns, "tree_after_mb", *health_columns], rows)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--round-two", action="store_true", help="only issue 25's second sweep")
    p.add_argument("--case", default="", help="with --round-two: the cases whose name has this")
    args = p.parse_args()
    if args.round_two:
        return round_two(args.case)
    jpeg = cv2.imencode(".jpg", cv2.resize(one_face(), (480, 360)))[1].tobytes()
    rows = [
        measure_design(name, worker, threads, args.clients, k * args.clients, args.seconds, jpeg)
        for name, (worker, threads, k) in DESIGNS.items()
    ]
    report(
        "hostile_clients",
        [
            "design", "idle_websockets", "slow_clients", "health_answered", "health_max_s",
            "live_frames", "live_p50_ms", "live_p95_ms", "live_error", "rss_mb",
        ],
        rows,
    )  # fmt: skip

    big = np.random.default_rng(0).integers(0, 255, (5000, 8000, 3), np.uint8)
    photo = cv2.imencode(".jpg", big)[1].tobytes()
    with tempfile.TemporaryDirectory() as folder:
        clip = write_video(Path(folder) / "clip.mp4", list(astronaut_frames(astronaut(), 90)))
        video = clip.read_bytes()
    video += bytes(90 * 2**20 - len(video))
    uploads = [  # (label, body, content type, how many at once)
        ("TIFF, 64x64 declared, one 16384x16368 tile", tile_bomb_tiff(), "image/tiff", 8),
        ("PNG, 6300x6300 16-bit RGBA", png16_rgba(), "image/png", 8),
        ("JPEG, 8000x5000 (40 MP, noise)", photo, "image/jpeg", 1),
        ("JPEG, 8000x5000 (40 MP, noise)", photo, "image/jpeg", 8),
        ("MP4, 90 MB (a 3 s clip, then padding), one address", video, "video/mp4", 8),
    ]
    proc, port = start("buffering", 128, tempfile.mkdtemp(prefix="ferkit-bench-"))
    try:
        upload_rows = [measure_uploads(port, proc, *upload) for upload in uploads]
    finally:
        proc.terminate()
        proc.wait(30)
    columns = ["upload", "bytes", "at_once", "statuses", "seconds"]
    report("hostile_uploads", [*columns, "worker_rss_before_mb", "worker_peak_mb"], upload_rows)
    sender_rows = [
        row
        for design, (worker, threads, slow) in DESIGNS.items()
        if slow == 1
        for row in measure_senders(design, worker, threads, args.seconds)
    ]
    columns = ["design", "senders", "health_answered", "health_max_s", "senders_end"]
    report("hostile_senders", columns, sender_rows)


if __name__ == "__main__":
    main()
