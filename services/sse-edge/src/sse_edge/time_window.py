"""The event-time range of a query, applied to stored bytes without parsing the whole event.

The collector stores envelopes with `id`, `event`, `timestamp` first and in that order, and
neither an id (a JSON string, its quotes escaped) nor an event type can contain the text
`"timestamp":"`; so its first occurrence is the envelope's own timestamp.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

_TIMESTAMP_KEY: Final = b'"timestamp":"'
EARLIEST: Final = datetime.min.replace(tzinfo=UTC)
LATEST: Final = datetime.max.replace(tzinfo=UTC)
UNIX_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
STORE_CLOCK_END: Final = datetime(2262, 4, 11, 23, 47, 16, tzinfo=UTC)
"""The last time an int64 count of nanoseconds since 1970 can hold: JetStream's store clock."""


def event_timestamp(stored: bytes) -> datetime | None:
    """The envelope's `timestamp` from its stored JSON (or an SSE frame holding it), in UTC.

    None when there is none that can be compared: the collector stores only RFC 3339 times in
    UTC, but whatever else was stored (a naive time, text, a time whose UTC year is out of range)
    must leave a time-ranged query answering, so it simply matches no range.
    """
    start = stored.find(_TIMESTAMP_KEY)
    if start < 0:
        return None
    start += len(_TIMESTAMP_KEY)
    end = stored.find(b'"', start)
    try:
        moment = datetime.fromisoformat(stored[start:end].decode())
        if moment.tzinfo is None:
            return None
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def shifted(moment: datetime, delta: timedelta) -> datetime:
    """`moment + delta`, held within the calendar (years 1 to 9999) instead of overflowing."""
    try:
        return moment + delta
    except OverflowError:
        return EARLIEST if delta < timedelta(0) else LATEST


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Events whose own timestamp t satisfies start <= t <= end (either bound optional)."""

    start: datetime | None = None
    end: datetime | None = None

    @property
    def bounded(self) -> bool:
        return self.start is not None or self.end is not None

    def contains(self, stored: bytes) -> bool:
        if not self.bounded:
            return True
        timestamp = event_timestamp(stored)
        if timestamp is None:
            return False
        return (self.start is None or timestamp >= self.start) and (self.end is None or timestamp <= self.end)
