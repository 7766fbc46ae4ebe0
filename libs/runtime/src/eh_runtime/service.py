"""What every service is made of: settings, a NATS connection, a stop signal, health and errors.

A service builds one `Service`, registers what must happen on (re)connection and what makes it
ready, and gets a FastAPI app with `/healthz`, `/readyz`, `/metrics`, request logging and one
error format for everything a client can get wrong.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from typing import Any, Final

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from nats.errors import Error as NatsError
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from eh_contracts.envelope import field_path
from eh_runtime.auth.requests import QUERY_PARAMETER, Authenticator, authenticate, require_operator
from eh_runtime.connection import ConnectHook, NatsConnection, without_credentials
from eh_runtime.event_publisher import StoreUnavailable
from eh_runtime.metrics import metrics_response
from eh_runtime.request_context import INTERNAL_ERROR, UNAVAILABLE, RequestContextMiddleware, error_body
from eh_runtime.settings import ServiceSettings
from eh_runtime.stream import StreamWatch

log = structlog.get_logger(__name__)

ReadinessCheck = Callable[[], Awaitable[str | None]]
"""Returns None when fine, else a short reason why the service is not ready."""

ServiceLifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]

_READINESS_TIMEOUT_SECONDS = 2.0
AUTH_OFF_WARNING = (
    "HTTP AUTH IS OFF (AUTH_MODE=none): every request is served without a token, with every right. "
    "Development only; set AUTH_MODE=jwt anywhere else."
)
# What a browser on an allowed origin may send: the token, JSON bodies, and the resume position.
_CORS_HEADERS = ["Authorization", "Content-Type", "Last-Event-ID", "X-Request-ID", "traceparent"]

STORE_UNAVAILABLE: Final = "store_unavailable"
"""The `code` of a 503 because NATS (the event store, a key-value bucket) did not answer."""
RETRY_AFTER_SECONDS: Final = "1"
"""What a 503 tells a client to wait before retrying (`Retry-After`)."""
STORE_ERRORS: Final = (StoreUnavailable, NatsError, TimeoutError)
"""What a route raises when NATS is unavailable; every service answers them with a 503."""


class Service:
    """The parts every service has; one instance per process (or per app in tests)."""

    def __init__(self, name: str, settings: ServiceSettings) -> None:
        self.name = name
        self.settings = settings
        self.nats = NatsConnection(settings.nats, name)
        self.stream_watch = StreamWatch(self.nats)
        self.authenticator = Authenticator(settings.auth)
        self.stopping = asyncio.Event()
        self._checks: dict[str, ReadinessCheck] = {
            "nats": self._nats_connected,
            "startup": self._startup_done,
            "stream": self._stream_exists,
        }

    def on_connect(self, hook: ConnectHook) -> None:
        """Run `hook` after every (re)connection to NATS, retried until it succeeds."""
        self.nats.add_hook(hook)

    def add_readiness_check(self, name: str, check: ReadinessCheck) -> None:
        self._checks[name] = check

    def request_stop(self) -> None:
        """Tell long-lived work (event streams) to finish: the process is shutting down."""
        if not self.stopping.is_set():
            log.info("shutdown requested")
            self.stopping.set()

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        results: dict[str, str] = {}
        ready = True
        for name, check in self._checks.items():
            try:
                problem = await asyncio.wait_for(check(), _READINESS_TIMEOUT_SECONDS)
            except TimeoutError:
                problem = "check timed out"
            except Exception as error:  # a check that fails says why; /readyz itself answers
                problem = f"{type(error).__name__}: {error}"
            results[name] = problem or "ok"
            ready = ready and problem is None
        return ready, results

    @property
    def warnings(self) -> list[str]:
        """What an operator must know about how this process runs (shown on /readyz)."""
        return [] if self.authenticator.enabled else [AUTH_OFF_WARNING]

    async def _nats_connected(self) -> str | None:
        return (
            None
            if self.nats.is_connected
            else f"not connected to {without_credentials(self.settings.nats.url)}"
        )

    async def _startup_done(self) -> str | None:
        if self.nats.hooks_done:
            return None
        return self.nats.last_error or "waiting for NATS"

    async def _stream_exists(self) -> str | None:
        return self.stream_watch.problem()

    def create_app(
        self,
        *,
        title: str,
        description: str = "",
        routers: Sequence[APIRouter] = (),
        lifespan: ServiceLifespan | None = None,
        routine_routes: Collection[str] = (),
        component_schemas: dict[str, Any] | None = None,
    ) -> FastAPI:
        """A FastAPI app with this service's lifecycle, health endpoints and error handlers.

        `lifespan`, when given, runs inside the NATS connection's lifetime: it starts after the
        connection attempt began and ends before the connection is drained. `routine_routes`: route
        templates whose successful requests are logged at debug level only. `component_schemas`
        join the OpenAPI document's `#/components/schemas`, for descriptions that refer to them by
        `$ref` (bodies read as bytes, SSE events).
        """

        @contextlib.asynccontextmanager
        async def service_lifespan(app: FastAPI) -> AsyncIterator[None]:
            log.info(
                "starting", nats_url=without_credentials(self.settings.nats.url), port=self.settings.port
            )
            for warning in self.warnings:
                log.warning(warning)
            self.nats.start()
            self.stream_watch.start()
            try:
                if lifespan is None:
                    yield
                else:
                    async with lifespan(app):
                        yield
            finally:
                self.request_stop()
                await self.stream_watch.stop()
                await self.nats.close(timeout=self.settings.shutdown_timeout.total_seconds())
                log.info("stopped")

        # Last of the on-connect hooks: readiness sees the stream the others provisioned at once.
        self.nats.add_hook(self.stream_watch.refresh)
        # The documentation routes are added by `_health_router`, behind a token like the rest.
        app = FastAPI(
            title=title,
            description=description,
            lifespan=service_lifespan,
            docs_url=None,
            redoc_url=None,
            openapi_url=None,
        )
        app.state.service = self
        app.state.authenticator = self.authenticator
        app.add_middleware(RequestContextMiddleware, routine_routes=frozenset(routine_routes))
        cors = self.settings.cors
        if cors.allow_origins:
            # Outside the request context: a preflight is answered here, before any route or token.
            app.add_middleware(
                CORSMiddleware,
                allow_origins=cors.allow_origins,
                allow_credentials=True,
                allow_methods=["GET", "POST", "PATCH", "DELETE"],
                allow_headers=_CORS_HEADERS,
                expose_headers=["X-Request-ID", "Retry-After"],
                max_age=int(cors.max_age.total_seconds()),
            )
        app.add_exception_handler(RequestValidationError, _validation_error)
        app.add_exception_handler(HTTPException, _http_error)
        for error in STORE_ERRORS:
            app.add_exception_handler(error, store_unavailable)
        app.add_exception_handler(Exception, _unexpected_error)
        app.include_router(self._health_router())
        for router in routers:
            app.include_router(router)
        if component_schemas:
            _add_component_schemas(app, component_schemas)
        return app

    def _health_router(self) -> APIRouter:
        router = APIRouter(tags=["operations"])

        @router.get("/healthz", summary="The process is up")
        async def healthz() -> dict[str, str]:
            return {"status": "ok", "service": self.name}

        @router.get(
            "/readyz",
            summary="Connected to NATS and the EVENTS stream exists",
            responses={503: {"description": "Not ready; `checks` says why"}},
        )
        async def readyz() -> JSONResponse:
            ready, checks = await self.readiness()
            body: dict[str, Any] = {
                "status": "ready" if ready else "not ready",
                "service": self.name,
                "checks": checks,
            }
            if self.warnings:
                body["warnings"] = self.warnings
            return JSONResponse(body, status_code=200 if ready else 503)

        @router.get(
            "/metrics",
            summary="Prometheus metrics (operators: eh.admin)",
            include_in_schema=False,
            dependencies=[Depends(require_operator)],
        )
        async def metrics() -> Any:
            return metrics_response()

        @router.get("/openapi.json", include_in_schema=False, dependencies=[Depends(authenticate)])
        async def openapi(request: Request) -> JSONResponse:
            return JSONResponse(request.app.openapi())

        @router.get("/docs", include_in_schema=False, dependencies=[Depends(authenticate)])
        async def docs(request: Request) -> HTMLResponse:
            # A token given in the query must reach the page's own fetch of the schema too.
            token = request.query_params.get(QUERY_PARAMETER)
            suffix = f"?{QUERY_PARAMETER}={token}" if token else ""
            return get_swagger_ui_html(openapi_url=f"/openapi.json{suffix}", title=request.app.title)

        return router


def _add_component_schemas(app: FastAPI, schemas: dict[str, Any]) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            document.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def error_detail(loc: Sequence[str | int], message: str, kind: str) -> dict[str, Any]:
    """One entry of a 4xx `detail` list: where (`loc`, and `field` as text), what, and a type code."""
    return {"loc": list(loc), "field": field_path(loc) or "body", "msg": message, "type": kind}


async def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    details = []
    for item in error.errors():
        # FastAPI's loc starts with where the value came from ("query", "header", "body");
        # the parameter's own name is what a client needs to see.
        loc = tuple(item["loc"])
        where, path = (loc[0], loc[1:]) if loc and loc[0] in ("query", "header", "path") else (None, loc)
        entry = error_detail(path, str(item["msg"]).removeprefix("Value error, "), str(item["type"]))
        entry["in"] = where
        details.append(entry)
    return JSONResponse({"detail": details}, status_code=422)


async def _http_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    body: dict[str, Any] = {"detail": error.detail}
    if error.status_code >= 500:
        # Not the client's fault: a stable code to act on and the request id to quote.
        code = UNAVAILABLE if error.status_code == 503 else INTERNAL_ERROR
        body = error_body(code, str(error.detail))
    return JSONResponse(body, status_code=error.status_code, headers=error.headers)


def store_unavailable_response(message: str = "event store unavailable; retry shortly") -> JSONResponse:
    """A 503 with `Retry-After`, the stable code `store_unavailable`, and the request id."""
    return JSONResponse(
        error_body(STORE_UNAVAILABLE, message), status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS}
    )


async def store_unavailable(request: Request, error: Exception) -> JSONResponse:
    """The one answer of every route to NATS being unavailable (`STORE_ERRORS`)."""
    log.warning("store unavailable", path=request.url.path, error=f"{type(error).__name__}: {error}")
    return store_unavailable_response()


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    # Reached only by errors outside RequestContextMiddleware, which answers the others itself.
    log.exception("unhandled error", path=request.url.path)
    return JSONResponse(error_body(INTERNAL_ERROR, "internal error"), status_code=500)
