"""`POST /api/v1/events`: one event, a JSON array or NDJSON; every event judged and answered on its own."""

from collections import Counter
from collections.abc import Iterable
from typing import Any, Final

import pydantic_core
import structlog
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from collector.deps import IngestorDep, SettingsDep
from collector.ingest import EventResult
from collector.intake import NDJSON_MEDIA_TYPES, Intake, TooManyEvents, read_json, read_ndjson
from eh_contracts.envelope import EventParseError, FieldError
from eh_contracts.schemas import any_event_schema
from eh_runtime.auth.claims import Grant
from eh_runtime.auth.requests import ProducerDep
from eh_runtime.request_context import error_body
from eh_runtime.service import RETRY_AFTER_SECONDS, STORE_UNAVAILABLE, error_detail

log = structlog.get_logger(__name__)

JSON_MEDIA_TYPE: Final = "application/json"


router = APIRouter(prefix="/api/v1", tags=["ingestion"])

# The body is read as bytes (one pydantic call for a whole batch), so FastAPI cannot see it: it is
# described here, by reference to the event schemas the app adds to the document's components.
EVENTS_REQUEST_BODY: Final = {
    "required": True,
    "content": {
        JSON_MEDIA_TYPE: {
            "schema": {
                "oneOf": [
                    any_event_schema(),
                    {"type": "array", "minItems": 1, "items": any_event_schema()},
                ]
            }
        },
        "application/x-ndjson": {
            "schema": {
                "type": "string",
                "description": "One event envelope (the JSON schemas above) per line; blank lines skipped.",
            }
        },
    },
}


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
        400: {"description": "The body is not JSON"},
        401: {"description": "No token, or a bad or expired one"},
        403: {"description": "The token may not publish some event's type or resource; none stored"},
        413: {
            "description": "The body is larger than COLLECTOR_MAX_BODY_BYTES or holds more events than "
            "COLLECTOR_MAX_EVENTS_PER_BODY"
        },
        415: {"description": "Content-Type is missing, or neither JSON nor NDJSON"},
        422: {"description": "No event is valid; `detail` lists every field error with its path"},
        503: {"description": "JetStream unavailable or slow; retry after Retry-After with the same ids"},
    },
    openapi_extra={"requestBody": EVENTS_REQUEST_BODY},
)
async def ingest_events(
    request: Request, ingestor: IngestorDep, settings: SettingsDep, producer: ProducerDep
) -> Response:
    media_type = require_media_type(request, {JSON_MEDIA_TYPE, *NDJSON_MEDIA_TYPES})
    body = await read_body(request, int(settings.max_body_bytes))
    limit = settings.max_events_per_body
    try:
        intake = await (read_ndjson if media_type in NDJSON_MEDIA_TYPES else read_json)(body, limit)
    except TooManyEvents as error:
        raise HTTPException(413, str(error)) from None
    except EventParseError as error:
        status = 400 if error.malformed else 422
        return json_response(error_answer(error.errors, settings.max_errors_listed), status)
    assert producer.publish is not None  # ProducerDep refuses a token without it
    refused = outside_grant(intake, producer.publish)
    if refused:
        return json_response({"detail": refused[: settings.max_errors_listed]}, 403)
    results = await ingestor.ingest(intake)
    return ingest_response(intake, results, settings.max_errors_listed)


def require_media_type(request: Request, accepted: set[str]) -> str:
    """The request's media type, when it is one of `accepted`; else a 415 naming the header.

    No Content-Type is no exception: a body is not taken for JSON on a guess.
    """
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in accepted:
        given = repr(media_type[:80]) if media_type else "missing"
        raise HTTPException(415, f"Content-Type is {given}; send {' or '.join(sorted(accepted, key=len))}")
    return media_type


def outside_grant(intake: Intake, grant: Grant) -> list[dict[str, Any]]:
    """One error per event the token may not publish (its type, or its resource id).

    Each distinct type and resource id of the body is checked once (a body of a thousand events
    names a few types and a few hundred resources); the events are listed only when one is refused.
    """
    if grant.permits_all:
        return []
    events = intake.events.values()
    refused_types = {t for t in {e.event for e in events} if not grant.permits_type(t)}
    refused_resources = {r for r in {e.resource_id for e in events} if not grant.permits_resource(r)}
    if not refused_types and not refused_resources:
        return []
    errors = []
    for index, event in sorted(intake.events.items()):
        loc: tuple[str | int, ...] = () if intake.single else (index,)
        if event.event in refused_types:
            message = f"your token may not publish {event.event!r} events; {grant}"
            errors.append(error_detail((*loc, "event"), message, "forbidden"))
        elif event.resource_id in refused_resources:
            message = f"your token may not publish events about {event.resource_id!r}; {grant}"
            errors.append(error_detail((*loc, "resource_id"), message, "forbidden"))
    return errors


def error_answer(errors: Iterable[FieldError], limit: int) -> dict[str, Any]:
    """A 4xx body listing the first `limit` errors, and how many there are in all."""
    listed, total = first_errors(errors, limit)
    answer: dict[str, Any] = {"detail": listed}
    if total > len(listed):
        answer["errors_total"] = total
        answer["errors_omitted"] = total - len(listed)
    return answer


def first_errors(errors: Iterable[FieldError], limit: int) -> tuple[list[dict[str, Any]], int]:
    """The first `limit` errors as `detail` entries, and the count of all of them."""
    listed = []
    total = 0
    for error in errors:
        total += 1
        if total <= limit:
            listed.append(error_detail(error.loc, error.message, error.type))
    return listed, total


def ingest_response(intake: Intake, results: list[EventResult], max_errors: int) -> Response:
    """The answer to a body of events: the status code says whether all, some or none were accepted."""
    counts = Counter(r.status for r in results)
    accepted = counts["stored"] + counts["duplicate"] + counts["unchanged"]
    body: dict[str, Any] = {
        "stored": counts["stored"],
        "duplicates": counts["duplicate"],
        "unchanged": counts["unchanged"],
        "invalid": counts["invalid"],
        "failed": counts["failed"],
        "events": _event_entries(results, single=intake.single, max_errors=max_errors),
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
        body |= error_answer(intake.errors(), max_errors)
    elif status == 503:
        body |= error_body(
            STORE_UNAVAILABLE, "event store unavailable; retry with the same event ids after Retry-After"
        )
    return json_response(body, status, headers)


def _event_entries(results: list[EventResult], *, single: bool, max_errors: int) -> list[dict[str, Any]]:
    """One entry per event; the errors of invalid ones while fewer than `max_errors` are listed."""
    entries = []
    budget = max_errors
    for result in results:
        entries.append(result.as_json(single=single, max_errors=budget))
        budget -= min(budget, len(result.errors))
    return entries


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
