"""Load on a real server on loopback: N clients x F frames/s over the WebSocket and over
POST /api/predict; throughput, latency percentiles, errors, server memory.

    .venv/bin/python bench/web_load.py [--clients 8] [--fps 10] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request

import cv2
import numpy as np
from common import report, tree_rss_mb
from media import one_face, start_server
from simple_websocket import Client


def client(
    mode: str, port: int, jpeg: bytes, fps: float, until: float, latencies: list, errors: list
) -> None:
    ws = Client.connect(f"ws://127.0.0.1:{port}/ws/live") if mode == "websocket" else None
    period, next_at = 1 / fps, time.perf_counter()
    while next_at < until:
        start = time.perf_counter()
        try:
            if ws is not None:
                ws.send(jpeg)
                reply = json.loads(ws.receive(timeout=10))
            else:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/predict",
                    data=jpeg,
                    headers={"Content-Type": "image/jpeg"},
                )
                with urllib.request.urlopen(request, timeout=10) as response:
                    reply = json.loads(response.read())
            if "faces" not in reply:
                raise RuntimeError(reply)
            latencies.append(time.perf_counter() - start)
        except Exception as err:  # count every failure, keep loading
            errors.append(repr(err))
        next_at += period
        time.sleep(max(0.0, next_at - time.perf_counter()))
    if ws is not None:
        ws.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--fps", type=float, default=10)
    p.add_argument("--seconds", type=float, default=60)
    args = p.parse_args()
    jpeg = cv2.imencode(".jpg", cv2.resize(one_face(), (480, 360)))[1].tobytes()
    proc, port = start_server()
    rows = []
    try:
        for mode in ("websocket", "http"):
            warm: list[float] = []  # a few seconds first: buffers and threads are allocated once
            warm_until = time.perf_counter() + 5
            warmers = [
                threading.Thread(
                    target=client, args=(mode, port, jpeg, args.fps, warm_until, warm, [])
                )
                for _ in range(args.clients)
            ]
            for t in warmers:
                t.start()
            for t in warmers:
                t.join()
            rss_start = tree_rss_mb(proc)
            latencies: list[float] = []
            errors: list[str] = []
            until = time.perf_counter() + args.seconds
            threads = [
                threading.Thread(
                    target=client, args=(mode, port, jpeg, args.fps, until, latencies, errors)
                )
                for _ in range(args.clients)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            ms = 1000 * np.array(latencies or [np.nan])
            rows.append({
                "mode": mode, "clients": args.clients, "fps_each": args.fps, "seconds": args.seconds,
                "requests": len(latencies), "errors": len(errors), "throughput_per_s": len(latencies) / args.seconds,
                "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "p99_ms": float(np.percentile(ms, 99)),
                "rss_start_mb": rss_start, "rss_end_mb": tree_rss_mb(proc),
            })  # fmt: skip
            if errors:
                print(f"{mode}: first error: {errors[0]}")
    finally:
        proc.terminate()
        proc.wait(30)
    columns = [
        "mode",
        "clients",
        "requests",
        "errors",
        "throughput_per_s",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "rss_start_mb",
        "rss_end_mb",
    ]
    report(f"web_load_{args.clients}clients", columns, rows)


if __name__ == "__main__":
    main()
