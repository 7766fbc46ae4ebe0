"""The ASGI response that writes one client's event stream.

Written as a plain ASGI callable rather than on top of StreamingResponse: it must react to three
things at once (frames ready, the client going away, the process shutting down) without a task
per event, and write everything ready in one `send`.
"""

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, Final

import structlog
from prometheus_client import Counter, Gauge
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sse_edge.fanout import ClientClosed, ClientStream, FanoutIndex
from sse_edge.sse import HEARTBEAT_FRAME, control_frame, retry_frame

log = structlog.get_logger(__name__)

CONNECTIONS = Gauge("eventhandler_edge_connections", "SSE clients connected now.")
CONNECTIONS_CLOSED = Counter(
    "eventhandler_edge_connections_closed",
    "SSE streams ended, by reason (disconnected, overflow, shutdown, send_timeout).",
    ["reason"],
)
BYTES_WRITTEN = Counter("eventhandler_edge_bytes_written", "Bytes written to SSE clients.")

SSE_HEADERS: Final = {
    # Proxies (nginx) must pass every frame through at once, not buffer or cache the stream.
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
}


class SendTimeout(Exception):
    """The client did not take a write in time: its socket is stalled."""


class EventStreamResponse(Response):
    """A Starlette response (so FastAPI returns it as is) with its own streaming loop."""

    media_type = "text/event-stream"

    def __init__(
        self,
        client: ClientStream,
        index: FanoutIndex,
        *,
        opening: bytes,
        replay: Callable[[ClientStream], Awaitable[None]],
        heartbeat_seconds: float,
        send_timeout_seconds: float,
        shutdown_retry_ms: tuple[int, int],
    ) -> None:
        self.client = client
        self.index = index
        self.opening = opening
        self.replay = replay
        self.heartbeat_seconds = heartbeat_seconds
        self.send_timeout_seconds = send_timeout_seconds
        self.shutdown_retry_ms = shutdown_retry_ms
        self.status_code = 200
        self.background = None
        self.init_headers(SSE_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = self.client
        # The route registered the client in the index before it read the stream's end; from
        # here on the replay fills the history queue and the pump writes what is ready.
        CONNECTIONS.inc()
        watcher = asyncio.create_task(self._watch_disconnect(receive))
        replay = asyncio.create_task(self._run_replay())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await self._write(send, self.opening)
            await self._pump(send)
        except SendTimeout:
            client.close("send_timeout")
            log.warning(
                "sse client stalled, disconnected", peer=client.peer, timeout_s=self.send_timeout_seconds
            )
        finally:
            self.index.remove(client)
            replay.cancel()
            watcher.cancel()
            CONNECTIONS.dec()
            CONNECTIONS_CLOSED.labels(client.close_reason or "error").inc()

    async def _pump(self, send: Send) -> None:
        client = self.client
        while client.close_reason is None:
            if not client.wake.is_set():
                try:
                    async with asyncio.timeout(self.heartbeat_seconds):
                        await client.wake.wait()
                except TimeoutError:
                    await self._write(send, HEARTBEAT_FRAME)
                    continue
            if client.close_reason is None:
                await self._write(send, client.take())
        if client.close_reason == "disconnected":
            return
        # Whatever was queued still goes out, in order, before the control event that ends it.
        farewell = client.farewell or self._farewell(client.close_reason)
        await self._write(send, client.take() + farewell)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _farewell(self, reason: str) -> bytes:
        if reason == "overflow":
            return control_frame(
                "stream.overflow",
                {"reason": "the client did not keep up; reconnect with Last-Event-ID to resume"},
            )
        if reason == "shutdown":
            # Spread reconnections over a window so that a restart is not a thundering herd.
            retry = random.randint(*self.shutdown_retry_ms)  # noqa: S311 - jitter, not security
            return retry_frame(retry) + control_frame(
                "stream.shutdown", {"reason": "server shutting down", "retry_ms": retry}
            )
        return b""

    async def _write(self, send: Send, chunk: bytes) -> None:
        if not chunk:
            return
        try:
            async with asyncio.timeout(self.send_timeout_seconds):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except TimeoutError:
            raise SendTimeout from None
        BYTES_WRITTEN.inc(len(chunk))

    async def _run_replay(self) -> None:
        try:
            await self.replay(self.client)
        except ClientClosed:
            pass
        except Exception as error:  # NATS trouble mid-replay: the client resumes from its last id
            log.warning("replay failed, closing the stream", peer=self.client.peer, error=repr(error))
            self.client.close("replay_failed")

    async def _watch_disconnect(self, receive: Receive) -> None:
        while True:
            message: dict[str, Any] = dict(await receive())
            if message["type"] == "http.disconnect":
                self.client.close("disconnected")
                return
