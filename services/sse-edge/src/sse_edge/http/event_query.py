"""The history parameters of an event query: time range, limit, and the id to resume after.

Parsed and checked before a stream opens, so that every mistake is a 4xx naming its parameter.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from fastapi import HTTPException

from eh_contracts.expressions import CompiledExpression
from eh_contracts.payloads import RFC3339_PATTERN
from eh_contracts.subjects import SubjectFilter
from eh_contracts.times import rfc3339
from eh_runtime.service import error_detail
from sse_edge.event_selection import EventSelection
from sse_edge.time_window import TimeWindow

MAX_REPLAY_LIMIT: Final = 10_000
_SPACE_FOR_PLUS: Final = re.compile(r" ([0-9]{2}:?[0-9]{2})$")
_RFC3339: Final = re.compile(RFC3339_PATTERN)
# A JetStream sequence is an unsigned 64-bit integer: at most 20 ASCII digits (`str.isdigit` also
# takes "²" and "٣", and `int` refuses more than 4,300 digits with an error of its own).
_SEQUENCE: Final = re.compile(r"[0-9]{1,20}")
EVENT_ID_TEXT_PATTERN: Final = r"^\s*[0-9]{1,20}\s*$"
"""How an event id is given (surrounding spaces allowed), for the OpenAPI document."""
MAX_SEQUENCE: Final = 2**64 - 1


@dataclass(frozen=True, slots=True)
class EventQuery:
    """What one `GET /api/v1/events` asks for, validated."""

    filter: SubjectFilter
    window: TimeWindow = field(default_factory=TimeWindow)
    limit: int | None = None
    resume_after: int | None = None
    snapshot: bool = False
    """First the latest stored event of every matching (type, resource), then live."""
    expression: CompiledExpression | None = None
    """`filter=`: what each event must satisfy beyond its type and resource."""

    @property
    def selection(self) -> EventSelection:
        """What the query keeps of the stored events its subjects select."""
        return EventSelection(self.window, self.expression)

    def ends_by(self, now: datetime) -> bool:
        """True for a bounded query: its end time has already passed."""
        return self.window.end is not None and self.window.end <= now

    def describe(self) -> dict[str, Any]:
        return {
            "filters": self.filter.describe(),
            "start_time": rfc3339(self.window.start)
            if self.window.start and self.resume_after is None
            else None,
            "end_time": rfc3339(self.window.end) if self.window.end else None,
            "limit": self.limit if self.resume_after is None else None,
            "resume_after": self.resume_after,
            "snapshot": self.snapshot,
            "filter": self.expression.text if self.expression else None,
        }


def parse_time(parameter: str, value: str | None) -> datetime | None:
    """An RFC 3339 time with an offset (`Z` or `+02:00`), as UTC; None when absent."""
    if value is None or value == "":
        return None
    # An unencoded "+02:00" in a URL arrives as " 02:00"; it can only have meant the offset.
    text = _SPACE_FOR_PLUS.sub(r"+\1", value.strip())
    shown = repr(value[:40])
    try:
        if not _RFC3339.fullmatch(text):
            raise ValueError(text)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _invalid(parameter, f"{shown} is not an RFC 3339 time such as 2024-03-20T10:00:00Z") from None
    if moment.tzinfo is None:
        raise _invalid(parameter, f"{shown} has no UTC offset; add Z or +hh:mm")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise _invalid(parameter, f"{shown} is outside years 1 to 9999 once converted to UTC") from None


def parse_last_event_id(header: str | None, query: str | None) -> int | None:
    """The sequence to resume after. The header wins: a browser's EventSource sends it on every
    reconnection, while the query parameter stays what the page first asked for."""
    name, raw = ("Last-Event-ID", header) if header not in (None, "") else ("last_event_id", query)
    if raw is None or raw == "":
        return None
    text = raw.strip()
    if not _SEQUENCE.fullmatch(text) or int(text) > MAX_SEQUENCE:
        raise HTTPException(
            400, f"{name} {raw[:40]!r} is not an event id: ids are stream sequence numbers (ASCII digits)"
        )
    return int(text)


def parse_event_query(
    subject_filter: SubjectFilter,
    *,
    start_time: str | None,
    end_time: str | None,
    limit: int | None,
    resume_after: int | None,
    snapshot: str | None = None,
    expression: CompiledExpression | None = None,
) -> EventQuery:
    start = parse_time("start_time", start_time)
    end = parse_time("end_time", end_time)
    if start is not None and end is not None and end < start:
        raise _invalid("end_time", f"end_time {end_time} is before start_time {start_time}")
    wants_snapshot = parse_snapshot(snapshot)
    if resume_after is not None:
        # On resume the client already has everything up to its id: only end_time still applies.
        return EventQuery(subject_filter, TimeWindow(end=end), None, resume_after, expression=expression)
    if wants_snapshot and (start is not None or end is not None or limit is not None):
        raise _invalid(
            "snapshot",
            "snapshot=latest takes no start_time, end_time or limit: it is the latest event of every "
            "matching type and resource, whatever its time",
        )
    return EventQuery(
        subject_filter, TimeWindow(start=start, end=end), limit, None, wants_snapshot, expression
    )


def parse_snapshot(value: str | None) -> bool:
    """`snapshot=latest` asks for a snapshot; absent or empty, none."""
    if value is None or value == "":
        return False
    if value != "latest":
        raise _invalid("snapshot", f"{value!r} is not a snapshot mode; the one mode is 'latest'")
    return True


def _invalid(parameter: str, message: str) -> HTTPException:
    return HTTPException(422, detail=[error_detail([parameter], message, "value_error") | {"in": "query"}])
