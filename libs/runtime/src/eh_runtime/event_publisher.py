"""Storing validated events in JetStream: pipelined publishes, one awaited batch of acks.

Shared by every service that stores events (the collector for producers' events, the
alert-evaluator for its alerts), so that all of them deduplicate, time out and count alike.

The event id is sent as `Nats-Msg-Id`, so JetStream itself drops a retry inside the duplicate
window and says so in the ack. Publishes of a batch are all sent before any ack is awaited
(nats-py `publish_async`): one round trip for the batch instead of one per event.
"""

import asyncio
from dataclasses import dataclass

import structlog
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import PubAck
from prometheus_client import Counter, Histogram

from eh_contracts.envelope import EventEnvelope
from eh_runtime.connection import NatsConnection
from eh_runtime.stream import EVENTS_STREAM

log = structlog.get_logger(__name__)

EVENTS_STORED = Counter(
    "eventhandler_events_published",
    "Events this process published to JetStream, by type and outcome (stored, duplicate, failed).",
    ["type", "outcome"],
)
PUBLISH_SECONDS = Histogram(
    "eventhandler_publish_batch_seconds",
    "Time from the first publish of a batch to its last JetStream ack.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class StoreUnavailable(Exception):
    """JetStream did not store the events (not connected, no stream, no ack in time)."""


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    event: EventEnvelope
    ack: PubAck | None
    error: str | None

    @property
    def stored(self) -> bool:
        return self.ack is not None


class EventPublisher:
    def __init__(self, connection: NatsConnection) -> None:
        self._connection = connection
        self._js: JetStreamContext | None = None

    @property
    def max_payload(self) -> int:
        """The largest message the connected server accepts, in bytes."""
        return self._connection.client.max_payload

    async def publish(self, events: list[EventEnvelope], payloads: list[bytes]) -> list[PublishOutcome]:
        """Publish every event and wait for every ack (or its failure).

        Raises:
            StoreUnavailable: when not connected to NATS at all; nothing was sent.
        """
        if not self._connection.is_connected:
            raise StoreUnavailable(f"not connected to NATS at {self._connection.settings.url}")
        if self._js is None:
            self._js = self._connection.jetstream()
        timeout = self._connection.settings.request_timeout.total_seconds()
        with PUBLISH_SECONDS.time():
            futures = []
            for event, payload in zip(events, payloads, strict=True):
                futures.append(
                    await self._js.publish_async(
                        event.subject, payload, stream=EVENTS_STREAM, headers={"Nats-Msg-Id": event.id}
                    )
                )
            results = await asyncio.gather(
                *(asyncio.wait_for(future, timeout) for future in futures), return_exceptions=True
            )
        outcomes = []
        for event, result in zip(events, results, strict=True):
            if isinstance(result, PubAck):
                outcomes.append(PublishOutcome(event, result, None))
                EVENTS_STORED.labels(event.event, "duplicate" if result.duplicate else "stored").inc()
            else:
                error = _describe(result)
                outcomes.append(PublishOutcome(event, None, error))
                EVENTS_STORED.labels(event.event, "failed").inc()
        failed = [o for o in outcomes if not o.stored]
        if failed:
            log.warning(
                "events not stored", failed=len(failed), of=len(outcomes), first_error=failed[0].error
            )
        return outcomes


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "no acknowledgement from JetStream in time"
    if isinstance(error, NatsError):
        return f"JetStream: {error}"
    return f"{type(error).__name__}: {error}"
