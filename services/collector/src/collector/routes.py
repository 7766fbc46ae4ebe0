"""`POST /api/v1/events`: one event or a JSON array of events, validated, stored, acknowledged."""

from typing import Annotated, Any, Final

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from collector.settings import CollectorSettings
from eh_contracts.envelope import EventParseError, parse_events
from eh_runtime.event_publisher import EventPublisher, StoreUnavailable
from eh_runtime.service import error_detail

log = structlog.get_logger(__name__)

RETRY_AFTER_SECONDS: Final = "1"
_JSON_TYPES: Final = ("application/json", "")


class StoredEvent(BaseModel):
    index: int = Field(description="Position in the request (0 for a single event).")
    id: str = Field(description="The event id: the producer's, or the one the collector generated.")
    seq: int = Field(description="JetStream stream sequence; the SSE `id:` of this event.")
    duplicate: bool = Field(description="True when this id was already stored inside the duplicate window.")


class IngestResult(BaseModel):
    stored: int = Field(description="Events newly stored by this request.")
    duplicates: int = Field(description="Events whose id was already stored (not stored again).")
    events: list[StoredEvent]


class NotStoredEvent(BaseModel):
    index: int
    id: str
    seq: int | None = None
    duplicate: bool | None = None
    error: str | None = None


def _publisher(request: Request) -> EventPublisher:
    publisher: EventPublisher = request.app.state.publisher
    return publisher


def _settings(request: Request) -> CollectorSettings:
    settings: CollectorSettings = request.app.state.service.settings
    return settings


PublisherDep = Annotated[EventPublisher, Depends(_publisher)]
SettingsDep = Annotated[CollectorSettings, Depends(_settings)]

router = APIRouter(prefix="/api/v1", tags=["ingestion"])


@router.post(
    "/events",
    status_code=202,
    summary="Store one event or a JSON array of events",
    description=(
        "The body is one event envelope or a non-empty JSON array of them. `id` and `timestamp` are "
        "filled in when absent. The whole request is validated before anything is stored: any invalid "
        "event rejects the request with 422 and every problem named by its path (`[3].data.cpu.usage`). "
        "Retrying with the same event ids is safe: JetStream stores each id once within the "
        "duplicate window and the answer marks it `duplicate`."
    ),
    responses={
        400: {"description": "The body is not JSON"},
        413: {"description": "The body (or one event) is larger than allowed"},
        415: {"description": "Content-Type is not application/json"},
        422: {"description": "Invalid events; `detail` lists every field error"},
        503: {"description": "JetStream unavailable or slow; retry after Retry-After with the same ids"},
    },
)
async def ingest_events(request: Request, publisher: PublisherDep, settings: SettingsDep) -> Any:
    _check_content_type(request)
    body = await _read_body(request, int(settings.max_body_bytes))
    try:
        events = parse_events(body)
    except EventParseError as error:
        status = 400 if error.malformed else 422
        detail = [error_detail(e.loc, e.message, e.type) for e in error.errors]
        return JSONResponse({"detail": detail}, status_code=status)

    payloads = [event.to_json() for event in events]
    limit = publisher.max_payload
    too_large = [i for i, payload in enumerate(payloads) if len(payload) > limit]
    if too_large:
        detail = [
            error_detail(
                [i] if len(events) > 1 else [],
                f"event is {len(payloads[i])} bytes, at most {limit}",
                "too_large",
            )
            for i in too_large
        ]
        return JSONResponse({"detail": detail}, status_code=413)

    try:
        outcomes = await publisher.publish(events, payloads)
    except StoreUnavailable as error:
        return _unavailable(str(error), [NotStoredEvent(index=i, id=e.id) for i, e in enumerate(events)])

    if any(not o.stored for o in outcomes):
        failures = [
            NotStoredEvent(
                index=i,
                id=o.event.id,
                seq=o.ack.seq if o.ack else None,
                duplicate=o.ack.duplicate if o.ack else None,
                error=o.error,
            )
            for i, o in enumerate(outcomes)
        ]
        return _unavailable("some events were not acknowledged by JetStream", failures)

    stored = [
        StoredEvent(index=i, id=o.event.id, seq=o.ack.seq, duplicate=bool(o.ack.duplicate))
        for i, o in enumerate(outcomes)
        if o.ack is not None
    ]
    duplicates = sum(1 for s in stored if s.duplicate)
    return IngestResult(stored=len(stored) - duplicates, duplicates=duplicates, events=stored)


def _check_content_type(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in _JSON_TYPES:
        raise HTTPException(415, f"Content-Type {media_type!r} is not supported; send application/json")


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(
            413, f"body is {declared} bytes, at most {limit} accepted (COLLECTOR_MAX_BODY_BYTES)"
        )
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body exceeds {limit} bytes (COLLECTOR_MAX_BODY_BYTES)")
        chunks.append(chunk)
    return b"".join(chunks)


def _unavailable(reason: str, events: list[NotStoredEvent]) -> JSONResponse:
    log.warning("ingest refused: event store unavailable", reason=reason, events=len(events))
    return JSONResponse(
        {
            "detail": f"event store unavailable: {reason}; retry with the same event ids",
            "events": [e.model_dump() for e in events],
        },
        status_code=503,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )
