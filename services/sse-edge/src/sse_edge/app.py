"""The SSE edge: one live feed from JetStream, fanned out to every connected dashboard."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI
from starlette.middleware import Middleware

from eh_contracts.schemas import component_schemas
from eh_runtime.connection import NatsConnection
from eh_runtime.service import Service
from sse_edge.history.jetstream_history import JetStreamHistory
from sse_edge.history.replay_admission import ReplayAdmission
from sse_edge.http.connection_limits import ConnectionLimits
from sse_edge.http.dashboard_routes import mount_dashboard
from sse_edge.http.dependencies import EdgeParts
from sse_edge.http.detached_response import DetachedResponseMiddleware
from sse_edge.http.event_routes import router
from sse_edge.http.history_routes import router as history_router
from sse_edge.http.sse_frames import control_frame
from sse_edge.http.subscription_routes import router as subscription_router
from sse_edge.live.fanout import FanoutIndex
from sse_edge.live.feed import LiveFeed
from sse_edge.live.recent_events import RecentEvents
from sse_edge.live.sweeper import sweep_clients
from sse_edge.settings import EdgeSettings

SERVICE_NAME = "sse-edge"

log = structlog.get_logger(__name__)


def create_app(settings: EdgeSettings | None = None) -> FastAPI:
    settings = settings or EdgeSettings()
    service = Service(SERVICE_NAME, settings)
    index = FanoutIndex(int(settings.client_buffer_bytes))
    recent = RecentEvents(int(settings.recent_events_bytes))
    feed = LiveFeed(index, recent, settings.recent_events_prefill)

    async def start_feed(connection: NatsConnection) -> None:
        await feed.start(connection)

    async def feed_running() -> str | None:
        return None if feed.running else "live feed not subscribed"

    # History reads have their own connection: a replay that floods it cannot cost the live feed
    # its connection (nats-server cuts a slow consumer's connection, every subscription with it).
    history_connection = NatsConnection(settings.nats, f"{SERVICE_NAME}-history")

    async def history_connected() -> str | None:
        return None if history_connection.is_connected else "history connection not connected"

    async def restart_feed() -> None:
        # The new stream counts its sequences from 1 again: a client's Last-Event-ID means nothing
        # in it. Its streams end (`stream.end`, reason `stream_replaced`); a client that reconnects
        # without Last-Event-ID (or with a start_time) reads the new stream.
        clients = list(index)
        log.warning("stream replaced: ending every open event stream", clients=len(clients))
        farewell = control_frame(
            "stream.end", {"reason": "stream_replaced: the EVENTS stream was created anew", "last_seq": None}
        )
        for client in clients:
            client.close("end", farewell)
        await feed.restart(service.nats)

    service.on_connect(start_feed)
    service.stream_watch.on_replaced(restart_feed)
    service.add_readiness_check("live_feed", feed_running)
    service.add_readiness_check("history_connection", history_connected)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        history_connection.start()
        closer = asyncio.create_task(_close_clients_on_stop(service, index))
        sweeper = asyncio.create_task(
            sweep_clients(
                index, settings.heartbeat_interval.total_seconds(), settings.send_timeout.total_seconds()
            )
        )
        try:
            yield
        finally:
            closer.cancel()
            sweeper.cancel()
            await history_connection.close(timeout=settings.shutdown_timeout.total_seconds())

    app = service.create_app(
        title="Event Handler SSE edge",
        description="Live build-farm events over Server-Sent Events, filtered by type and resource.",
        routers=[router, history_router, subscription_router],
        lifespan=lifespan,
        component_schemas=component_schemas(),
    )
    # Innermost of the app's middleware: inside the request context, outside FastAPI's layers.
    app.user_middleware.append(Middleware(DetachedResponseMiddleware))
    mount_dashboard(app)
    app.state.fanout = index
    app.state.connection_limits = ConnectionLimits(
        settings.max_connections,
        settings.max_connections_per_address,
        retry_after_seconds=int(settings.retry.total_seconds()) or 1,
        max_per_principal=settings.max_connections_per_principal,
    )
    app.state.history = JetStreamHistory(
        history_connection.client,
        history_connection.jetstream(),
        ReplayAdmission(settings.replay_slots, settings.replay_starts_per_second),
        int(settings.replay_pending_bytes),
    )
    app.state.live_feed = feed
    app.state.recent_events = recent
    app.state.edge = EdgeParts(
        service, settings, index, app.state.history, app.state.connection_limits, recent
    )
    return app


async def _close_clients_on_stop(service: Service, index: FanoutIndex) -> None:
    await service.stopping.wait()
    clients = list(index)
    log.info("closing event streams for shutdown", clients=len(clients))
    for client in clients:
        client.close("shutdown")
