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

The window holds no object per event that the cyclic garbage collector tracks: it is kept in
columns (a few lists and flat integer arrays, whose items, bytes, str and integers, the collector
does not track), not as an object or tuple per event. A 64 MiB window holds ~74,000 events of
~650 bytes; kept as two tracked objects each, at 10,000 events/s they filled the young
generation every 2.5 s, and each young collection walked its 50,000 survivors: a 10-20 ms pause
of the whole edge, and the delivery latency's p99 went from 2.4 ms to 17-22 ms (bench/RESULTS.md,
"The window of recent events and the garbage collector").
"""

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from heapq import merge
from typing import Final, TypeAlias

from eh_contracts.subjects import SubjectFilter
from sse_edge.live.filter_group import FramedEvent

# What one kept event costs beyond its frame and payload: their bytes objects' headers, the type
# and resource id strings, and a slot in each column and index (tracemalloc: 246 bytes an event).
_ENTRY_OVERHEAD: Final = 250
# Distinct (Last-Event-ID, filters) whose joined frames are kept (`joined`); all are forgotten
# when there are more, or when the window evicts.
_JOINED_KEYS: Final = 4096

Ints: TypeAlias = "array[int]"
"""An `array("q")`: integers stored flat, not as objects."""


@dataclass(slots=True)
class RecentSelection:
    """What a resume reads from the window: the selected events, in stream order."""

    seqs: Ints = field(default_factory=lambda: array("q"))
    frames: list[bytes] = field(default_factory=list)


class RecentEvents:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        # One column per field; row i is the event at absolute position `_base + i`.
        self._seqs = array("q")
        self._ends = array("q")  # bytes appended in total up to and including each row
        self._frames: list[bytes] = []
        self._payloads: list[bytes] = []  # the stored envelopes, for filter expressions and times
        self._types: list[str] = []
        self._resources: list[str] = []
        # Absolute positions, ascending, per type and per resource id.
        self._by_type: dict[str, Ints] = {}
        self._by_resource: dict[str, Ints] = {}
        self._base = 0
        self._base_bytes = 0  # bytes appended before the first row
        self._total_bytes = 0
        self.low = 0
        """The first sequence covered; 0 while nothing is."""
        self.last_seq = 0
        """The last sequence the feed received (an event or a skipped message), also with the
        window off; 0 before the first. Every later event reaches the clients registered now."""
        # (after_seq, filters) -> (the selected frames joined, the last_seq they reach).
        self._joined: dict[tuple[int, SubjectFilter], tuple[bytes, int]] = {}

    def clear(self) -> None:
        """Forget everything: the stream was created anew and its sequences start over."""
        del self._seqs[:]
        del self._ends[:]
        for column in (self._frames, self._payloads, self._types, self._resources):
            column.clear()
        self._by_type.clear()
        self._by_resource.clear()
        self._joined.clear()
        self._base = self._base_bytes = self._total_bytes = self.low = self.last_seq = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    @property
    def size_bytes(self) -> int:
        return self._total_bytes - self._base_bytes

    def __len__(self) -> int:
        return len(self._seqs)

    def append(self, event_type: str, resource_id: str, event: FramedEvent, payload: bytes) -> None:
        # Once per live event: written out, not through `skipped` and `_index` (0.7 µs against 1.1).
        seq, frame = event.seq, event.frame
        self.last_seq = seq  # known with the window off too: where a resume's live part begins
        if self.max_bytes <= 0:
            return
        if self.low == 0:
            self.low = seq
        seqs = self._seqs
        position = self._base + len(seqs)
        seqs.append(seq)
        self._frames.append(frame)
        self._payloads.append(payload)
        self._types.append(event_type)
        self._resources.append(resource_id)
        by_type = self._by_type.get(event_type)
        if by_type is None:
            by_type = self._by_type[event_type] = array("q")
        by_type.append(position)
        by_resource = self._by_resource.get(resource_id)
        if by_resource is None:
            by_resource = self._by_resource[resource_id] = array("q")
        by_resource.append(position)
        total = self._total_bytes = self._total_bytes + len(frame) + len(payload) + _ENTRY_OVERHEAD
        self._ends.append(total)
        if total - self._base_bytes > self.max_bytes:
            self._evict()

    def skipped(self, seq: int) -> None:
        """The feed received `seq` but it is not an event: covered all the same."""
        # Known with the window off too: where a resume's live part begins (`last_seq`).
        self.last_seq = seq
        if self.max_bytes <= 0:
            return
        if self.low == 0:
            self.low = seq

    def covers(self, after_seq: int) -> bool:
        """Whether every stored event after `after_seq` up to now is here (or still to come live)."""
        return self.low > 0 and self.low <= after_seq + 1 and after_seq <= self.last_seq

    def select(
        self,
        after_seq: int,
        subject_filter: SubjectFilter,
        payload_selected: Callable[[bytes], bool] | None = None,
    ) -> RecentSelection:
        """The events after `after_seq` that `subject_filter` (and `payload_selected`, given the
        stored envelope, when there is one) select, in stream order."""
        selection = RecentSelection()
        seqs, frames, payloads = self._seqs, self._frames, self._payloads
        for row in self._rows(after_seq, subject_filter):
            if payload_selected is None or payload_selected(payloads[row]):
                selection.seqs.append(seqs[row])
                selection.frames.append(frames[row])
        return selection

    def joined(self, after_seq: int, subject_filter: SubjectFilter, max_bytes: int) -> bytes | None:
        """The frames of the events after `after_seq` that `subject_filter` selects, joined in
        stream order; None when they are more than `max_bytes`.

        Shared: when an edge restarts, the clients of one resource come back with the same
        Last-Event-ID (the last event they got), thousands of them within a second. The first
        resume joins the frames; the next ones get the same bytes, extended by the events that
        arrived since, instead of each picking and joining its ~50 frames again.
        """
        key = (after_seq, subject_filter)
        cached = self._joined.get(key)
        if cached is not None and cached[1] == self.last_seq:
            return cached[0] if len(cached[0]) <= max_bytes else None
        frames = self._frames
        if cached is not None:
            more = [frames[row] for row in self._rows(cached[1], subject_filter)]
            chunk = cached[0] + b"".join(more) if more else cached[0]
        else:
            chunk = b"".join([frames[row] for row in self._rows(after_seq, subject_filter)])
        if len(chunk) > max_bytes:
            return None
        if cached is None and len(self._joined) >= _JOINED_KEYS:
            self._joined.clear()
        self._joined[key] = (chunk, self.last_seq)
        return chunk

    def _rows(self, after_seq: int, subject_filter: SubjectFilter) -> Iterator[int]:
        """The rows after `after_seq` whose type and resource id `subject_filter` selects."""
        first = bisect_right(self._seqs, after_seq)
        types = [t.value for t in subject_filter.types]
        resources = list(subject_filter.resource_ids)
        if not types and not resources:
            yield from range(first, len(self._seqs))
            return
        # Read through the smaller index; check the other dimension per event.
        start = self._base + first
        by_type = _positions(self._by_type, types, start) if types else None
        by_resource = _positions(self._by_resource, resources, start) if resources else None
        if by_type is not None and (by_resource is None or by_type[1] <= by_resource[1]):
            positions = by_type[0]
        else:
            assert by_resource is not None
            positions = by_resource[0]
        base = self._base
        if by_type is None or by_resource is None:
            # One dimension only: its index holds exactly the rows selected.
            for position in positions:
                yield position - base
            return
        event_types, resource_ids = self._types, self._resources
        for position in positions:
            row = position - base
            if subject_filter.matches(event_types[row], resource_ids[row]):
                yield row

    def _evict(self) -> None:
        """Drop the oldest events until a tenth of the window is free.

        Cost in proportion to what goes and to the number of keys, not to the window: where to cut
        is a search in the running byte totals, and the indexes are cut at their heads, not rebuilt
        (rebuilding 70,000 entries, or summing the sizes of the 7,000 that go, in a loop paused the
        edge for 5-20 ms at each eviction).
        """
        keep_from = self._total_bytes - (self.max_bytes - self.max_bytes // 10)
        drop = min(bisect_left(self._ends, keep_from) + 1, len(self._ends))
        self.low = self._seqs[drop - 1] + 1
        self._base_bytes = self._ends[drop - 1]
        del self._seqs[:drop]
        del self._ends[:drop]
        for column in (self._frames, self._payloads, self._types, self._resources):
            del column[:drop]
        self._base += drop
        self._joined.clear()
        for index in (self._by_type, self._by_resource):
            for key, positions in list(index.items()):
                gone = bisect_left(positions, self._base)
                if gone == len(positions):
                    del index[key]
                elif gone:
                    del positions[:gone]


def _positions(index: dict[str, Ints], keys: Iterable[str], start: int) -> tuple[Iterable[int], int]:
    """The positions from `start` on under any of `keys`, ascending, and how many there are."""
    parts = []
    count = 0
    for key in keys:
        positions = index.get(key)
        if positions:
            tail = positions[bisect_left(positions, start) :]
            if tail:
                parts.append(tail)
                count += len(tail)
    if len(parts) == 1:
        return parts[0], count
    return merge(*parts), count
