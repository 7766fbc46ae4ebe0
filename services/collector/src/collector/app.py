"""The collector: validates what producers report and stores it on `events.<type>.<resource_id>`."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Final

from fastapi import FastAPI

from collector import heartbeat_routes, resource_routes, routes
from collector.heartbeats import HEARTBEAT_BUCKET, Heartbeats
from collector.ingest import Ingestor
from collector.nats_ingest import NatsIngestion
from collector.provisioning import Provisioning, bucket_stream
from collector.resource_states import STATE_BUCKET, ResourceStates, run_pending_sweeps
from collector.settings import CollectorSettings
from eh_contracts.schemas import component_schemas
from eh_runtime.connection import NatsConnection
from eh_runtime.event_publisher import EventPublisher
from eh_runtime.service import Service
from eh_runtime.stream import EVENTS_STREAM, ensure_events_stream

SERVICE_NAME = "collector"
# A claimed transition whose event is not stored after this long is stored by the sweep.
_PENDING_SWEEP_EVERY: Final = timedelta(seconds=30)


def create_app(settings: CollectorSettings | None = None) -> FastAPI:
    settings = settings or CollectorSettings()
    service = Service(SERVICE_NAME, settings)
    publisher = EventPublisher(service.nats, settings.stream)
    states = ResourceStates(publisher, replicas=settings.stream.replicas)
    heartbeats = Heartbeats(states, settings.heartbeat_timeout, replicas=settings.stream.replicas)
    ingestor = Ingestor(publisher, states, settings.max_clock_skew)
    nats_ingestion = NatsIngestion(ingestor, settings.ingest_concurrency)

    async def provision(connection: NatsConnection) -> None:
        # The collector is the one writer, so it owns the stream's configuration and its buckets.
        js = connection.jetstream()
        await ensure_events_stream(js, settings.stream)
        await states.open(js)
        await heartbeats.open(js)
        await nats_ingestion.start(connection)

    provisioning = Provisioning(
        service.nats,
        provision,
        [EVENTS_STREAM, bucket_stream(STATE_BUCKET), bucket_stream(HEARTBEAT_BUCKET)],
    )
    service.on_connect(provisioning.provision)

    async def provisioned() -> str | None:
        return provisioning.problem()

    service.add_readiness_check("provisioning", provisioned)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        sweeps = asyncio.create_task(run_pending_sweeps(states, _PENDING_SWEEP_EVERY, service.stopping))
        keeping = asyncio.create_task(provisioning.keep(service.stopping), name="collector-provisioning")
        try:
            yield
        finally:
            service.request_stop()
            await nats_ingestion.stop(settings.shutdown_timeout.total_seconds())
            await sweeps
            await keeping
            await heartbeats.close()

    app = service.create_app(
        title="Event Handler collector",
        description=(
            "Ingestion of build-farm events into the JetStream stream EVENTS: HTTP and NATS, node "
            "heartbeats, and the current state of every node, pipeline and container."
        ),
        routers=[routes.router, heartbeat_routes.router, resource_routes.router],
        lifespan=lifespan,
        routine_routes=heartbeat_routes.ROUTINE_ROUTES,
        component_schemas=component_schemas() | heartbeat_routes.heartbeat_body_schemas(),
    )
    app.state.publisher = publisher
    app.state.states = states
    app.state.heartbeats = heartbeats
    app.state.ingestor = ingestor
    return app
