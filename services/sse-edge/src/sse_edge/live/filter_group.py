"""The frames one filter wants, kept once for every client with that filter.

A thousand dashboards that all watch "everything" should cost one append per event, not a
thousand. Clients with the same filter and time window form a `FilterGroup`: the live feed appends
each wanted frame to the group's log once, and each client keeps only a position in it. A writer
that wakes up takes everything from its position to the end in one piece; clients woken by the
same events usually ask for the same range, so that piece is joined once and shared.

A client whose writer waits for the next frame *parks* on its group. An append hands the parked
set, as it is, to the fan-out's flush (`fanout_flush`), which tells each of them once per turn
of the event loop: one O(1) step per group and event here, whatever the number of clients.

The log is bounded: when it holds more than a client buffer (plus a quarter of slack, so that
this check runs once per many events, not per event), every client more than a buffer behind is
*spilled* (its metrics conflated into a private backlog, or cut off with `stream.overflow`), and the
frames every remaining client has read are dropped.

The log is kept in columns (frames, and flat arrays of sequences, byte offsets and store times),
not as the `FramedEvent` objects: a log holds up to a client buffer and a quarter of frames
(~3,700 of 350 bytes), so a hundred groups held hundreds of thousands of objects that the cyclic
garbage collector tracks. They filled its young generation every few seconds, and each young
collection walked 50,000 of them: a 10-20 ms pause of the edge, the tail of the delivery latency.
"""

from array import array
from bisect import bisect_right
from dataclasses import dataclass
from typing import Protocol

from eh_contracts.expressions import CompiledExpression
from eh_contracts.subjects import SubjectFilter
from sse_edge.live.fanout_flush import FanoutFlush
from sse_edge.time_window import TimeWindow


# Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__, 0.5 µs
# against 0.13 µs, and the live feed makes one per event. Nothing changes one after it is made.
@dataclass(slots=True)
class FramedEvent:
    """A live event as every client receives it: framed once, shared by reference."""

    seq: int
    frame: bytes
    conflation_key: str | None  # the subject, for types where only the latest per resource matters
    stored_at: float  # epoch seconds JetStream stored it: the start of the delivery lag


GroupKey = tuple[SubjectFilter, TimeWindow | None, str | None]
"""Subjects, time window, and the canonical text of the filter expression."""


class GroupReader(Protocol):
    """What a group needs of each subscriber reading its log (`live.subscriber.Subscriber`)."""

    @property
    def pos(self) -> int:
        """Its position in the log: everything before it has been taken."""

    @property
    def backlog_bytes(self) -> int:
        """Bytes it holds outside the log (conflated metrics), counted against its buffer."""

    def spill(self, group: "FilterGroup") -> None:
        """It is more than a buffer behind: move off the log (conflate or close)."""

    def frames_arrived(self, now: float) -> None:
        """It parked on this group and frames were appended: write them or wake its writer."""


class FilterGroup:
    __slots__ = (
        "_base",
        "_base_bytes",
        "_chunk",
        "_chunk_range",
        "_conflation_keys",
        "_ends",
        "_flush",
        "_frames",
        "_parked",
        "_seqs",
        "_stored_at",
        "_total_bytes",
        "_trim_at",
        "end",
        "expression",
        "key",
        "max_bytes",
        "readers",
        "window",
    )

    def __init__(
        self,
        key: GroupKey,
        max_bytes: int,
        flush: FanoutFlush,
        expression: CompiledExpression | None = None,
    ) -> None:
        self.key = key
        self._flush = flush
        self.expression = expression  # evaluated by the index, once per event for every group holding it
        window = key[1]
        self.window = window if window is not None and window.bounded else None
        self.max_bytes = max_bytes
        self.readers: set[GroupReader] = set()
        # Columns, so that a range of frames is one slice and one join, and so that the log holds
        # no object per event for the garbage collector (bytes, str and arrays it does not track).
        self._seqs = array("q")
        self._frames: list[bytes] = []
        self._conflation_keys: list[str | None] = []
        self._stored_at = array("d")
        self._ends = array("q")  # bytes appended, in total, up to and including each frame
        self._base = 0  # absolute position of the first row
        # The absolute position after the last frame: where a client that has read it all is.
        self.end = 0
        self._base_bytes = 0  # bytes appended before the first row
        self._total_bytes = 0
        self._trim_at = max_bytes + max_bytes // 4
        # Readers to tell at the next append. A dict, so that a reader leaves it in O(1) when it
        # leaves the group: one left behind would hold its stream (socket, request, this group
        # and its log, through the reader's own reference to it) in a cycle until the collector runs.
        self._parked: dict[GroupReader, None] = {}
        self._chunk_range = (0, 0)
        self._chunk = b""

    def add_reader(self, reader: GroupReader) -> int:
        """Keep frames for `reader` from now on; returns its starting position (the end)."""
        self.readers.add(reader)
        return self.end

    def remove_reader(self, reader: GroupReader) -> None:
        """`reader` no longer pins the log, nor waits for its next frame."""
        self.readers.discard(reader)
        self._parked.pop(reader, None)

    @property
    def last_seq(self) -> int:
        return self._seqs[-1] if self._seqs else 0

    def append(self, event: FramedEvent) -> None:
        if self.window is not None and not self.window.contains(event.frame):
            return
        self._seqs.append(event.seq)
        self._frames.append(event.frame)
        self._conflation_keys.append(event.conflation_key)
        self._stored_at.append(event.stored_at)
        self._total_bytes += len(event.frame)
        self._ends.append(self._total_bytes)
        self.end += 1
        if self._parked:
            self._flush.add(self._parked)
            self._parked = {}
        if self._total_bytes - self._base_bytes > self._trim_at:
            self.trim()

    def park(self, reader: GroupReader) -> None:
        """Tell `reader` about the next append, once (it parks again after writing).

        Told in the loop's next turn (`FanoutFlush`), not during the append: it leaves the parked
        set now, and the appends of this turn reach it in one piece."""
        self._parked[reader] = None

    def pending_bytes(self, pos: int) -> int:
        index = pos - self._base
        before = self._base_bytes if index <= 0 else self._ends[index - 1]
        return self._total_bytes - before

    def events_from(self, pos: int) -> list[FramedEvent]:
        """The events from `pos` to the end, made anew from the columns (for the rarer paths:
        conflation, spills and filter switches)."""
        start = pos - self._base
        return [
            FramedEvent(*row)
            for row in zip(
                self._seqs[start:],
                self._frames[start:],
                self._conflation_keys[start:],
                self._stored_at[start:],
                strict=True,
            )
        ]

    def position_after(self, seq: int) -> int:
        """The position of the first frame with a sequence above `seq`."""
        return self._base + bisect_right(self._seqs, seq)

    def read(self, pos: int) -> tuple[bytes, int, float]:
        """Frames from `pos` to the end as one chunk, how many, and when the first was stored."""
        end = self.end
        if self._chunk_range != (pos, end):
            self._chunk = b"".join(self._frames[pos - self._base :])
            self._chunk_range = (pos, end)
        return self._chunk, end - pos, self._stored_at[pos - self._base]

    def trim(self) -> None:
        """Spill clients more than a buffer behind, then drop what every client has read."""
        for reader in list(self.readers):
            if self.pending_bytes(reader.pos) + reader.backlog_bytes > self.max_bytes:
                reader.spill(self)
        low = min((reader.pos for reader in self.readers), default=self.end)
        drop = low - self._base
        if drop > 0:
            self._base_bytes = self._ends[drop - 1]
            del self._seqs[:drop]
            del self._frames[:drop]
            del self._conflation_keys[:drop]
            del self._stored_at[:drop]
            del self._ends[:drop]
            self._base = low
