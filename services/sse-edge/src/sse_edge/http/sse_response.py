"""The ASGI response that writes one client's event stream.

Written as a plain ASGI callable rather than on top of StreamingResponse: it must react to three
things at once (frames ready, the client going away, the process shutting down) without a task
per event, and write everything ready in one `send`.

Its task writes the opening, history, heartbeats, farewells, and whatever the socket was slow to
take. Live frames for a stream whose socket keeps up are written by the fan-out's flush instead,
through `write_now`, while the task sleeps (`live.subscriber.Subscriber.frames_arrived`).
"""

import asyncio
import math
import random
import time
from collections.abc import Callable
from typing import Any, Final

import structlog
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sse_edge.history.replay import Replay
from sse_edge.http.detached_response import hand_over
from sse_edge.http.sse_frames import HEARTBEAT_FRAME, control_frame, retry_frame
from sse_edge.http.stream_encoding import new_encoder
from sse_edge.http.uvicorn_transport import UvicornTransport
from sse_edge.http.write_pace import WritePace
from sse_edge.live.fanout import FanoutIndex
from sse_edge.live.subscriber import Subscriber, SubscriberClosed
from sse_edge.metrics import CONNECTIONS, CONNECTIONS_CLOSED, CONNECTIONS_OPENED, WRITES

log = structlog.get_logger(__name__)

SSE_HEADERS: Final = {
    # Proxies (nginx) must pass every frame through at once, not buffer or cache the stream.
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
}
_PAUSE_SLICE: Final = 0.25

_RAW_HEADERS: dict[str | None, list[tuple[bytes, bytes]]] = {}


class SseResponse(Response):
    """A Starlette response (so FastAPI returns it as is) with its own streaming loop."""

    media_type = "text/event-stream"

    def __init__(
        self,
        client: Subscriber,
        index: FanoutIndex,
        *,
        opening: bytes,
        replay: Replay,
        encoding: str | None,
        shutdown_retry_ms: tuple[int, int],
        on_close: Callable[[], None],
        pace: WritePace | None = None,
    ) -> None:
        self.client = client
        self.pace = pace if pace is not None and pace.paced else None
        if self.pace is not None:
            client.conflate_live()
        self.index = index
        self.opening = opening
        self.replay: Replay | None = replay
        self.shutdown_retry_ms = shutdown_retry_ms
        self.on_close = on_close
        self.status_code = 200
        self.background = None
        # Where uvicorn serves the stream: its socket, written straight to once the response started.
        self._transport: UvicornTransport | None = None
        self._writer_task: asyncio.Task[None] | None = None  # cancelled to end a stalled write without it
        # Each client has its own compressor (`stream_encoding`), paid in CPU per write and memory.
        self._compressor = new_encoder(encoding) if encoding is not None else None
        # Every stream's headers are the same list: one per encoding, not one per connection.
        shared = _RAW_HEADERS.get(encoding)
        if shared is None:
            headers = dict(SSE_HEADERS)
            if encoding is not None:
                headers |= {"content-encoding": encoding, "vary": "accept-encoding"}
            self.init_headers(headers)
            _RAW_HEADERS[encoding] = self.raw_headers
        else:
            self.raw_headers = shared

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not hand_over(scope, self):
            await self.run(scope, receive, send)

    def abandon(self) -> None:
        """The request failed before the stream started: unregister the subscriber."""
        self.index.remove(self.client)
        self.on_close()

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Write the stream until it ends (called below FastAPI's stack: `detached_response`)."""
        client = self.client
        transport = self._transport = UvicornTransport.find(receive)
        if transport is None:
            # Without the transport, the sweeper ends a stalled connection by cancelling the write.
            self._writer_task = asyncio.current_task()
        client.attach_writer(self)
        # The route registered the client in the index before it read the stream's end; from
        # here on the replay fills the history queue and the pump writes what is ready.
        CONNECTIONS.inc()
        CONNECTIONS_OPENED.inc()
        # Idle streams are most streams: where the sweeper can see the socket close, and where
        # there is no history to read, they cost no task besides their own.
        watcher = None
        if transport is None:
            watcher = asyncio.create_task(self._watch_disconnect(receive))
        # What only the start needs is let go: an idle stream holds its frame for hours.
        plan, self.replay = self.replay, None
        replay = None
        if plan is not None and plan.live_only:
            plan.go_live(client)
        elif plan is not None and plan.resume_from_memory_now(client):
            pass  # the history and stream.caught_up are queued: they go out with the opening
        elif plan is not None:
            replay = asyncio.create_task(self._run_replay(plan))
        del plan
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if transport is not None:
                transport.engage()
            # The opening and whatever is ready already (a resume from memory: all of its history)
            # in one write.
            opening, self.opening = self.opening, b""
            ready, count, oldest = client.take()
            await self._write(send, opening + ready)
            WRITES.record(len(opening) + len(ready), count, oldest)
            del opening, ready
            await self._pump(send)
        except asyncio.CancelledError:
            if client.close_reason != "send_timeout":
                raise
            # The sweeper cancelled a write stuck on a stalled socket (no transport to abort).
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
        finally:
            self.index.remove(client)
            # Nothing of a closed stream may point back at it (docs: "A closed stream is freed at
            # once"): the subscriber held this response as its writer, this response its task.
            client.detach_writer()
            self._writer_task = None
            self.on_close()
            if replay is not None:
                replay.cancel()
            if watcher is not None:
                watcher.cancel()
            CONNECTIONS.dec()
            CONNECTIONS_CLOSED.labels(client.close_reason or "error").inc()

    async def _pump(self, send: Send) -> None:
        client = self.client
        while client.close_reason is None:
            chunk, count, oldest = client.take()
            if chunk:
                started = time.monotonic()
                await self._write(send, chunk)
                WRITES.record(len(chunk), count, oldest)
                if self.pace is not None:
                    await self._pause(self.pace.pause_after(len(chunk), time.monotonic() - started))
            elif client.take_heartbeat():
                await self._write(send, HEARTBEAT_FRAME)
                WRITES.record(len(HEARTBEAT_FRAME), 0, 0.0)
            else:
                await client.park()
        if client.close_reason in ("disconnected", "send_timeout"):
            return
        # Queued history still goes out, in order, before the control event that ends it.
        farewell = client.farewell or self._farewell(client.close_reason)
        chunk, count, oldest = client.take()
        await self._write(send, chunk + farewell, final=True)
        WRITES.record(len(chunk) + len(farewell), count, oldest)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pause(self, seconds: float) -> None:
        """Wait `seconds` before the next write, looking at the stream's state every quarter second
        so that a close or a shutdown is not held up by a long pause."""
        deadline = time.monotonic() + seconds
        for _ in range(math.ceil(seconds / _PAUSE_SLICE)):
            if self.client.close_reason is not None:
                return
            await asyncio.sleep(max(0.0, min(_PAUSE_SLICE, deadline - time.monotonic())))

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

    async def _write(self, send: Send, chunk: bytes, *, final: bool = False) -> None:
        if not chunk:
            return
        client = self.client
        if self._compressor is not None:
            # Flushed after every write: compression must never hold an event back.
            chunk = self._compressor.encode(chunk, final=final)
        if self._write_direct(chunk, time.monotonic()):
            return
        # Data is waiting in the transport: uvicorn's send waits for it to drain, and the sweeper
        # sees how long that takes.
        now = time.monotonic()
        client.begin_write(now)
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        client.end_write(now)

    # -- what the subscriber asks of its writer (`live.subscriber.StreamWriter`) --------------------

    @property
    def socket_closed(self) -> bool:
        transport = self._transport
        return transport is not None and transport.is_closing()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()  # a graceful close would wait for a reader that does not read
        elif self._writer_task is not None:
            self._writer_task.cancel()

    def write_now(self, now: float) -> bool:
        """Write what the subscriber has ready straight to the socket, without the task: where
        the socket took everything so far and the stream is not paced (a paced stream's task
        waits between writes). The same write as `_write`'s direct path, counted the same."""
        transport = self._transport
        if transport is None or self.pace is not None or not transport.writable():
            return False
        chunk, count, oldest = self.client.take()
        if chunk:
            WRITES.record(len(chunk), count, oldest)
            if self._compressor is not None:
                chunk = self._compressor.encode(chunk)
            self._write_direct(chunk, now)  # writable: nothing waits in the transport, it writes
            WRITES.from_fanout += 1
        return True

    def _write_direct(self, chunk: bytes, now: float) -> bool:
        """`chunk` (encoded already) straight to uvicorn's transport, if the socket has taken
        everything so far; False when it must go through ASGI `send` and wait."""
        transport = self._transport
        if transport is None or not transport.write_chunk(chunk):
            return False
        WRITES.direct += 1
        self.client.end_write(now)
        return True

    async def _run_replay(self, replay: Replay) -> None:
        try:
            await replay(self.client)
        except SubscriberClosed:
            pass
        except Exception as error:  # NATS trouble mid-replay: the client resumes from its last id
            log.warning("replay failed, closing the stream", peer=self.client.peer, error=repr(error))
            # Never a silent close: a browser would reconnect in a loop without knowing why.
            reason = "replay failed; reconnect with Last-Event-ID to resume"
            self.client.close(
                "replay_failed", control_frame("stream.end", {"reason": reason, "last_seq": None})
            )

    async def _watch_disconnect(self, receive: Receive) -> None:
        while True:
            message: dict[str, Any] = dict(await receive())
            if message["type"] == "http.disconnect":
                self.client.close("disconnected")
                return
