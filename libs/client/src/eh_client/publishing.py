"""Publishing events to the collector, safe to retry: every event has its id before the first try.

The collector stores an id once (JetStream deduplication), so a retry after a timeout or a 503
cannot store an event twice. Only the events not yet accepted are sent again.
"""

import asyncio
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

import httpx

from eh_client.backoff import Backoff
from eh_client.errors import PublishError
from eh_contracts.envelope import EventEnvelope, new_event_id

EventStatus = Literal["stored", "duplicate", "unchanged", "invalid", "failed"]
_ACCEPTED: Final = frozenset({"stored", "duplicate", "unchanged"})
_RETRYABLE_STATUS: Final = frozenset({502, 503, 504})

EventInput = EventEnvelope | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PublishedEvent:
    """What became of one event: `stored` (at `seq`), `duplicate` (its id was stored before, at
    `seq`), `unchanged` (a status that repeats the current state), `invalid` (`errors` say why)
    or `failed` (not stored; retries spent)."""

    index: int
    id: str
    status: EventStatus
    seq: int | None = None
    errors: tuple[dict[str, Any], ...] = ()
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status in _ACCEPTED


@dataclass(frozen=True, slots=True)
class PublishResult:
    events: list[PublishedEvent] = field(default_factory=list)
    attempts: int = 1

    @property
    def ok(self) -> bool:
        """Every event was accepted."""
        return all(event.accepted for event in self.events)

    @property
    def rejected(self) -> list[PublishedEvent]:
        return [event for event in self.events if not event.accepted]

    def count(self, status: EventStatus) -> int:
        return sum(1 for event in self.events if event.status == status)


def with_ids(events: Iterable[EventInput]) -> list[dict[str, Any]]:
    """Plain JSON objects, each with an id (a new one where the producer gave none)."""
    prepared = []
    for event in events:
        if isinstance(event, EventEnvelope):
            body: dict[str, Any] = json.loads(event.to_json())
        else:
            body = dict(event)
        if not body.get("id"):
            body["id"] = new_event_id()
        prepared.append(body)
    return prepared


async def publish(
    http: httpx.AsyncClient, events: Iterable[EventInput], *, retries: int = 5, backoff: Backoff | None = None
) -> PublishResult:
    """POST the events as one JSON array; retry what failed with the same ids.

    Raises:
        PublishError: the body was refused as a whole (400, 413, 415, ...) or retries are spent
            without any answer from the collector.
    """
    bodies = with_ids(events)
    if not bodies:
        return PublishResult([])
    backoff = backoff or Backoff(initial=0.2, maximum=5.0)
    results: dict[int, PublishedEvent] = {}
    pending = list(range(len(bodies)))
    attempt = 0
    while True:
        attempt += 1
        try:
            answer = await _post(http, [bodies[i] for i in pending])
        except httpx.TransportError as error:
            if attempt > retries:
                raise PublishError(f"collector unreachable after {attempt} attempts: {error}") from error
            await asyncio.sleep(backoff.next())
            continue
        for position, item in enumerate(answer):
            index = pending[position]
            results[index] = PublishedEvent(
                index=index,
                id=str(bodies[index]["id"]),
                status=item["status"],
                seq=item.get("seq"),
                errors=tuple(item.get("errors", ())),
                error=item.get("error"),
            )
        pending = [i for i in pending if results[i].status == "failed"]
        if not pending or attempt > retries:
            return PublishResult([results[i] for i in range(len(bodies))], attempts=attempt)
        await asyncio.sleep(backoff.next())


async def _post(http: httpx.AsyncClient, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    content = json.dumps(bodies, default=_json_default, separators=(",", ":")).encode()
    response = await http.post(
        "/api/v1/events", content=content, headers={"Content-Type": "application/json"}
    )
    if response.status_code in _RETRYABLE_STATUS and "events" not in response.text[:200]:
        # A proxy or a collector that could not even read the body: nothing was judged.
        raise httpx.TransportError(f"HTTP {response.status_code} from the collector")
    try:
        answer = response.json()
    except ValueError:
        raise PublishError(
            f"HTTP {response.status_code}: {response.text[:300]}", status=response.status_code
        ) from None
    items = answer.get("events") if isinstance(answer, dict) else None
    if not isinstance(items, list) or len(items) != len(bodies):
        detail = answer.get("detail") if isinstance(answer, dict) else answer
        raise PublishError(f"HTTP {response.status_code}: {detail}", status=response.status_code)
    return items


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
