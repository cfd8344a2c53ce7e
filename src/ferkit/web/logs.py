"""Log lines that say which request or video job they belong to.

Every request gets a short id (or keeps a sane `X-Request-Id` from a proxy), sent back in
the `X-Request-Id` header; a video job logs under its job id. The id lives in a context
variable, so any `logging.getLogger("ferkit...")` call made while serving carries it.
"""

from __future__ import annotations

import contextvars
import logging
import re
import secrets
import sys
import time
from typing import TYPE_CHECKING

from flask import Flask, Response, g, request

if TYPE_CHECKING:
    from typing import TextIO

current_id: contextvars.ContextVar[str] = contextvars.ContextVar("ferkit_log_id", default="-")
FORMAT = "%(asctime)s %(levelname)s [%(log_id)s] %(name)s: %(message)s"
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
log = logging.getLogger("ferkit.web")


class _WithId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.log_id = current_id.get()
        return True


def setup(stream: TextIO | None = None, level: int = logging.INFO) -> logging.Handler:
    """Send ferkit's log lines, each with its request or job id, to `stream` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_WithId())
    handler.setFormatter(logging.Formatter(FORMAT))
    logger = logging.getLogger("ferkit")
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


def init_app(app: Flask) -> None:
    """An id per request, a line per answered request, the id in the reply's headers."""

    @app.before_request
    def _start() -> None:
        given = request.headers.get("X-Request-Id", "")
        g.log_id = given if _SANE_ID.fullmatch(given) else secrets.token_hex(4)
        current_id.set(g.log_id)
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        if "log_id" in g:
            ms = (time.perf_counter() - g.started) * 1000
            level = logging.WARNING if response.status_code >= 500 else logging.INFO
            log.log(
                level,
                "%s %s -> %s (%.0f ms)",
                request.method,
                request.path,
                response.status_code,
                ms,
            )
            response.headers["X-Request-Id"] = g.log_id
        return response

    @app.teardown_request
    def _forget(_exc) -> None:
        current_id.set("-")  # the thread's next lines belong to no request
