"""The edge's one reach below uvicorn: the socket's transport, found through `receive.__self__`.

With it, a stream

- writes a body chunk straight to the transport, framed as uvicorn frames it, while the socket
  has taken everything so far (`writable`, `write_chunk`): the ASGI `send` chain (middleware
  wrappers, uvicorn's checks) is most of a small write's cost, and needs a task to await it, where
  a direct write can be made by the fan-out for a stream whose task sleeps;
- leaves the socket's closing to the sweeper (`is_closing`) instead of a task per stream waiting
  on `receive`, and ends a stalled client at once (`abort`; a graceful close would wait for a
  reader that does not read).

What it relies on, in uvicorn's httptools protocol (`http="httptools"`, as `eh_runtime.serve`
configures it), versions pinned in services/sse-edge/pyproject.toml, checked by
tests/test_uvicorn_transport.py against a real uvicorn server:

- `receive` is a bound method of the connection's `RequestResponseCycle`, whose `transport` is the
  socket's transport;
- once the response has started without a length, the cycle's `chunked_encoding` is True and
  uvicorn frames each body message as `<length in hex>\\r\\n<body>\\r\\n`, keeping nothing else
  per message but `response_complete`, which only the last message sets.

Anywhere else (another server, uvicorn's h11 protocol, HTTP/1.0) `find` or `engage` answer None
or False, and the stream writes through `send` and watches `receive` as plain ASGI.
What the direct writes buy, measured: bench/RESULTS.md, "Writes straight to uvicorn's transport".
"""

import asyncio
from typing import Any, cast

from starlette.types import Receive


class UvicornTransport:
    __slots__ = ("_chunked", "_cycle", "transport")

    def __init__(self, cycle: Any, transport: asyncio.Transport) -> None:
        self._cycle = cycle
        self.transport = transport
        self._chunked = False

    @classmethod
    def find(cls, receive: Receive) -> "UvicornTransport | None":
        """The transport behind `receive`, where uvicorn serves the request; else None."""
        cycle = getattr(receive, "__self__", None)
        transport = getattr(cycle, "transport", None)
        # Duck-typed: uvloop's transports have the methods but do not derive from asyncio.Transport.
        if callable(getattr(transport, "abort", None)) and callable(getattr(transport, "is_closing", None)):
            return cls(cycle, cast(asyncio.Transport, transport))
        return None

    def engage(self) -> bool:
        """After `http.response.start`: True when body chunks may go straight to the transport."""
        self._chunked = getattr(self._cycle, "chunked_encoding", None) is True
        return self._chunked

    def writable(self) -> bool:
        """`write_chunk` would write now: engaged, and the socket has taken everything so far."""
        return self._chunked and not self.transport.get_write_buffer_size()

    def write_chunk(self, chunk: bytes) -> bool:
        """Write a non-empty body chunk as uvicorn would, if the socket has taken everything so far.

        False: the caller sends it through ASGI `send` instead, which waits for the socket to drain.
        """
        transport = self.transport
        if not self._chunked or transport.get_write_buffer_size():
            return False
        if not transport.is_closing():
            transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        return True

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def abort(self) -> None:
        self.transport.abort()
