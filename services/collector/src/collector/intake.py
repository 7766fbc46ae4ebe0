"""Reading a request body into events: one object, a JSON array, or NDJSON, each event on its own.

A body is validated as a whole first (one pydantic call for a thousand events); only when some event
is invalid are the items validated one by one, so that every good event is kept and every bad one is
reported by its index with its own errors. Whole-body problems (not JSON, not an object or array, no
events at all) reject the request.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import pydantic_core

from eh_contracts.envelope import EventParseError, FieldError
from eh_contracts.records import EventRecord, parse_record, parse_records

NDJSON_MEDIA_TYPES: Final = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})


@dataclass
class Intake:
    """The events of one request: the valid ones by index, and the errors of the others.

    `single` is true for a body that was one object: its error paths carry no index.
    """

    single: bool = False
    events: dict[int, EventRecord] = field(default_factory=dict)
    rejected: dict[int, list[FieldError]] = field(default_factory=dict)

    def reject(self, index: int, errors: list[FieldError]) -> None:
        self.events.pop(index, None)
        self.rejected.setdefault(index, []).extend(errors)

    def errors(self) -> Iterator[FieldError]:
        """Every problem, located in the body: `(index, *path)`, or the path alone for one object."""
        for index in sorted(self.rejected):
            for error in self.rejected[index]:
                yield error if self.single else FieldError((index, *error.loc), error.message, error.type)


def read_json(body: bytes) -> Intake:
    """One event object or an array of them.

    Raises:
        EventParseError: the body as a whole is unusable (malformed JSON, no events, wrong shape).
    """
    start = body.lstrip()[:1]
    try:
        events = parse_records(body)
    except EventParseError as error:
        if error.malformed:
            raise
        if start == b"{":
            intake = Intake(single=True)
            intake.reject(0, error.errors)
            return intake
        if start == b"[":
            return _one_by_one(body, error)
        raise
    return Intake(single=start == b"{", events=dict(enumerate(events)))


def _one_by_one(body: bytes, whole: EventParseError) -> Intake:
    items = pydantic_core.from_json(body)
    if not isinstance(items, list) or not items:
        raise whole
    intake = Intake()
    for index, item in enumerate(items):
        try:
            intake.events[index] = parse_record(pydantic_core.to_json(item))
        except EventParseError as error:
            intake.reject(index, error.errors)
    return intake


def read_ndjson(body: bytes) -> Intake:
    """One event per line; the index of an event is its line number minus one; blank lines are skipped.

    Raises:
        EventParseError: the body holds no event at all.
    """
    lines = body.split(b"\n")
    numbered = [(index, line) for index, line in enumerate(lines) if line.strip()]
    if not numbered:
        raise EventParseError(
            [FieldError((), "the body holds no events (one JSON object per line)", "too_short")]
        )
    intake = Intake()
    try:
        # All lines at once as one array: the common case of a body without a bad line.
        events = parse_records(b"[" + b",".join(line for _, line in numbered) + b"]")
    except EventParseError:
        for index, line in numbered:
            try:
                intake.events[index] = parse_record(line)
            except EventParseError as error:
                intake.reject(index, error.errors)
    else:
        intake.events = {index: event for (index, _), event in zip(numbered, events, strict=True)}
    return intake


def reject_future(intake: Intake, *, now: datetime, max_skew: timedelta) -> None:
    """Reject events stamped further ahead of the collector's clock than `max_skew`."""
    latest = now + max_skew
    # Most bodies have no such event; `max` compares in C, and times parsed from one body share one
    # tzinfo object, which spares the per-comparison offset lookups of the loop below.
    if not intake.events or max(e.timestamp for e in intake.events.values()) <= latest:
        return
    for index, event in list(intake.events.items()):
        if event.timestamp > latest:
            message = (
                f"timestamp {event.timestamp.isoformat()} is more than {max_skew} ahead of the "
                "collector's clock (COLLECTOR_MAX_CLOCK_SKEW)"
            )
            intake.reject(index, [FieldError(("timestamp",), message, "timestamp_in_future")])


def reject_oversized(intake: Intake, payloads: dict[int, bytes], limit: int) -> None:
    """Reject events whose stored form exceeds what the NATS server accepts in one message."""
    for index, payload in list(payloads.items()):
        if len(payload) > limit:
            del payloads[index]
            intake.reject(
                index, [FieldError((), f"event is {len(payload)} bytes, at most {limit}", "too_large")]
            )
