"""The edge with every write through uvicorn's ASGI `send`: `bench_fanout.py --servers edge-asgi-send`.

The direct writes of `sse_edge.http.uvicorn_transport` are turned off; the transport is still
used to see closed sockets and to abort stalled ones. What the direct writes buy is the difference
to `edge` in the same run.
"""

from sse_edge.__main__ import main
from sse_edge.http.uvicorn_transport import UvicornTransport


def _never_direct(_transport: UvicornTransport, _chunk: bytes) -> bool:
    return False


def _never_writable(_transport: UvicornTransport) -> bool:
    return False  # so the fan-out wakes each stream's task too, as without the transport


if __name__ == "__main__":
    UvicornTransport.write_chunk = _never_direct  # type: ignore[method-assign,assignment]
    UvicornTransport.writable = _never_writable  # type: ignore[method-assign]
    main()
