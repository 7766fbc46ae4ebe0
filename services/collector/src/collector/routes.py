"""`POST /api/v1/events`: one event, a JSON array or NDJSON; every event judged and answered on its own."""

from collections import Counter
from typing import Any, Final

import pydantic_core
import structlog
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from collector.deps import IngestorDep, SettingsDep
from collector.ingest import EventResult
from collector.intake import NDJSON_MEDIA_TYPES, Intake, read_json, read_ndjson
from eh_contracts.envelope import EventParseError
from eh_runtime.service import error_detail

log = structlog.get_logger(__name__)

RETRY_AFTER_SECONDS: Final = "1"
_JSON_TYPES: Final = frozenset({"application/json", ""})


router = APIRouter(prefix="/api/v1", tags=["ingestion"])


@router.post(
    "/events",
    status_code=202,
    summary="Store one event, a JSON array of events, or NDJSON",
    description=(
        "The body is one event envelope, a non-empty JSON array of them (`application/json`), or one "
        "envelope per line (`application/x-ndjson`). `id` and `timestamp` are filled in when absent. "
        "Each event is judged on its own: the answer lists, by index, whether it was `stored`, a "
        "`duplicate` of an id already stored, `unchanged` (a status that repeats the current state), "
        "`invalid` (with its errors) or `failed` (not acknowledged by JetStream: retry with the same id). "
        "202: all accepted; 207: some; 422: none, all invalid; 503: none stored because JetStream is "
        "unavailable (with Retry-After)."
    ),
    responses={
        207: {"description": "Some events accepted; `events` says which, `detail` lists the errors"},
        400: {"description": "The body is not JSON (or, for NDJSON, has no event)"},
        413: {"description": "The body is larger than COLLECTOR_MAX_BODY_BYTES"},
        415: {"description": "Content-Type is neither JSON nor NDJSON"},
        422: {"description": "No event is valid; `detail` lists every field error with its path"},
        503: {"description": "JetStream unavailable or slow; retry after Retry-After with the same ids"},
    },
)
async def ingest_events(request: Request, ingestor: IngestorDep, settings: SettingsDep) -> Response:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in _JSON_TYPES and media_type not in NDJSON_MEDIA_TYPES:
        raise HTTPException(
            415,
            f"Content-Type {media_type!r} is not supported; send application/json or application/x-ndjson",
        )
    body = await read_body(request, int(settings.max_body_bytes))
    try:
        intake = read_ndjson(body) if media_type in NDJSON_MEDIA_TYPES else read_json(body)
    except EventParseError as error:
        status = 400 if error.malformed else 422
        detail = [error_detail(e.loc, e.message, e.type) for e in error.errors]
        return json_response({"detail": detail}, status)
    results = await ingestor.ingest(intake)
    return ingest_response(intake, results)


def ingest_response(intake: Intake, results: list[EventResult]) -> Response:
    """The answer to a body of events: the status code says whether all, some or none were accepted."""
    counts = Counter(r.status for r in results)
    accepted = counts["stored"] + counts["duplicate"] + counts["unchanged"]
    body: dict[str, Any] = {
        "stored": counts["stored"],
        "duplicates": counts["duplicate"],
        "unchanged": counts["unchanged"],
        "invalid": counts["invalid"],
        "failed": counts["failed"],
        "events": [r.as_json(single=intake.single) for r in results],
    }
    headers = {}
    if counts["failed"]:
        headers["Retry-After"] = RETRY_AFTER_SECONDS
        first = next(r.error for r in results if r.status == "failed")
        log.warning("events not stored: event store unavailable", failed=counts["failed"], error=first)
    if accepted == len(results):
        status = 202
    elif accepted:
        status = 207
    elif counts["failed"]:
        status = 503
    else:
        status = 422
    if counts["invalid"]:
        body["detail"] = [error_detail(e.loc, e.message, e.type) for e in intake.errors()]
    elif status == 503:
        body["detail"] = "event store unavailable; retry with the same event ids after Retry-After"
    return json_response(body, status, headers)


def json_response(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    # Serialized by pydantic-core directly: FastAPI's generic encoder costs more than the rest of a
    # 1,000-event request.
    return Response(
        pydantic_core.to_json(body), status_code=status, media_type="application/json", headers=headers
    )


async def read_body(request: Request, limit: int) -> bytes:
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
