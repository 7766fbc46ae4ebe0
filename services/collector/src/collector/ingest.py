"""From validated events to stored ones, with one result per event: the path every input takes.

HTTP bodies, NATS requests and heartbeats all end here. Status events (node, pipeline, container)
go through the resource states, which store only real transitions; every other event is published
as it is, in atomic batches.
"""

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any, Final, Literal

from nats.errors import Error as NatsError
from pydantic_core import to_json

from collector.intake import Intake, reject_future, reject_oversized
from collector.resource_states import STATE_FIELDS, ResourceStates, TransitionResult
from eh_contracts.envelope import FieldError
from eh_contracts.records import EventRecord
from eh_runtime.event_publisher import EventPublisher, StoreResult, StoreUnavailable
from eh_runtime.service import STORE_UNAVAILABLE, error_detail

EventStatus = Literal["stored", "duplicate", "unchanged", "invalid", "failed"]
ACCEPTED: Final = frozenset({"stored", "duplicate", "unchanged"})
# What a client reads for a failed event; the cause (a NATS error text) is for the operators' log.
STORE_UNAVAILABLE_MESSAGE: Final = "event store unavailable; retry with the same id"

# Room for the headers a stored event is sent with (id, TTL, batch headers).
_HEADER_ALLOWANCE: Final = 512


# Not frozen: a frozen dataclass's __init__ costs microseconds, and there is one per event.
@dataclass(slots=True)
class EventResult:
    """What became of one event of a request.

    - `stored`: new in the stream, at `seq`;
    - `duplicate`: its id was already stored (at `seq`), nothing stored again;
    - `unchanged`: a status report that repeats the current state (`seq`: the event that made it);
    - `invalid`: `errors` says why, nothing stored;
    - `failed`: JetStream did not acknowledge it (`error`, for the log); retry with the same id.
    """

    index: int
    status: EventStatus
    id: str | None = None
    seq: int | None = None
    error: str | None = None
    errors: tuple[FieldError, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.status in ACCEPTED

    def as_json(self, *, single: bool = False, max_errors: int | None = None) -> dict[str, Any]:
        """The answer's entry; `max_errors` lists at most that many errors (with `errors_omitted`)."""
        if self.seq is not None and self.id is not None and self.error is None and not self.errors:
            return {"index": self.index, "status": self.status, "id": self.id, "seq": self.seq}
        result: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.id is not None:
            result["id"] = self.id
        if self.seq is not None:
            result["seq"] = self.seq
        if self.status == "failed":
            result["error"] = STORE_UNAVAILABLE_MESSAGE
            result["code"] = STORE_UNAVAILABLE
        if self.errors:
            listed = self.errors if max_errors is None else self.errors[:max_errors]
            result["errors"] = [
                error_detail(e.loc if single else (self.index, *e.loc), e.message, e.type) for e in listed
            ]
            if len(listed) < len(self.errors):
                result["errors_omitted"] = len(self.errors) - len(listed)
        return result


def _status(outcome: StoreResult) -> EventStatus:
    return "failed" if outcome.seq is None else "duplicate" if outcome.duplicate else "stored"


def from_transition(index: int, event_id: str, result: TransitionResult) -> EventResult:
    return EventResult(index, result.status, event_id, result.seq, result.error)


def _runs(events: dict[int, EventRecord]) -> list[tuple[bool, dict[int, EventRecord]]]:
    """The events in index order, cut into runs of transitions and runs of other events."""
    if STATE_FIELDS.keys().isdisjoint(e.fields["event"] for e in events.values()):
        return (
            [(False, events)] if list(events) == sorted(events) else [(False, dict(sorted(events.items())))]
        )
    ordered = [(index, events[index]) for index in sorted(events)]
    return [
        (is_transition, dict(run))
        for is_transition, run in groupby(ordered, key=lambda item: item[1].event in STATE_FIELDS)
    ]


class Ingestor:
    """Stores the valid events of an intake and says, per event, what became of it."""

    def __init__(self, publisher: EventPublisher, states: ResourceStates, max_clock_skew: timedelta) -> None:
        self.publisher = publisher
        self.states = states
        self.max_clock_skew = max_clock_skew

    async def ingest(self, intake: Intake) -> list[EventResult]:
        """One result per event of the intake (valid or not), in index order."""
        reject_future(intake, now=datetime.now(UTC), max_skew=self.max_clock_skew)
        payloads = {i: to_json(e.fields) for i, e in intake.events.items()}
        reject_oversized(intake, payloads, self.publisher.max_payload - _HEADER_ALLOWANCE)
        results: dict[int, EventResult] = {
            index: EventResult(index, "invalid", errors=tuple(errors))
            for index, errors in intake.rejected.items()
        }
        # Runs of consecutive events of one kind, one after the other: the stream gets the request's
        # order (status events of different resources within one run are stored concurrently).
        for is_transition, run in _runs(intake.events):
            if is_transition:
                results.update(await self._transitions(run))
            else:
                results.update(await self._publish(run, payloads))
        return [results[index] for index in sorted(results)]

    async def _publish(
        self, events: dict[int, EventRecord], payloads: dict[int, bytes]
    ) -> dict[int, EventResult]:
        if not events:
            return {}
        indexes = list(events)
        records = list(events.values())
        message = self.publisher.message
        messages = [message(e, payloads[i]) for i, e in zip(indexes, records, strict=True)]
        try:
            outcomes = await self.publisher.publish_messages(messages)
        except StoreUnavailable as error:
            return {
                i: EventResult(i, "failed", e.id, error=str(error))
                for i, e in zip(indexes, records, strict=True)
            }
        return {
            index: EventResult(index, _status(outcome), event.id, outcome.seq, outcome.error)
            for index, event, outcome in zip(indexes, records, outcomes, strict=True)
        }

    async def _transitions(self, events: dict[int, EventRecord]) -> dict[int, EventResult]:
        """Each resource's reports in request order; different resources concurrently."""
        by_resource: dict[tuple[str, str], list[int]] = defaultdict(list)
        for index, event in events.items():
            by_resource[(STATE_FIELDS[event.event].kind, event.resource_id)].append(index)

        async def one_resource(indexes: Iterable[int]) -> list[EventResult]:
            results = []
            for index in indexes:
                try:
                    outcome = await self.states.apply(events[index])
                except (StoreUnavailable, NatsError, TimeoutError) as error:
                    outcome = TransitionResult("failed", None, None, f"{type(error).__name__}: {error}")
                results.append(from_transition(index, events[index].id, outcome))
            return results

        per_resource = await asyncio.gather(*(one_resource(ix) for ix in by_resource.values()))
        return {result.index: result for results in per_resource for result in results}
