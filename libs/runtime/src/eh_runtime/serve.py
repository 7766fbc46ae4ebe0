"""Serving a service app with uvicorn, with a shutdown that tells event streams to finish first.

uvicorn waits for open responses before it runs the lifespan shutdown, so an SSE stream would hold
the process until the grace period ends. `GracefulServer` sets the service's stop signal as soon as
shutdown begins; streams then end on their own, well inside the grace period.

Every server bounds what one client may hold (`HTTP_*` settings): head size and time, body time,
and connections, the last as many as the process may open files, less a reserve.
"""

import resource
import socket
from typing import Final

import uvicorn
from fastapi import FastAPI

from eh_runtime.logs import configure_logging
from eh_runtime.service import Service
from eh_runtime.settings import HttpServerSettings
from eh_runtime.uvicorn_httptools_limits import HttpLimits, bounded_protocol

# Descriptors kept from connections: NATS, log files, the listening socket, the event loop's own.
RESERVED_DESCRIPTORS: Final = 256


def raise_descriptor_limit() -> int:
    """Raise this process's soft limit of open files to the hard one; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # a container may forbid it: the soft limit stays, and the cap follows it
    return soft


def http_limits(settings: HttpServerSettings) -> HttpLimits:
    descriptors = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    default_connections = max(16, descriptors - RESERVED_DESCRIPTORS)
    return HttpLimits(
        max_head_bytes=int(settings.max_head_bytes),
        max_headers=settings.max_headers,
        head_timeout=settings.head_timeout.total_seconds(),
        body_timeout=settings.body_timeout.total_seconds(),
        max_connections=settings.max_connections or default_connections,
    )


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self.service = service

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.service.request_stop()
        await super().shutdown(sockets=sockets)


def server_for(
    app: FastAPI, service: Service, *, host: str | None = None, port: int | None = None
) -> GracefulServer:
    """A uvicorn server for `app`, logging through our structured logs, not uvicorn's formats."""
    config = uvicorn.Config(
        app,
        host=host if host is not None else service.settings.host,
        port=port if port is not None else service.settings.port,
        log_config=None,
        access_log=False,  # RequestContextMiddleware writes one structured line per request
        timeout_graceful_shutdown=int(service.settings.shutdown_timeout.total_seconds()) or 1,
        server_header=False,
        # Behind an Ingress every request comes from the proxy; per-address limits and logs need
        # the client it names.
        proxy_headers=True,
        forwarded_allow_ips=service.settings.forwarded_allow_ips,
        loop="uvloop",
        http=bounded_protocol(http_limits(service.settings.http)),
    )
    return GracefulServer(config, service)


def run(app: FastAPI) -> None:
    """Run a service app until SIGINT or SIGTERM, then shut down gracefully."""
    service: Service = app.state.service
    configure_logging(service.name, service.settings.logging)
    raise_descriptor_limit()
    server = server_for(app, service)
    server.run()
