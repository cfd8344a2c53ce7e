"""Live camera: the browser sends JPEG frames over a WebSocket and gets JSON results back.

The page keeps at most one frame in flight, so a slow server lowers the frame rate
instead of building a queue.
"""

from __future__ import annotations

import json
import time

from flask import Blueprint, current_app
from flask_sock import Sock

from ferkit.errors import FerkitError
from ferkit.images import decode_image

bp = Blueprint("live", __name__)
sock = Sock()


@sock.route("/ws/live", bp=bp)
def live(ws):
    stream = current_app.extensions["ferkit.pipeline"].stream()
    while True:
        message = ws.receive()
        started = time.perf_counter()
        if not isinstance(message, bytes):
            ws.send(json.dumps({"error": "send each frame as a binary JPEG message"}))
            continue
        try:
            image = decode_image(message, "frame")
            faces = [face.to_dict() for face in stream(image)]
            reply = {"faces": faces, "width": image.shape[1], "height": image.shape[0]}
        except FerkitError as err:
            reply = {"error": str(err)}
        reply["server_ms"] = round((time.perf_counter() - started) * 1000, 1)
        ws.send(json.dumps(reply))
