"""`GET /api/v1/events` served in front of FastAPI's routing, for the memory of idle streams.

An event stream lives for hours, and everything on the call stack of its ASGI app lives as long:
through FastAPI's router, route and dependency layers that is a dozen coroutine frames, exit
stacks and exception-handling wrappers, about two thirds of an idle connection's memory
(tracemalloc, 2,000 idle streams). This middleware answers the event stream itself, below only
Starlette's error middleware: it parses the same parameters and calls the very route function
FastAPI documents (`routes.subscribe_events`), so validation, errors and the OpenAPI description stay
one piece of code; only the dispatch is shorter.
"""

from typing import Annotated, Any, Final

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import Field, TypeAdapter, ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from eh_runtime.request_context import RequestContextMiddleware
from sse_edge.http.event_query import MAX_REPLAY_LIMIT
from sse_edge.http.event_routes import EVENTS_PATH, subscribe_events

_LIMIT: Final = TypeAdapter(Annotated[int, Field(ge=1, le=MAX_REPLAY_LIMIT)])


class EventStreamDispatch:
    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        # Streams keep the request id, the access log line and the HTTP metrics of every route.
        self._stream = RequestContextMiddleware(self._serve_stream)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == EVENTS_PATH:
            await self._stream(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _serve_stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._open(Request(scope, receive))
        await response(scope, receive, send)

    async def _open(self, request: Request) -> Response:
        query = request.query_params
        try:
            raw_limit = query.get("limit")
            return await subscribe_events(
                request,
                type=query.getlist("type"),
                resource_id=query.getlist("resource_id"),
                start_time=query.get("start_time"),
                end_time=query.get("end_time"),
                limit=None if raw_limit is None else _parse_limit(raw_limit),
                snapshot=query.get("snapshot"),
                last_event_id=query.get("last_event_id"),
                last_event_id_header=request.headers.get("last-event-id"),
            )
        except (HTTPException, RequestValidationError) as error:
            # The handlers the service registered, so that errors read as on every other route.
            handlers = self.fastapi_app.exception_handlers
            handler: Any = next(handlers[kind] for kind in type(error).__mro__ if kind in handlers)
            response: Response = await handler(request, error)
            return response


def _parse_limit(raw: str) -> int:
    try:
        return _LIMIT.validate_python(raw, strict=False)
    except ValidationError as error:
        raise RequestValidationError(
            [{**item, "loc": ("query", "limit", *item["loc"])} for item in error.errors()]
        ) from None
