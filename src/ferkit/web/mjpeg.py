"""Server stream (the seed's way): MJPEG of the server's camera or of a video file.

One capture thread serves every viewer; it starts with the first and stops when the last
one leaves. A video file loops, at its own frame rate (a camera sets the pace itself).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

import cv2
from flask import Blueprint, Response, abort, current_app

from ferkit.vision.overlay import draw
from ferkit.web.slots import client_address

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ferkit.vision.pipeline import Pipeline

log = logging.getLogger(__name__)

bp = Blueprint("stream", __name__)


class SharedCapture:
    def __init__(self, source: str | int | None, pipeline: Pipeline):
        self.source = 0 if source is None else int(source) if str(source).isdigit() else str(source)
        self.pipeline = pipeline
        self.cond = threading.Condition()
        self.viewers = 0
        self.frame: bytes | None = None
        self.seq = 0
        self.failed: str | None = None
        self.thread: threading.Thread | None = None
        self.stopped = False

    def stop(self, timeout: float = 10) -> None:
        """End the capture thread (the server stops) and wait for it to release the source."""
        with self.cond:
            self.stopped, thread = True, self.thread
            self.cond.notify_all()
        if thread is not None:
            thread.join(timeout)

    def _open(self):
        capture = cv2.VideoCapture(self.source)
        if not capture.isOpened():  # the source (a path, maybe a URL with a password) is
            log.warning("cannot open the stream source %r", self.source)  # for the log only
            self.failed = "cannot open the stream source"
        return capture

    def _period(self, capture) -> float:
        """Seconds between a file's frames (read as fast as it decodes, it would fast-forward
        and take every core); 0 for a camera, whose reads wait for its next frame."""
        if not isinstance(self.source, str):
            return 0.0
        fps = capture.get(cv2.CAP_PROP_FPS)
        return 1 / fps if 1 <= fps <= 240 else 1 / 30

    def _run(self) -> None:
        capture = self._open()
        stream = self.pipeline.stream()  # each run of the capture numbers faces from 1
        period, due = self._period(capture), time.monotonic()
        try:
            while not self.failed:
                with self.cond:  # stop() wakes the wait for the next frame's time
                    self.cond.wait_for(lambda: self.stopped, due - time.monotonic())
                    if self.viewers == 0 or self.stopped:
                        break
                due = max(due + period, time.monotonic())  # late: no burst to catch up
                ok, image = capture.read()
                if not ok:
                    if isinstance(self.source, str):  # a file: loop it
                        capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                        ok, image = capture.read()
                    if not ok:
                        log.warning("the stream source %r gave no frame", self.source)
                        self.failed = "the stream source gave no frame"
                        break
                ok, jpeg = cv2.imencode(".jpg", draw(image, stream(image), legend=True))
                if not ok:
                    log.warning("the stream source %r gave a frame JPEG cannot hold", self.source)
                    self.failed = "the stream's frame could not be encoded"
                    break
                with self.cond:
                    self.frame, self.seq = jpeg.tobytes(), self.seq + 1
                    self.cond.notify_all()
        finally:
            capture.release()
            with self.cond:
                self.thread = None
                self.cond.notify_all()

    def frames(self) -> Iterator[bytes]:
        """JPEG frames for one viewer, for as long as it watches."""
        with self.cond:
            self.viewers += 1
            if self.thread is None and not self.stopped:
                self.failed = None
                self.thread = threading.Thread(target=self._run, daemon=True, name="ferkit-stream")
                self.thread.start()
            seen = self.seq
        try:
            while True:
                with self.cond:
                    self.cond.wait_for(lambda: self.seq > seen or self.thread is None, timeout=5)
                    if self.seq <= seen:
                        return
                    frame, seen = self.frame, self.seq
                yield frame
        finally:
            with self.cond:
                self.viewers -= 1


@bp.get("/video_feed")
def video_feed() -> Response:
    capture: SharedCapture = current_app.extensions["ferkit.stream"]
    slots = current_app.extensions["ferkit.live_slots"]  # a viewer holds a thread, as a camera
    client = client_address()
    refused = slots.acquire(client)
    if refused is not None:
        abort(*refused)
    frames = capture.frames()
    first = next(frames, None)
    if first is None:
        slots.release(client)
        abort(503, capture.failed or "the stream source gave no frame")

    def body():
        yield b"--frame\r\nContent-Type: image/jpeg\r\n\r\n" + first + b"\r\n"
        for frame in frames:
            yield b"--frame\r\nContent-Type: image/jpeg\r\n\r\n" + frame + b"\r\n"

    response = Response(body(), mimetype="multipart/x-mixed-replace; boundary=frame")
    response.call_on_close(lambda: slots.release(client))
    return response
