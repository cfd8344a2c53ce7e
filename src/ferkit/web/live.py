"""Live camera: the browser sends JPEG frames over a WebSocket and gets JSON results back.

The page keeps at most one frame in flight, so a slow server lowers the frame rate
instead of building a queue. Each open socket holds a server thread, so at most LIVE_MAX
live viewers (these sockets and MJPEG viewers) are served at once, the next one is told
the server is busy, and a socket that sends no frame for LIVE_IDLE_S is closed.
"""

from __future__ import annotations

import json
import time

from flask import Blueprint, current_app
from flask_sock import Sock

from ferkit.errors import FerkitError
from ferkit.images import decoded

bp = Blueprint("live", __name__)
sock = Sock()
BUSY, IDLE = 1013, 1001  # WebSocket close codes: try again later, going away


@sock.route("/ws/live", bp=bp)
def live(ws):
    config = current_app.config
    slots = current_app.extensions["ferkit.live_slots"]
    if not slots.acquire(blocking=False):
        busy = f"server busy: {config['LIVE_MAX']} live viewers are connected; try again later"
        ws.send(json.dumps({"error": busy}))
        ws.close(BUSY, "server busy")
        return
    try:
        _serve(ws, current_app.extensions["ferkit.pipeline"].stream(), config["LIVE_IDLE_S"])
    finally:
        slots.release()


def _serve(ws, stream, idle_s: float) -> None:
    while True:
        message = ws.receive(timeout=idle_s)
        if message is None:
            ws.send(json.dumps({"error": f"closed: no frame for {idle_s:g} s"}))
            ws.close(IDLE, "idle")
            return
        started = time.perf_counter()
        if not isinstance(message, bytes):
            ws.send(json.dumps({"error": "send each frame as a binary JPEG message"}))
            continue
        try:
            with decoded(message, "frame") as image:  # a large frame holds its pixel budget
                faces = [face.to_dict() for face in stream(image)]
            reply = {"faces": faces, "width": image.shape[1], "height": image.shape[0]}
        except FerkitError as err:
            reply = {"error": str(err)}
        reply["server_ms"] = round((time.perf_counter() - started) * 1000, 1)
        ws.send(json.dumps(reply))
