"""Per-client shares, counted by `client_address()`. Live viewers (camera WebSockets and
MJPEG viewers) each hold a server thread until they leave, so they are counted in all
(LIVE_MAX) and per client address (LIVE_PER_CLIENT): one client opening viewers in a loop
fills its own share, not the server. (Video jobs are shared the same way in `ferkit.web.uploads`.)
"""

from __future__ import annotations

import threading
from collections import Counter

from flask import request


def client_address() -> str:
    """The requesting client's address, what the per-client shares count by."""
    return request.remote_addr or ""


class LiveSlots:
    """Thread slots for live viewers, capped in all and per client address (0: no cap)."""

    def __init__(self, total: int, per_client: int = 0):
        self.total, self.per_client = total, per_client
        self.held: Counter[str] = Counter()
        self.lock = threading.Lock()

    def acquire(self, client: str) -> tuple[int, str] | None:
        """Take a slot for `client`; None when taken, else (HTTP status, why not)."""
        with self.lock:
            if self.per_client and self.held[client] >= self.per_client:
                return 429, (
                    f"too many live viewers from your address ({self.per_client}); "
                    "close one and try again"
                )
            if self.held.total() >= self.total:
                return 503, f"server busy: {self.total} live viewers are connected; try again later"
            self.held[client] += 1
            return None

    def release(self, client: str) -> None:
        with self.lock:
            self.held[client] -= 1
            if self.held[client] <= 0:
                del self.held[client]
