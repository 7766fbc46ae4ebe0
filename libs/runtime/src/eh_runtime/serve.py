"""Serving a service app with uvicorn, with a shutdown that tells event streams to finish first.

uvicorn waits for open responses before it runs the lifespan shutdown, so an SSE stream would hold
the process until the grace period ends. `GracefulServer` sets the service's stop signal as soon as
shutdown begins; streams then end on their own, well inside the grace period.
"""

import socket

import uvicorn
from fastapi import FastAPI

from eh_runtime.logs import configure_logging
from eh_runtime.service import Service


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
        http="httptools",
    )
    return GracefulServer(config, service)


def run(app: FastAPI) -> None:
    """Run a service app until SIGINT or SIGTERM, then shut down gracefully."""
    service: Service = app.state.service
    configure_logging(service.name, service.settings.logging)
    server = server_for(app, service)
    server.run()
