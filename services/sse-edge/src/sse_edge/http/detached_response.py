"""Long-lived responses run after FastAPI's call stack has unwound, for the memory of idle streams.

An event stream lives for hours, and everything on the call stack of its ASGI app lives as long:
through FastAPI's exception, exit-stack, telemetry and body-limit layers, its router and the
route's own request handler, that is two dozen coroutine frames, closures, three exit stacks and
the keys they add to the scope, about 9 KiB of an idle stream's 25 (tracemalloc, 2,000 streams).

So the stream is served in two steps. The request goes through FastAPI like any other: routing,
dependencies (authentication, say), validation, the route function, exception handlers. The route
returns a response that, instead of streaming in place, hands its long-lived part to
`DetachedResponseMiddleware` (`hand_over`) and returns; FastAPI's layers finish and let go of
their frames. The middleware, innermost of the app's own middleware, then runs the stream with
the connection's `receive` and `send`, still inside the request context, access log and HTTP
metrics of every route. Dependencies with `yield` end when the stream starts, not when it ends.

Everything here is plain ASGI: a middleware passing its app a copy of the scope, and an app that
returns before answering when the middleware below it answers for it.
"""

import asyncio
from typing import Final, Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

# Scope keys the app's outer middleware reads back after the call (the HTTP metrics' route label).
_ROUTE_KEYS: Final = ("route", "endpoint", "router", "path_params")
_HANDOVER_KEY: Final = "sse_edge.detached_response"


class DetachedStream(Protocol):
    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the whole response."""

    def abandon(self) -> None:
        """The request failed after the hand-over, before `run`: release what it holds."""


class _Handover:
    __slots__ = ("stream",)

    def __init__(self) -> None:
        self.stream: DetachedStream | None = None


def hand_over(scope: Scope, stream: DetachedStream) -> bool:
    """Leave `stream` to the middleware below; False when there is none (then run it in place)."""
    handover = scope.get(_HANDOVER_KEY)
    if not isinstance(handover, _Handover) or handover.stream is not None:
        return False
    handover.stream = stream
    return True


class DetachedResponseMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        handover = _Handover()
        # A copy: what the layers above add to it (exit stacks, their own state) goes with them.
        inner = dict(scope)
        inner[_HANDOVER_KEY] = handover
        try:
            await self.app(inner, receive, send)
        except BaseException:
            if handover.stream is not None:
                handover.stream.abandon()
            raise
        finally:
            for key in _ROUTE_KEYS:
                if key in inner:
                    scope[key] = inner[key]
        stream = handover.stream
        if stream is not None:
            del inner, handover
            # In a task of its own: a stream wakes up for every event it writes, and resuming it
            # inside this call would resume every middleware frame above too (a tenth of the
            # edge's time with 10,000 streams at 10 events/s each). Cancelling this call cancels it.
            await asyncio.ensure_future(stream.run(scope, receive, send))
