"""Live camera: the browser sends JPEG frames over a WebSocket and gets JSON results back.

The page keeps at most one frame in flight, so a slow server lowers the frame rate
instead of building a queue. Each open socket holds a server thread, so at most LIVE_MAX
live viewers (these sockets and MJPEG viewers) are served at once and LIVE_PER_CLIENT from
one address (`ferkit.web.slots`), the next one is told why and closed, and a socket that
sends no frame for LIVE_IDLE_S is closed.
"""

from __future__ import annotations

import json
import time

from flask import Blueprint, current_app
from flask_sock import Sock

from ferkit.errors import FerkitError
from ferkit.images import decoded
from ferkit.web.slots import client_address

bp = Blueprint("live", __name__)
sock = Sock()
BUSY, IDLE = 1013, 1001  # WebSocket close codes: try again later, going away


@sock.route("/ws/live", bp=bp)
def live(ws):
    slots, client = current_app.extensions["ferkit.live_slots"], client_address()
    refused = slots.acquire(client)
    if refused is not None:
        ws.send(json.dumps({"error": refused[1]}))
        ws.close(BUSY, "server busy")
        return
    try:
        stream = current_app.extensions["ferkit.pipeline"].stream()
        _serve(ws, stream, current_app.config["LIVE_IDLE_S"])
    finally:
        slots.release(client)


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
