"""The last events this edge's live feed received, kept in memory to serve resumes without NATS.

When an edge restarts or drains, its clients come back to the others within seconds, each with a
Last-Event-ID a few seconds old. Each resume would otherwise open its own JetStream consumer: a
storm on NATS. The live feed already received every one of those events, in stream order and
without a gap (an ordered consumer), so the edge keeps a window of them, bounded in bytes, and a
resume whose Last-Event-ID falls inside it is answered from here, exactly as JetStream would:
the events after it that the stream's filters select, then live.

The window covers every stored sequence from `low` to `last_seq`: each event the feed received
(and each sequence it skipped as not an event, which a JetStream replay skips too). Events are
indexed by type and by resource id, so that a client filtered on a few resources reads only
those, not the whole window. When the window holds more than its bytes, the oldest tenth goes.
"""

import heapq
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from eh_contracts.subjects import SubjectFilter
from sse_edge.live.filter_group import FramedEvent

# What one kept event costs beyond its bytes: the tuple, the list slots, the index entries.
_ENTRY_OVERHEAD: Final = 200


@dataclass(frozen=True, slots=True)
class RecentEvent:
    event_type: str
    resource_id: str
    event: FramedEvent
    payload: bytes  # the stored envelope, for filter expressions


class RecentEvents:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._events: list[RecentEvent] = []
        self._seqs: list[int] = []
        self._base = 0  # the absolute position of _events[0]
        self._by_type: dict[str, list[int]] = {}  # absolute positions, ascending
        self._by_resource: dict[str, list[int]] = {}
        self._bytes = 0
        self.low = 0
        """The first sequence covered; 0 while nothing is."""
        self.last_seq = 0
        """The last sequence the feed received (an event or a skipped message)."""

    def clear(self) -> None:
        """Forget everything: the stream was created anew and its sequences start over."""
        self._events.clear()
        self._seqs.clear()
        self._by_type.clear()
        self._by_resource.clear()
        self._base = self._bytes = self.low = self.last_seq = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._events)

    def append(self, event_type: str, resource_id: str, event: FramedEvent, payload: bytes) -> None:
        if self.max_bytes <= 0:
            return
        self.skipped(event.seq)
        position = self._base + len(self._events)
        self._events.append(RecentEvent(event_type, resource_id, event, payload))
        self._seqs.append(event.seq)
        self._by_type.setdefault(event_type, []).append(position)
        self._by_resource.setdefault(resource_id, []).append(position)
        self._bytes += len(event.frame) + len(payload) + _ENTRY_OVERHEAD
        if self._bytes > self.max_bytes:
            self._evict()

    def skipped(self, seq: int) -> None:
        """The feed received `seq` but it is not an event: covered all the same."""
        if self.max_bytes <= 0:
            return
        if self.low == 0:
            self.low = seq
        self.last_seq = seq

    def covers(self, after_seq: int) -> bool:
        """Whether every stored event after `after_seq` up to now is here (or still to come live)."""
        return self.low > 0 and self.low <= after_seq + 1 and after_seq <= self.last_seq

    def after(self, after_seq: int, subject_filter: SubjectFilter) -> Iterator[RecentEvent]:
        """The events after `after_seq` that `subject_filter` selects, in stream order."""
        start = self._base + bisect_right(self._seqs, after_seq)
        types = [t.value for t in subject_filter.types]
        resources = list(subject_filter.resource_ids)
        events, base = self._events, self._base
        if not types and not resources:
            yield from events[start - base :]
            return
        # Read through the smaller index; check the other dimension per event.
        by_type = self._positions(self._by_type, types, start) if types else None
        by_resource = self._positions(self._by_resource, resources, start) if resources else None
        if by_type is not None and (by_resource is None or by_type[1] <= by_resource[1]):
            positions = by_type[0]
        else:
            assert by_resource is not None
            positions = by_resource[0]
        for position in positions:
            recent = events[position - base]
            if subject_filter.matches(recent.event_type, recent.resource_id):
                yield recent

    def _positions(
        self, index: dict[str, list[int]], keys: Iterable[str], start: int
    ) -> tuple[Iterable[int], int]:
        parts = []
        count = 0
        for key in keys:
            positions = index.get(key)
            if positions:
                tail = positions[bisect_right(positions, start - 1) :]
                if tail:
                    parts.append(tail)
                    count += len(tail)
        if len(parts) == 1:
            return parts[0], count
        return heapq.merge(*parts), count

    def _evict(self) -> None:
        """Drop the oldest events until a tenth of the window is free, then reindex what stays."""
        target = self.max_bytes - self.max_bytes // 10
        drop = 0
        freed = 0
        while drop < len(self._events) and self._bytes - freed > target:
            recent = self._events[drop]
            freed += len(recent.event.frame) + len(recent.payload) + _ENTRY_OVERHEAD
            drop += 1
        if drop == 0:
            return
        self.low = self._seqs[drop - 1] + 1
        del self._events[:drop]
        del self._seqs[:drop]
        self._base += drop
        self._bytes -= freed
        self._by_type = {}
        self._by_resource = {}
        for offset, recent in enumerate(self._events):
            position = self._base + offset
            self._by_type.setdefault(recent.event_type, []).append(position)
            self._by_resource.setdefault(recent.resource_id, []).append(position)
