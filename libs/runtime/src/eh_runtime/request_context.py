"""Per-request context: a request id and a trace id on every log line, and one access log line.

A pure ASGI middleware rather than Starlette's BaseHTTPMiddleware, because it wraps event
streams that live for hours: it must not buffer or re-wrap the response body. It also answers
an unexpected error itself: Starlette's handler for those runs outside every middleware, so its
500 would go out without the request id that the client needs to quote.
"""

import os
import re
import time
from collections.abc import Iterable
from typing import Any, Final

import pydantic_core
import structlog
from prometheus_client import Counter, Histogram
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eh_runtime.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS

log = structlog.get_logger("eh_runtime.access")

REQUEST_ID_HEADER: Final = "x-request-id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# W3C trace context: version-traceid-parentid-flags
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
# Probes and scrapes would drown the access log; they are still counted in the metrics.
_QUIET_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})


INTERNAL_ERROR: Final = "internal_error"
UNAVAILABLE: Final = "unavailable"


def current_request_id() -> str | None:
    """The id of the request being handled (None outside a request)."""
    value: Any = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None


def error_body(code: str, message: str) -> dict[str, Any]:
    """What a client gets for a failure that is not its fault: a stable code to act on, a message
    for people, and the request id to quote (the details are in the service's log under that id)."""
    return {"detail": message, "code": code, "request_id": current_request_id()}


class RequestContextMiddleware:
    """A request id on every log line, one access log line per request, and the HTTP metrics.

    `routine_routes`: route templates whose successful requests are logged at debug level only
    (a host agent's heartbeat every few seconds would otherwise be most of the log).
    """

    def __init__(self, app: ASGIApp, routine_routes: frozenset[str] = frozenset()) -> None:
        self.app = app
        self._routine_routes = routine_routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given, traceparent = _request_id_and_traceparent(scope["headers"])
        # 128 random bits in hex, as uuid4().hex without building a UUID (a storm's every request).
        request_id = given if _SAFE_REQUEST_ID.fullmatch(given) else os.urandom(16).hex()
        trace = _TRACEPARENT.fullmatch(traceparent)
        bound = {"request_id": request_id} | ({"trace_id": trace[1]} if trace else {})
        status = 500
        started = time.perf_counter()

        started_response = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        with structlog.contextvars.bound_contextvars(**bound):
            try:
                await self.app(scope, receive, send_with_request_id)
            except ClientDisconnect:
                # The client left (or its body timed out, and the server answered and closed).
                log.info("client disconnected before the request was read", path=scope["path"])
            except Exception:
                log.exception("unhandled error", method=scope["method"], path=scope["path"])
                if started_response:
                    raise  # too late for an answer; the server closes the connection
                body = error_body(INTERNAL_ERROR, "internal error; quote the request id when reporting it")
                await send_with_request_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": pydantic_core.to_json(body)})
            finally:
                elapsed = time.perf_counter() - started
                route = _route_template(scope)
                counted, timed = _metrics_of(route, scope["method"], status)
                counted.inc()
                timed.observe(elapsed)
                if scope["path"] not in _QUIET_PATHS:
                    routine = status < 400 and route in self._routine_routes
                    (log.debug if routine else log.info)(
                        "request",
                        method=scope["method"],
                        path=scope["path"],
                        status=status,
                        duration_ms=round(elapsed * 1000, 2),
                        client=scope["client"][0] if scope.get("client") else None,
                    )


def _request_id_and_traceparent(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, str]:
    """The two headers read here, without making text of every header of the request."""
    request_id = traceparent = ""
    for name, value in headers:
        if len(name) == len(REQUEST_ID_HEADER) or len(name) == len(_TRACEPARENT_HEADER):
            lowered = name.lower()
            if lowered == _REQUEST_ID_HEADER_BYTES:
                request_id = value.decode("latin-1")
            elif lowered == _TRACEPARENT_HEADER:
                traceparent = value.decode("latin-1")
    return request_id, traceparent


_REQUEST_ID_HEADER_BYTES: Final = REQUEST_ID_HEADER.encode()
_TRACEPARENT_HEADER: Final = b"traceparent"
# The labelled children of the HTTP metrics, by (route template, method, status): `labels()`
# takes a lock and builds a key on every call. Routes are templates, so the keys are few.
_LABELLED: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def _metrics_of(route: str, method: str, status: int) -> tuple[Counter, Histogram]:
    key = (route, method, status)
    found = _LABELLED.get(key)
    if found is None:
        found = _LABELLED[key] = (
            HTTP_REQUESTS.labels(route, method, str(status)),
            HTTP_REQUEST_SECONDS.labels(route),
        )
    return found


def _route_template(scope: Scope) -> str:
    """The matched route's template, which keeps label cardinality bounded; else "unmatched".

    FastAPI's own routes put themselves in the scope as `route`; plain Starlette routes (FastAPI's
    `/docs` and `/openapi.json`) leave only their `endpoint`, found again among the router's routes.
    """
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    endpoint = scope.get("endpoint")
    if endpoint is not None:
        for route in getattr(scope.get("router"), "routes", ()):
            path = getattr(route, "path", None)
            if getattr(route, "endpoint", None) is endpoint and isinstance(path, str):
                return path
    return "unmatched"
