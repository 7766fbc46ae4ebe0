"""The event-time range of a query, applied to stored bytes without parsing the whole event.

The collector stores envelopes with `id`, `event`, `timestamp` first and in that order, and
neither an id (a JSON string, its quotes escaped) nor an event type can contain the text
`"timestamp":"`; so its first occurrence is the envelope's own timestamp.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Final

_TIMESTAMP_KEY: Final = b'"timestamp":"'


def event_timestamp(stored: bytes) -> datetime | None:
    """The envelope's `timestamp` from its stored JSON (or an SSE frame holding it)."""
    start = stored.find(_TIMESTAMP_KEY)
    if start < 0:
        return None
    start += len(_TIMESTAMP_KEY)
    end = stored.find(b'"', start)
    try:
        return datetime.fromisoformat(stored[start:end].decode())
    except ValueError:
        return None


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
