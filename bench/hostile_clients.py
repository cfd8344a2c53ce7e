"""Hostile clients against a real server on loopback, for each server design.

Per design: open N idle WebSockets (handshake sent, then silence; each from its own
loopback address) and N slow clients (a request head sent one header line every 2 s), then
measure `/api/health` (answered within 1 s?) and one live client's round trips over the
WebSocket (p95 < 150 ms?). Then, on the kept design, 8 hostile image uploads at once
(tile-bomb TIFFs, 6300x6300 16-bit PNGs), 8 large legitimate photos (40 MP JPEGs) and 8
90 MB video uploads from one address: the worker's peak memory. Last, on each design, fast
senders: two clients sending as fast as loopback allows (1-byte chunks, endless chunk
trailers, a body going on after its 413): how long `/api/health` takes meanwhile.

    .venv/bin/python bench/hostile_clients.py [--clients 64] [--seconds 8]
"""

from __future__ import annotations

import argparse
import base64
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
    one_face,
    png16_rgba,
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
    "import sys; from ferkit.web import serve; "
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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=8)
    args = p.parse_args()
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
