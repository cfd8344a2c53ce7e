"""Live camera: the browser sends JPEG frames over a WebSocket and gets JSON results back.

The page keeps at most one frame in flight, so a slow server lowers the frame rate
instead of building a queue. Each open socket holds a server thread, so at most LIVE_MAX
live viewers (these sockets and MJPEG viewers) are served at once and LIVE_PER_CLIENT from
one address (`ferkit.web.slots`), the next one is told why and closed, and a socket that
sends no frame for LIVE_IDLE_S is closed. A client that sends without waiting for replies
is answered for its newest frames only: each socket keeps at most LIVE_QUEUE frames waiting,
older ones are dropped (unbounded, 110 MB/s of such frames held 3 GB in 25 s).
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time

from flask import Blueprint, current_app, jsonify, request
from flask_sock import Sock
from werkzeug.routing import WebsocketMismatch

from ferkit.errors import FerkitError
from ferkit.media.images import decoded
from ferkit.vision.result import ImageResult
from ferkit.web.slots import client_address

bp = Blueprint("live", __name__)
sock = Sock()
BUSY, IDLE = 1013, 1001  # WebSocket close codes: try again later, going away
LIVE_MAX_PIXELS = 1920 * 1088  # a camera frame (the page sends 480 px): not a 40 MP photo
LIVE_QUEUE = 2  # frames received and not yet answered, per socket


class _Latest(list):
    """A socket's received messages: appending past LIVE_QUEUE drops the oldest."""

    def append(self, message) -> None:
        while len(self) >= LIVE_QUEUE:
            del self[0]
        super().append(message)


class _ReaderThread(threading.Thread):
    """The thread simple_websocket reads a socket with (its `thread_class` option), made to
    hold that socket's messages in a `_Latest`: the library keeps them in a list with no
    bound, filled as fast as the client sends."""

    def __init__(self, target, **kwargs):
        ws = target.__self__  # the socket whose `_thread` this runs; it has read nothing yet
        ws.input_buffer = _Latest(ws.input_buffer)
        super().__init__(target=target, **kwargs)


@bp.record_once
def _bounded_sockets(state) -> None:
    options = state.app.config["SOCK_SERVER_OPTIONS"]
    state.app.config["SOCK_SERVER_OPTIONS"] = {**options, "thread_class": _ReaderThread}


@bp.app_errorhandler(WebsocketMismatch)
def _not_a_websocket(_err):
    """A plain request to the socket's URL (the router refuses it before any handler)."""
    return jsonify(error="a WebSocket endpoint: open it with a WebSocket client"), 400


@bp.before_request
def _handshake():
    """Refuse in JSON what the WebSocket library would answer with a 500: a request that is
    not a version-13 handshake with a proper key."""
    if request.headers.get("Sec-WebSocket-Version") != "13":
        reply = jsonify(error="only WebSocket version 13 is spoken")
        reply.headers["Sec-WebSocket-Version"] = "13"
        return reply, 426
    try:
        key = base64.b64decode(request.headers.get("Sec-WebSocket-Key", ""), validate=True)
    except binascii.Error:
        key = b""
    if len(key) != 16:
        return jsonify(error="the WebSocket handshake needs a Sec-WebSocket-Key of 16 bytes"), 400
    return None


@sock.route("/ws/live", bp=bp)
def live(ws) -> None:
    slots, client = current_app.extensions["ferkit.live_slots"], client_address()
    refused = slots.acquire(client)
    if refused is not None:
        ws.send(json.dumps({"error": refused[1]}))
        ws.close(BUSY, "too many from your address" if refused[0] == 429 else "server busy")
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
            # a large frame holds its pixel budget
            with decoded(message, "frame", LIVE_MAX_PIXELS) as image:
                reply = ImageResult.of(image, stream(image)).to_dict()
        except FerkitError as err:
            reply = {"error": str(err)}
        reply["server_ms"] = round((time.perf_counter() - started) * 1000, 1)
        ws.send(json.dumps(reply))
