"""The web server: gunicorn, one process (one model in memory), a buffering front.

Gunicorn's threaded worker hands a connection to a thread as soon as it sends a byte, and
the thread then blocks until the request has arrived: 16 clients sending a header line
every few seconds held all 16 threads and nobody else was served. Here the worker's event
loop reads each request (head and body) itself, without a thread, under deadlines, and
hands a thread only a complete request. A body over the upload cap is answered 413 on
the bytes read, chunked or not, and nothing of it reaches the app. Live WebSockets do
hold a thread each: they are capped (`LIVE_MAX`, a clear "busy" message beyond) and
closed after `LIVE_IDLE_S` without a frame, and the pool keeps `RESERVED_THREADS` for
requests. Requests being read are capped in number (`MAX_FRONTS`: past it, the one that
sent nothing for longest is answered 503 and closed) and their bodies in bytes, all
together (`PARKED_UPLOADS` uploads at the cap): 1,000 clients that each sent 1 MB and
went silent held every connection (no /api/health answered in 30 s), and 50 held 2 GB of
disk. Errors that gunicorn itself answers are in JSON too. `bench/hostile_clients.py` measures
this against the plain threaded worker.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import socket
import sys
import time
from functools import partial
from typing import TYPE_CHECKING

from gunicorn import http
from gunicorn.app.base import BaseApplication
from gunicorn.http.errors import ParseException
from gunicorn.workers.gthread import ThreadWorker

from ferkit.web.config import DEFAULTS
from ferkit.web.front import MAX_HEAD_BYTES, Front, Refused

if TYPE_CHECKING:
    from collections.abc import Callable

    from flask import Flask

DRAIN_S = 2.0  # how long a closing connection's remaining bytes are read and discarded
STOP_GRACE_S = 1.0  # a stop lets requests in progress finish for this long
RESERVED_THREADS = 16  # threads never given to live WebSockets
TURN_BYTES = 1024 * 1024  # what one connection may be read in one turn of the event loop
ROUND_BYTES = 4 * TURN_BYTES  # what all of them may be read in one turn (the rest: later)
ACCEPT_BATCH = 64  # connections accepted in one turn (gunicorn accepts one)
WORKER_CONNECTIONS = 1000  # gunicorn accepts no more connections past these
MAX_FRONTS = WORKER_CONNECTIONS // 2  # requests being read at once
PARKED_UPLOADS = 5  # bodies being read, all together, within 5 uploads at the cap
STALLED_S = 1.0  # a body that sent nothing for this long may be dropped to make room
MAX_DRAINING = 100  # refused connections read and discarded at once; past it, closed at once
STOP_WAIT_S = 5.0  # a stop waits this long for threads still serving, then cleans up


def _json_error(code: int, reason: str, message: str) -> bytes:
    """A whole HTTP answer, the error in JSON as the app gives it, closing the connection."""
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class BufferingWorker(ThreadWorker):
    """gthread whose event loop reads whole requests before a thread is given one."""

    def init_process(self):
        self.fronts: dict = {}  # connections whose request is being read
        self.draining: dict = {}  # refused connections: read and discarded until a deadline
        self.serving: set = set()  # connections a thread is serving
        self.abandoned: set = set()  # those a stop no longer waits for
        self.round_bytes = 0  # bytes read from requests in this turn of the event loop
        self.stopped_at: float | None = None
        super().init_process()

    def _app_config(self):
        return getattr(self.wsgi, "config", {})

    def accept(self, listener):
        """Accept up to ACCEPT_BATCH waiting connections a turn: with one a turn, a client
        queued behind 1,000 connections waited 1,000 turns of the event loop."""
        for _ in range(ACCEPT_BATCH):
            accepted = self.nr_conns
            if accepted >= self.worker_connections:
                return
            super().accept(listener)
            if self.nr_conns == accepted:
                return  # none left waiting

    def enqueue_req(self, conn):
        if getattr(conn, "ferkit_ready", False):
            conn.ferkit_ready = False
            return super().enqueue_req(conn)
        config = self._app_config()
        cap = config.get("MAX_CONTENT_LENGTH") or DEFAULTS["MAX_CONTENT_LENGTH"]
        if len(self.fronts) >= MAX_FRONTS:  # the one that sent nothing for longest goes
            stalest = min(self.fronts, key=lambda c: self.fronts[c].active)
            self._drop(stalest, Refused(503, "Service Unavailable", "server busy; try again"))
        self.fronts[conn] = Front(cap, config.get("SPOOL_DIR"))
        conn.initialized = conn.data_ready = True  # the parser is set when the request is in
        conn.sock.setblocking(False)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._readable, conn))
        tail, conn.ferkit_tail = getattr(conn, "ferkit_tail", b""), b""
        if tail:  # a pipelined request read with the previous one
            self._feed(conn, tail)

    def _readable(self, conn, _sock) -> None:
        """Read what has arrived, up to TURN_BYTES: a fast sender waits for the next turn
        (the selector fires again) instead of holding the loop that serves everyone. All
        connections' bodies are read up to ROUND_BYTES a turn: 1,000 clients whose bodies
        had all arrived made one turn write 1 GB to disk while /api/health waited."""
        for _ in range(TURN_BYTES // (256 * 1024)):
            front = self.fronts.get(conn)
            if front is None or (front.body is not None and self.round_bytes >= ROUND_BYTES):
                return  # (a head is read whatever the turn's bodies: it is small)
            try:
                data = conn.sock.recv(256 * 1024)
            except BlockingIOError:
                return
            except OSError:
                return self._drop(conn)
            if not data:
                return self._drop(conn)
            self.round_bytes += len(data)
            self._feed(conn, data)

    def _feed(self, conn, data: bytes) -> None:
        front = self.fronts[conn]
        front.active = time.monotonic()
        try:
            self._make_room(conn, len(data))
            front.feed(data)
            if front.continue_:
                front.continue_ = False
                conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        except Refused as refused:
            return self._drop(conn, refused)
        except OSError:
            return self._drop(conn)
        if front.done:
            self._forget(conn)
            self._hand_over(conn, front)

    def _make_room(self, conn, more: int) -> None:
        """Keep the bodies being read within PARKED_UPLOADS uploads at the cap: drop stalled
        ones (the stalest first) to make room for `more` bytes of `conn`'s, else refuse
        `conn`'s (503)."""
        parked = sum(f.received for f in self.fronts.values())
        over = parked + more - PARKED_UPLOADS * self.fronts[conn].cap
        if over <= 0:
            return
        now = time.monotonic()
        stalled = sorted(
            (c for c, f in self.fronts.items() if c is not conn and now - f.active > STALLED_S),
            key=lambda c: self.fronts[c].active,
        )
        for other in stalled:
            over -= self.fronts[other].received
            self._drop(other, Refused(503, "Service Unavailable", "request stalled; dropped"))
            if over <= 0:
                return
        raise Refused(503, "Service Unavailable", "server busy receiving uploads; try again")

    def _hand_over(self, conn, front: Front) -> None:
        conn.ferkit_tail, conn.ferkit_upgrade = front.tail, front.upgrade
        conn.parser = http.get_parser(self.cfg, front.request(), conn.client)
        conn.sock.setblocking(True)
        conn.ferkit_ready = True
        self.serving.add(conn)
        self.enqueue_req(conn)

    def _forget(self, conn) -> Front:
        front = self.fronts.pop(conn)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        return front

    def _drop(self, conn, refused: Refused | None = None) -> None:
        """Close a connection whose request is not served; with `refused`, answer it first
        and read what the client still sends for a while, so it sees the answer (closing
        with unread bytes would reset the connection before the client reads it)."""
        front = self._forget(conn)
        if front.body is not None:
            front.body.close()
        if refused is None:
            return self._close(conn)
        try:
            conn.sock.send(_json_error(refused.code, refused.reason, str(refused)))
        except OSError:
            return self._close(conn)
        self._linger(conn)

    def _linger(self, conn) -> None:
        """Half-close, then read and discard in the event loop until the client closes or
        DRAIN_S passes. (gunicorn's own graceful close waits up to 2 s in the event loop
        itself: clients that never close stalled every other connection.)"""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
        except OSError:
            return self._close(conn)
        if len(self.draining) >= MAX_DRAINING:  # the oldest is closed now (dicts keep order)
            self._close(next(iter(self.draining)))
        self.draining[conn] = time.monotonic() + DRAIN_S
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._discard, conn))

    def _discard(self, conn, _sock) -> None:
        try:
            for _ in range(TURN_BYTES // (256 * 1024)):  # the rest in later turns
                if not conn.sock.recv(256 * 1024):
                    break
            else:
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        self._close(conn)  # the client finished sending (or went away)

    def _close(self, conn) -> None:
        if self.draining.pop(conn, None) is not None:
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self):
        """Also close requests that arrive too slowly (or all of them when stopping), and,
        STOP_GRACE_S into a stop, the sockets of what still holds a thread (live cameras,
        MJPEG viewers), so the worker is done well before gunicorn's graceful timeout."""
        super().murder_pending()
        self.round_bytes = 0  # called once a turn of the event loop
        now = time.monotonic()
        if not self.alive:
            self.stopped_at = self.stopped_at or now
            if now - self.stopped_at > STOP_GRACE_S:
                for conn in self.serving:
                    try:
                        conn.sock.shutdown(socket.SHUT_RDWR)  # its thread's next I/O fails
                    except OSError:
                        pass
            if now - self.stopped_at > STOP_WAIT_S:
                # a thread still busy (a long decode) is not waited for: gunicorn would wait
                # up to its graceful timeout, and the master kills the worker then, before
                # the app's files are removed; the worker's exit ends that thread
                self.nr_conns -= len(self.serving)
                self.abandoned |= self.serving
                self.serving = set()
        for conn in [c for c, f in self.fronts.items() if not self.alive or f.late(now)]:
            if self.alive:
                self._drop(conn, Refused(408, "Request Timeout", "request too slow"))
            else:
                self._drop(conn, Refused(503, "Service Unavailable", "the server is stopping"))
        for conn in [c for c, until in self.draining.items() if not self.alive or until < now]:
            self._close(conn)

    def handle_error(self, req, client, addr, exc):
        """gunicorn's own answer to a request it could not serve, in JSON rather than HTML:
        a request its parser or environment refused (a `SCRIPT_NAME` header that is not a
        prefix of the path) is the client's 400; anything else a 500, logged."""
        if isinstance(exc, ParseException):
            code, reason, message = 400, "Bad Request", str(exc)
            self.log.info("refused a request from %s: %s", (addr or ("",))[0], exc)
        else:
            code, reason, message = 500, "Internal Server Error", "internal server error"
            self.log.exception("error handling a request")
        try:
            client.sendall(_json_error(code, reason, message))
        except OSError:
            pass

    def finish_request(self, conn, fs):
        if conn in self.abandoned:
            return  # counted out already by a stop that did not wait for it
        self.serving.discard(conn)
        if getattr(conn, "ferkit_upgrade", False):
            # A WebSocket's thread owns its socket and closes it; end its reads with EOF
            # (what was sent, the close frame included, is still delivered).
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed already
            self.nr_conns -= 1
            return
        result = None if fs.cancelled() or fs.exception() else fs.result()
        if result is False:  # served, and the connection is not kept alive
            return self._linger(conn)
        if result is True and getattr(conn, "ferkit_tail", b""):
            return self.enqueue_req(conn)  # a pipelined request already read
        return super().finish_request(conn, fs)


def _exit_worker(on_exit, server, worker) -> None:
    """Stop the app in order, then end the worker process at once.

    The master process loaded the model (to refuse a bad one before forking), so ONNX
    Runtime's global state came into the worker by fork; destroying it at interpreter exit
    joins threads that exist only in the master, which aborted the worker
    (`std::system_error: Invalid argument`). Like multiprocessing's forked children, the
    worker leaves with os._exit once its own threads are stopped and its files removed.
    """
    status = 0
    try:
        on_exit(getattr(worker, "wsgi", None))
    except Exception:
        logging.getLogger(__name__).exception("the app did not stop cleanly")
        status = 1
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


WORKERS = {"buffering": f"{__name__}.BufferingWorker", "gthread": "gthread"}


def run(
    app_factory: Callable[[], Flask],
    host: str,
    port: int,
    threads: int,
    on_exit: Callable[[Flask | None], None],
    worker: str = "buffering",
) -> None:
    """Gunicorn with one worker process and the buffering worker; Ctrl-C or SIGTERM stops it.

    The app is created in the worker process, after the fork, so its threads live there;
    `on_exit(app)` runs in the worker as it exits (stop threads, delete files). `worker`
    "gthread" is gunicorn's own threaded worker, for comparison (bench/hostile_clients.py).
    """

    class Server(BaseApplication):
        def load_config(self):
            options = {
                "bind": f"{host}:{port}",
                "workers": 1,
                "worker_class": WORKERS[worker],
                "threads": threads,
                "timeout": 300,
                # the worker needs STOP_WAIT_S and its app's stop: the master kills it after
                "graceful_timeout": 20,
                "worker_connections": WORKER_CONNECTIONS,
                "control_socket_disable": True,  # unused; two servers would share its path
                # the front bounds the head (MAX_HEAD_BYTES, a JSON 431): gunicorn's own
                # smaller limits would answer a head the front passed in HTML
                "limit_request_line": 0,
                "limit_request_fields": 32768,
                "limit_request_field_size": MAX_HEAD_BYTES,
                "worker_exit": partial(_exit_worker, on_exit),
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return app_factory()

    Server().run()
