"""NATS request/reply ingestion on `ingest.<type>.<resource_id>`, for services that prefer NATS to HTTP.

The request body is one event; its `event` and `resource_id` may be left out (the subject says them)
but must match the subject when given. Validation and storage are the HTTP path's; the reply is the
same per-event result (`{"index": 0, "status": "stored", "id": …, "seq": …}`). Errors also set the
`Nats-Service-Error-Code` (422, 503) and `Nats-Service-Error` headers, as NATS services do.

Replicas subscribe in one queue group, so each request is handled once. At most
COLLECTOR_INGEST_CONCURRENCY requests are handled at once; beyond that they wait in the
subscription's buffer and, when that fills, NATS drops them and the requester's timeout tells it
to retry: memory stays bounded and nothing accepted is dropped.
"""

import asyncio
import contextlib
from typing import Any, Final

import pydantic_core
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from collector.ingest import STORE_UNAVAILABLE_MESSAGE, EventResult, Ingestor
from collector.intake import Intake
from eh_contracts.envelope import EventParseError, FieldError
from eh_contracts.event_types import EventType
from eh_contracts.records import parse_record
from eh_contracts.subjects import validate_resource_id
from eh_runtime.connection import NatsConnection
from eh_runtime.request_context import INTERNAL_ERROR

log = structlog.get_logger(__name__)

INGEST_SUBJECT: Final = "ingest.>"
INGEST_QUEUE: Final = "collector"


class NatsIngestion:
    def __init__(self, ingestor: Ingestor, concurrency: int) -> None:
        self._ingestor = ingestor
        self._slots = asyncio.Semaphore(concurrency)
        self._subscription: Subscription | None = None
        self._client: Client | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, connection: NatsConnection) -> None:
        """Subscribe (once; nats-py resubscribes by itself after a reconnection)."""
        if self._subscription is None:
            self._client = connection.client
            self._subscription = await connection.client.subscribe(
                INGEST_SUBJECT, queue=INGEST_QUEUE, cb=self._on_request
            )

    async def stop(self, timeout: float) -> None:
        """Take no more requests and let the ones in hand finish (up to `timeout` seconds)."""
        if self._subscription is not None:
            with contextlib.suppress(Exception):  # not connected: nothing more arrives anyway
                await self._subscription.unsubscribe()
            self._subscription = None
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def _on_request(self, msg: Msg) -> None:
        # Waiting here (not in a task) holds further requests in the subscription's bounded buffer.
        await self._slots.acquire()
        task = asyncio.create_task(self._handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, msg: Msg) -> None:
        headers: dict[str, str] | None
        try:
            try:
                result = await self._ingest(msg.subject, msg.data)
            except Exception:
                # A requester always gets an answer; waiting out its timeout would tell it nothing.
                log.exception("ingest request failed", subject=msg.subject)
                reply = {"index": 0, "status": "failed", "error": "internal error", "code": INTERNAL_ERROR}
                headers = {"Nats-Service-Error-Code": "500", "Nats-Service-Error": "internal error"}
            else:
                if result.status == "failed":
                    log.warning("ingest request not stored", subject=msg.subject, error=result.error)
                reply, headers = result.as_json(single=True), _error_headers(result)
            if msg.reply and self._client is not None:
                await self._client.publish(msg.reply, pydantic_core.to_json(reply), headers=headers)
        except Exception:
            log.exception("ingest reply failed", subject=msg.subject)
        finally:
            self._slots.release()

    async def _ingest(self, subject: str, data: bytes) -> EventResult:
        intake = Intake(single=True)
        try:
            intake.events[0] = parse_record(_with_subject_fields(subject, data))
        except EventParseError as error:
            intake.reject(0, error.errors)
        (result,) = await self._ingestor.ingest(intake)
        return result


def _with_subject_fields(subject: str, data: bytes) -> bytes:
    """The body with `event` and `resource_id` from the subject; a conflict is an error."""
    parts = subject.split(".")
    if len(parts) != 3:
        raise EventParseError(
            [FieldError((), f"subject {subject!r} is not ingest.<type>.<resource_id>", "subject")]
        )
    try:
        event_type = EventType(parts[1]).value
        resource_id = validate_resource_id(parts[2])
    except ValueError as error:
        raise EventParseError([FieldError((), f"subject {subject!r}: {error}", "subject")]) from None
    try:
        body: Any = pydantic_core.from_json(data)
    except ValueError:
        return data  # parse_record reports the syntax error
    if not isinstance(body, dict):
        return data
    errors = [
        FieldError((name,), f"{body[name]!r} differs from the subject's {value!r}", "subject_mismatch")
        for name, value in (("event", event_type), ("resource_id", resource_id))
        if name in body and body[name] != value
    ]
    if errors:
        raise EventParseError(errors)
    return pydantic_core.to_json({"event": event_type, "resource_id": resource_id} | body)


def _error_headers(result: EventResult) -> dict[str, str] | None:
    if result.status == "invalid":
        first = result.errors[0]
        return {"Nats-Service-Error-Code": "422", "Nats-Service-Error": f"{first.field}: {first.message}"}
    if result.status == "failed":
        return {"Nats-Service-Error-Code": "503", "Nats-Service-Error": STORE_UNAVAILABLE_MESSAGE}
    return None
