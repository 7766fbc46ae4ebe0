"""The collector: validates what producers report and stores it on `events.<type>.<resource_id>`."""

from fastapi import FastAPI

from collector.routes import router
from collector.settings import CollectorSettings
from eh_runtime.connection import NatsConnection
from eh_runtime.event_publisher import EventPublisher
from eh_runtime.service import Service
from eh_runtime.stream import ensure_events_stream

SERVICE_NAME = "collector"


def create_app(settings: CollectorSettings | None = None) -> FastAPI:
    settings = settings or CollectorSettings()
    service = Service(SERVICE_NAME, settings)

    async def provision_stream(connection: NatsConnection) -> None:
        # The collector is the one writer, so it owns the stream's configuration.
        await ensure_events_stream(connection.jetstream(), settings.stream)

    service.on_connect(provision_stream)
    app = service.create_app(
        title="Event Handler collector",
        description="Ingestion of build-farm events into the JetStream stream EVENTS.",
        routers=[router],
    )
    app.state.publisher = EventPublisher(service.nats)
    return app
