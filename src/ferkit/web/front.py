"""Reading one request, head and body, without a thread: what the server's event loop does
for every connection before a thread is given a complete request (`ferkit.web.server`).
A malformed head, a body over the upload cap or one sent too slowly is refused in JSON on
the bytes read; bodies above SPOOL_BYTES wait in an unnamed file, not in memory.
"""

from __future__ import annotations

import re
import tempfile
import time
from typing import TYPE_CHECKING

from ferkit.web.config import too_large_message

if TYPE_CHECKING:
    from collections.abc import Iterator

MAX_HEAD_BYTES = 64 * 1024  # request line and headers
HEAD_TIMEOUT_S = 10.0  # the whole head must arrive within this
BODY_GRACE_S, BODY_MIN_RATE = 10.0, 16 * 1024  # then at least 16 KB/s on average
SPOOL_BYTES = 256 * 1024  # bodies above this wait in an unnamed file, not in memory
# chunks past the first SMALL_CHUNKS must average MIN_CHUNK_BYTES: each costs the event loop
# a parse (clients send 8-64 KB chunks; a flood of 1-byte ones held every other request)
SMALL_CHUNKS, MIN_CHUNK_BYTES = 1024, 256
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # a method or header name (RFC 9110)
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # not allowed in a header value
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
_LENGTH = re.compile(rb"[0-9]{1,15}")


class Refused(Exception):
    """A request refused while it is read: its status, reason phrase and JSON message."""

    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason = code, reason


def _parse_head(lines: list[bytes]) -> dict[bytes, bytes]:
    """Header names (lowercase) to values (lowercase), refusing in JSON what gunicorn's
    parser would refuse in HTML: a malformed request line, header line or Content-Length."""
    parts = lines[0].split(b" ") if lines else []
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise Refused(400, "Bad Request", "malformed request line")
    if parts[2] not in (b"HTTP/1.0", b"HTTP/1.1"):
        raise Refused(505, "HTTP Version Not Supported", "HTTP/1.0 and HTTP/1.1 only")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name) or _CONTROL.search(value):
            raise Refused(400, "Bad Request", "malformed header line")
        name, value = name.lower(), value.strip(b" \t").lower()
        if name == b"content-length" and headers.get(name, value) != value:
            raise Refused(400, "Bad Request", "conflicting Content-Length headers")
        if name in headers and name in (b"transfer-encoding", b"expect"):
            value = headers[name] + b", " + value  # seen as one list, so refused unless plain
        headers[name] = value
    return headers


class Front:
    """One request being read by the event loop: the head, then the body (plain or chunked)."""

    def __init__(self, cap: int, spool_dir: str | None):
        self.cap, self.spool_dir = cap, spool_dir
        self.started = self.active = time.monotonic()  # when it began, when it last sent
        self.head = bytearray()
        self.body = None  # a spooled file once the head is complete
        self.length: int | None = None  # body bytes still expected (plain bodies)
        self.chunked = False
        self.pending = bytearray()  # undecoded chunked framing
        self.state = "size"  # chunked framing: size line, data, CRLF, ..., trailer lines
        self.chunk_left = 0  # data bytes left in the current chunk
        self.trailer = 0  # trailer bytes so far
        self.chunks = 0
        self.received = 0
        self.done = False
        self.continue_ = False  # the client waits for "100 Continue" before the body
        self.upgrade = False  # a WebSocket handshake
        self.tail = b""  # bytes after this request (a pipelined next request)

    def feed(self, data: bytes) -> None:
        if self.body is None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0 or end > MAX_HEAD_BYTES:
                if len(self.head) > MAX_HEAD_BYTES:
                    raise Refused(431, "Request Header Fields Too Large", "request head too large")
                return
            data = bytes(self.head[end + 4 :])
            del self.head[end + 4 :]
            self._start_body()
        if self.chunked:
            self._feed_chunked(data)
        else:
            self._feed_plain(data)

    def _start_body(self) -> None:
        lines = bytes(self.head).split(b"\r\n")
        headers = _parse_head(lines[:-2])  # the head ends with an empty line
        self.upgrade = b"upgrade" in headers.get(b"connection", b"")
        self.body = tempfile.SpooledTemporaryFile(SPOOL_BYTES, dir=self.spool_dir)
        if headers.get(b"expect", b"100-continue") != b"100-continue":
            raise Refused(417, "Expectation Failed", "the only Expect understood is 100-continue")
        if headers.get(b"expect") == b"100-continue":  # answered here, not again by gunicorn
            self.continue_ = True
            self.head = bytearray(
                b"\r\n".join(ln for ln in lines if not ln.lower().startswith(b"expect:"))
            )
            lines = bytes(self.head).split(b"\r\n")
        coding = headers.get(b"transfer-encoding")
        if coding is not None and coding != b"chunked":
            raise Refused(501, "Not Implemented", "the only Transfer-Encoding accepted is chunked")
        if coding == b"chunked":
            self.chunked = True
            framing = (b"transfer-encoding:", b"content-length:")  # both: a smuggling attempt
            kept = [ln for ln in lines if not ln.lower().startswith(framing)]
            self.head = bytearray(b"\r\n".join(kept))  # Content-Length is added when complete
            return
        length = headers.get(b"content-length", b"0")
        if not _LENGTH.fullmatch(length):
            raise Refused(400, "Bad Request", "bad Content-Length")
        self.length = int(length)
        if self.length > self.cap:
            raise self._too_large()

    def _too_large(self) -> Refused:
        return Refused(413, "Content Too Large", too_large_message(self.cap))

    def _store(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > self.cap:
            raise self._too_large()
        self.body.write(data)

    def _feed_plain(self, data: bytes) -> None:
        take = min(len(data), self.length)
        self._store(data[:take])
        self.length -= take
        if self.length == 0:
            self.done, self.tail = True, data[take:]

    def _feed_chunked(self, data: bytes) -> None:
        self.pending += data
        while not self.done:
            if self.state == "data":
                piece = bytes(self.pending[: self.chunk_left])
                del self.pending[: len(piece)]
                self._store(piece)
                self.chunk_left -= len(piece)
                if self.chunk_left:
                    return
                self.state = "crlf"
                continue
            if self.state == "crlf":  # after a chunk's data
                if len(self.pending) < 2:
                    return
                if self.pending[:2] != b"\r\n":
                    raise Refused(400, "Bad Request", "bad chunked encoding")
                del self.pending[:2]
                self.state = "size"
                continue
            end = self.pending.find(b"\r\n")
            if end < 0:
                if len(self.pending) > 1024:
                    raise Refused(400, "Bad Request", "bad chunked encoding")
                return
            line = bytes(self.pending[:end])
            del self.pending[: end + 2]
            if self.state == "trailer":  # trailer lines, up to an empty one
                self.trailer += len(line) + 2
                if self.trailer > MAX_HEAD_BYTES:
                    raise Refused(431, "Request Header Fields Too Large", "trailer too large")
                if not line:
                    self._finish_chunked()
                continue
            size_text = line.split(b";")[0].strip(b" \t")
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise Refused(400, "Bad Request", "bad chunked encoding")
            size = int(size_text, 16)
            self.chunks += 1
            if self.chunks > SMALL_CHUNKS and self.chunks * MIN_CHUNK_BYTES > self.received:
                raise Refused(400, "Bad Request", "chunks too small (send them whole)")
            if self.received + size > self.cap:
                raise self._too_large()
            self.state, self.chunk_left = ("data", size) if size else ("trailer", 0)

    def _finish_chunked(self) -> None:
        self.head = bytearray(
            bytes(self.head[:-4]) + b"\r\nContent-Length: %d\r\n\r\n" % self.received
        )
        self.done, self.tail = True, bytes(self.pending)

    def late(self, now: float) -> bool:
        """Past the deadline: the head within HEAD_TIMEOUT_S, the body at BODY_MIN_RATE."""
        if self.body is None:
            return now - self.started > HEAD_TIMEOUT_S
        return self.received < (now - self.started - BODY_GRACE_S) * BODY_MIN_RATE

    def request(self) -> Iterator[bytes]:
        """The complete request, as the parser reads it."""
        yield bytes(self.head)
        self.body.seek(0)
        while chunk := self.body.read(SPOOL_BYTES):
            yield chunk
        self.body.close()
