"""The limits uvicorn's httptools protocol lacks: head size, header count, head and body time, and
a connection cap that sheds idle connections first.

uvicorn with httptools bounds neither the size of a request head (one 256 MiB header line was
accepted: +367 MB of memory) nor the time a client may take to send it (500 slowloris
connections were never timed out, and 20,000 connections that each sent one byte took every file
descriptor of the collector). h11 bounds the size only, at a third of httptools' speed.

This module subclasses uvicorn's `HttpToolsProtocol` and goes under it: it overrides
`data_received` (copied from uvicorn, plus the byte count), the parser callbacks `on_url`,
`on_header`, `on_headers_complete`, `on_message_complete`, and reads `connections`, `cycle`,
`parser`, `transport` and `loop`. uvicorn is pinned in `libs/runtime/pyproject.toml` to the
versions this was checked against; `libs/runtime/tests/test_http_limits.py` speaks raw HTTP to a
served app and fails when an upgrade turns any of these limits off.

- Head: the request line and headers, at most `max_head_bytes` and `max_headers` (431), received
  within `head_timeout` of the connection opening or of its first byte after a response (408).
  Raw bytes are counted as they arrive, so a header line that never ends is cut off at the limit,
  not buffered (httptools would concatenate it piece by piece).
- Body: received within `body_timeout` of the head (408).
- Connections: beyond `max_connections`, the oldest connection that is idle or still sending its
  head is closed for the new one; when every connection is busy, the new one gets a 503. File
  descriptors are kept for `/healthz`, ingestion and NATS instead of going to idle sockets.
"""

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import httptools
import pydantic_core
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_head_bytes: int
    max_headers: int
    head_timeout: float
    body_timeout: float
    max_connections: int


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; the answer is in `status` and `message`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


_HEAD_TOO_LARGE: Final = "request_head_too_large"


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; make one class per server with
    `bounded_protocol`, which gives it its limits and its own register of idle connections."""

    # Slots, not instance attributes: uvicorn's protocol already has about thirty, and past that
    # CPython gives each instance a dictionary of its own (measured: +1.3 KB per connection).
    __slots__ = ("_head_bytes", "_head_size", "_header_count", "_in_head", "_refusal", "_timer")

    limits: ClassVar[HttpLimits]
    # Connections that hold no request (idle after a response, or still sending a head), oldest
    # first: a dict keeps insertion order and removes in O(1).
    idle: ClassVar[dict["BoundedHttpToolsProtocol", None]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._head_size = 0
        self._header_count = 0
        self._timer: asyncio.TimerHandle | None = None
        self._refusal: _Refused | None = None

    # Connection lifecycle

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections and not self._shed_an_idle_connection():
            self._answer(503, "too_many_connections", "the server holds as many connections as it may; retry")
            return
        self._become_idle()
        self._start_timer(self.limits.head_timeout, "request head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self.idle.pop(self, None)
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._in_head:
            self._become_idle()  # the keep-alive timer of uvicorn runs; ours starts with a byte

    def _become_idle(self) -> None:
        self.idle[self] = None

    def _shed_an_idle_connection(self) -> bool:
        for connection in self.idle:
            if connection is not self:
                self.idle.pop(connection)
                connection._answer(503, "connection_shed", "closed to make room for others; retry")
                return True
        return False

    # Bytes and parser callbacks

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
            if self._timer is None:
                self._start_timer(self.limits.head_timeout, "request head")
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._answer(self._refusal.status, self._refusal.code, self._refusal.message)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head and self._head_bytes > self.limits.max_head_bytes:
            self._answer(431, _HEAD_TOO_LARGE, self._too_large_message())

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_size = 0
        self._header_count = 0

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refuse(431, _HEAD_TOO_LARGE, f"more than {self.limits.max_headers} header fields")
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self.idle.pop(self, None)
        self._cancel_timer()
        self._start_timer(self.limits.body_timeout, "request body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._cancel_timer()
        self._in_head = True
        super().on_message_complete()

    def _count_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.limits.max_head_bytes:
            self._refuse(431, _HEAD_TOO_LARGE, self._too_large_message())

    def _too_large_message(self) -> str:
        return f"the request line and headers exceed {self.limits.max_head_bytes} bytes"

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._refusal = _Refused(status, code, message)
        raise self._refusal

    # Timers and answers

    def _start_timer(self, seconds: float, what: str) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(seconds, self._time_out, what)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _time_out(self, what: str) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # too late for an answer
            return
        self._answer(408, "request_timeout", f"the {what} did not arrive in time")

    def _answer(self, status: int, code: str, message: str) -> None:
        """Answer `status` (JSON, as the apps do) and close: no ASGI task is started for it."""
        self._cancel_timer()
        self.idle.pop(self, None)
        if self.transport.is_closing():
            return
        body = pydantic_core.to_json({"detail": message, "code": code})
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: ",
            str(len(body)).encode(),
            b"\r\nconnection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app reads a disconnect, not a body that never ends
            self.cycle.message_event.set()


def bounded_protocol(limits: HttpLimits) -> type[BoundedHttpToolsProtocol]:
    """A protocol class for `uvicorn.Config(http=...)`, with `limits` and a register of its own."""
    namespace = {"limits": limits, "idle": {}, "__slots__": ()}
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), namespace)
