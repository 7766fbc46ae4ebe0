"""Storing validated events in JetStream: atomic batches, per-event outcomes, per-type TTL.

Shared by every service that stores events (the collector for producers' events, the
alert-evaluator for its alerts), so that all of them deduplicate, expire, time out and count alike.

The event id is sent as `Nats-Msg-Id`, so JetStream itself drops a retry inside the duplicate
window. Every event is marked `Eh-Envelope: 1` (see `eh_contracts.stored_events`): validated by
the writer, so readers on a hot path need not check it again. Events go out as atomic batches of
up to 1,000 (one write, one ack; see `jetstream`). JetStream refuses a whole batch that holds an
id it already stored, and tells nothing about the others; that batch, and any other batch the
server refuses, is then published message by message with one ack each (`publish_async`), which
says per event whether it was new or a duplicate and at which sequence. Retries are the rare
case, so the fast path is the common one.
"""

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import structlog
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import PubAck
from prometheus_client import Counter as MetricCounter
from prometheus_client import Histogram

from eh_contracts.envelope import EventEnvelope
from eh_contracts.event_types import EventType
from eh_contracts.stored_events import ENVELOPE_HEADER, ENVELOPE_HEADER_LINE, ENVELOPE_VERSION
from eh_contracts.subjects import SUBJECT_ROOT, event_subject
from eh_runtime.connection import NatsConnection, without_credentials
from eh_runtime.jetstream import (
    ATOMIC_BATCH_MAX,
    ERR_BATCH_DISABLED,
    AtomicBatchSender,
    BatchRejected,
    OutgoingMessage,
)
from eh_runtime.settings import StreamSettings
from eh_runtime.stream import EVENTS_STREAM

log = structlog.get_logger(__name__)

EVENTS_STORED = MetricCounter(
    "eventhandler_events_published",
    "Events this process published to JetStream, by type and outcome (stored, duplicate, failed).",
    ["type", "outcome"],
)
PUBLISH_SECONDS = Histogram(
    "eventhandler_publish_batch_seconds",
    "Time from the first publish of a batch to its last JetStream ack.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_FALLBACKS = MetricCounter(
    "eventhandler_publish_batch_fallbacks",
    "Atomic batches the server refused (usually a retry holding stored ids), republished one by one.",
    ["reason"],
)

# JetStream allows 50 atomic batches in flight per stream; a process keeps well below that so
# that several replicas and the alert-evaluator fit too.
_BATCHES_IN_FLIGHT: Final = 8
# After the server said atomic batches are disabled on the stream, how long to publish one by one
# before trying again (the stream's provisioning may enable them meanwhile).
_ATOMIC_RETRY_SECONDS: Final = 30.0
_VALIDATED_HEADERS: Final = {ENVELOPE_HEADER: ENVELOPE_VERSION}


class StoreUnavailable(Exception):
    """JetStream did not store the events (not connected, no stream, no ack in time)."""


# Not frozen, and no PubAck inside: a frozen dataclass's __init__, or a PubAck, costs microseconds,
# and there is one per event.
@dataclass(slots=True)
class StoreResult:
    """What JetStream said about one message: its sequence and whether it was a duplicate, or why
    there is no ack (`error`)."""

    seq: int | None
    duplicate: bool = False
    error: str | None = None

    @property
    def stored(self) -> bool:
        return self.seq is not None

    @property
    def ack(self) -> PubAck | None:
        if self.seq is None:
            return None
        return PubAck(stream=EVENTS_STREAM, seq=self.seq, duplicate=self.duplicate)


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    event: EventEnvelope
    ack: PubAck | None
    error: str | None

    @property
    def stored(self) -> bool:
        return self.ack is not None


class StorableEvent(Protocol):
    """A validated event: an `EventEnvelope` or an `EventRecord`."""

    @property
    def event(self) -> str: ...
    @property
    def resource_id(self) -> str: ...
    @property
    def id(self) -> str: ...


class EventPublisher:
    def __init__(self, connection: NatsConnection, stream_settings: StreamSettings | None = None) -> None:
        self._connection = connection
        settings = stream_settings or StreamSettings()
        self._ttl = {t.value: settings.ttl_seconds(t.value) for t in EventType}
        self._js: JetStreamContext | None = None
        self._batches: AtomicBatchSender | None = None
        self._batch_slots = asyncio.Semaphore(_BATCHES_IN_FLIGHT)
        self._atomic_disabled_until = 0.0

    @property
    def is_connected(self) -> bool:
        return self._connection.is_connected

    @property
    def max_payload(self) -> int:
        """The largest message the connected server accepts, in bytes (headers included)."""
        return self._connection.client.max_payload

    def message(self, event: StorableEvent, payload: bytes) -> OutgoingMessage:
        """The message that stores `event` (serialized as `payload`), with its type's TTL."""
        # The envelope's type and resource id are validated: the subject is built without checks.
        event_type = event.event
        return OutgoingMessage(
            f"{SUBJECT_ROOT}.{event_type}.{event.resource_id}",
            event.id,
            payload,
            event_type,
            self._ttl[event_type],
            ENVELOPE_HEADER_LINE,
        )

    def outgoing(self, event_type: str, resource_id: str, event_id: str, payload: bytes) -> OutgoingMessage:
        """The message that stores an already serialized event, with its type's TTL."""
        return OutgoingMessage(
            subject=event_subject(event_type, resource_id),
            msg_id=event_id,
            payload=payload,
            event_type=event_type,
            ttl_seconds=self._ttl[event_type],
            header_lines=ENVELOPE_HEADER_LINE,
        )

    async def publish(self, events: list[EventEnvelope], payloads: list[bytes]) -> list[PublishOutcome]:
        """Publish every event and wait for every ack (or its failure).

        Raises:
            StoreUnavailable: when not connected to NATS at all; nothing was sent.
        """
        messages = [self.message(e, p) for e, p in zip(events, payloads, strict=True)]
        results = await self.publish_messages(messages)
        return [PublishOutcome(e, r.ack, r.error) for e, r in zip(events, results, strict=True)]

    async def publish_messages(self, messages: Sequence[OutgoingMessage]) -> list[StoreResult]:
        """Store `messages` in order; one result per message, in the same order.

        Raises:
            StoreUnavailable: when not connected to NATS at all; nothing was sent.
        """
        if not self._connection.is_connected:
            raise StoreUnavailable(
                f"not connected to NATS at {without_credentials(self._connection.settings.url)}"
            )
        results: list[StoreResult] = []
        with PUBLISH_SECONDS.time():
            # One chunk after the other, so that a request's events are stored in its order;
            # concurrent requests keep the server busy meanwhile.
            for start in range(0, len(messages), ATOMIC_BATCH_MAX):
                results += await self._publish_chunk(messages[start : start + ATOMIC_BATCH_MAX])
        _count(messages, results)
        return results

    async def _publish_chunk(self, chunk: Sequence[OutgoingMessage]) -> list[StoreResult]:
        timeout = self._connection.settings.request_timeout.total_seconds()
        if time.monotonic() >= self._atomic_disabled_until:
            async with self._batch_slots:
                try:
                    first_seq = await self._sender().send(EVENTS_STREAM, chunk, timeout)
                except BatchRejected as rejected:
                    if rejected.code == ERR_BATCH_DISABLED:
                        # A stream made before atomic batches; the collector's provisioning turns
                        # them on, until then (or on a server that refuses) go message by message.
                        self._atomic_disabled_until = time.monotonic() + _ATOMIC_RETRY_SECONDS
                        log.warning(
                            "atomic batches disabled on the stream; publishing one by one",
                            retry_in_s=_ATOMIC_RETRY_SECONDS,
                        )
                    BATCH_FALLBACKS.labels(str(rejected.code or "other")).inc()
                except (TimeoutError, NatsError) as error:
                    # The batch may have been stored: report it failed, and a retry with the same
                    # ids is deduplicated by the server.
                    reason = _describe(error)
                    return [StoreResult(None, error=reason) for _ in chunk]
                else:
                    return [StoreResult(seq) for seq in range(first_seq, first_seq + len(chunk))]
        return await self._publish_one_by_one(chunk, timeout)

    async def _publish_one_by_one(
        self, chunk: Sequence[OutgoingMessage], timeout: float
    ) -> list[StoreResult]:
        js = self._jetstream()
        futures = []
        try:
            for message in chunk:
                futures.append(
                    await js.publish_async(
                        message.subject,
                        message.payload,
                        stream=EVENTS_STREAM,
                        headers=_VALIDATED_HEADERS | {"Nats-Msg-Id": message.msg_id},
                        msg_ttl=message.ttl_seconds,
                    )
                )
        except NatsError as error:
            for future in futures:
                future.cancel()
            return [StoreResult(None, error=_describe(error)) for _ in chunk]
        acks = await asyncio.gather(
            *(asyncio.wait_for(future, timeout) for future in futures), return_exceptions=True
        )
        return [
            StoreResult(ack.seq, bool(ack.duplicate))
            if isinstance(ack, PubAck)
            else StoreResult(None, error=_describe(ack))
            for ack in acks
        ]

    def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            self._js = self._connection.jetstream()
        return self._js

    def _sender(self) -> AtomicBatchSender:
        if self._batches is None:
            self._batches = AtomicBatchSender(self._connection.client)
        return self._batches


def _count(messages: Sequence[OutgoingMessage], results: list[StoreResult]) -> None:
    """Count the outcomes by type; the common case, all stored, counted without a loop in Python."""
    if all(r.seq is not None and not r.duplicate for r in results):
        for event_type, count in Counter(m.event_type for m in messages).items():
            EVENTS_STORED.labels(event_type, "stored").inc(count)
        return
    counts: Counter[tuple[str, str]] = Counter()
    for message, result in zip(messages, results, strict=True):
        outcome = "failed" if result.seq is None else "duplicate" if result.duplicate else "stored"
        counts[(message.event_type, outcome)] += 1
    for (event_type, outcome), count in counts.items():
        EVENTS_STORED.labels(event_type, outcome).inc(count)
    failed = [r for r in results if not r.stored]
    if failed:
        log.warning("events not stored", failed=len(failed), of=len(results), first_error=failed[0].error)


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "no acknowledgement from JetStream in time"
    if isinstance(error, NatsError):
        return f"JetStream: {error}"
    return f"{type(error).__name__}: {error}"
