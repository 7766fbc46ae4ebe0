"""One connected client: its history queue, its place in its filter group's log, and its state.

A client starts *holding*: it has a position in its group's log from the moment it registered
(before the replay read the stream's end), but its writer does not read the log until `release`.
The replay meanwhile pushes history frames, with backpressure. `release(after_seq)` moves the
position past what the history covered: no gap, because the position predates the stream end the
replay read, and no duplicate, because of the release sequence (`floor`; the feed may still deliver
events at or below it after the release, and those are skipped when read).

A client that falls more than a buffer behind is *spilled* by its group: metrics events
(`node_metrics`, `container_metrics`) are conflated to the latest per resource into a private
backlog, and if what remains still does not fit, the client is closed with reason "overflow" so
that it resumes from its Last-Event-ID instead of holding memory for a reader that is not reading.
"""

import asyncio
from collections.abc import Callable

from eh_contracts.subjects import SubjectFilter
from sse_edge.live.filter_group import FilterGroup, FramedEvent
from sse_edge.live.wakeup import Wakeup
from sse_edge.metrics import EVENTS_CONFLATED, EVENTS_OVERFLOWED
from sse_edge.time_window import TimeWindow

_NOTHING: tuple[bytes, int, float] = (b"", 0, 0.0)


class SubscriberClosed(Exception):
    """The client is gone or being closed; stop producing for it."""


class Subscriber:
    __slots__ = (
        "_backlog",
        "_history",
        "_history_bytes",
        "_history_room",
        "abort",
        "backlog_bytes",
        "close_reason",
        "farewell",
        "filter",
        "floor",
        "group",
        "heartbeat_due",
        "holding",
        "last_write",
        "max_bytes",
        "parked",
        "peer",
        "pos",
        "transport",
        "wake",
        "window",
        "write_started",
    )

    def __init__(
        self, subject_filter: SubjectFilter, max_bytes: int, peer: str, window: TimeWindow | None = None
    ) -> None:
        self.filter = subject_filter
        self.window = window if window is not None and window.bounded else None
        self.max_bytes = max_bytes
        self.peer = peer
        self.wake = Wakeup()
        self.close_reason: str | None = None
        self.farewell = b""
        self.holding = True
        self.floor = 0
        self.group: FilterGroup | None = None
        self.pos = 0
        self.parked = False
        self._backlog: list[FramedEvent] = []
        self.backlog_bytes = 0
        self._history: list[bytes] = []
        self._history_bytes = 0
        self._history_room = Wakeup()
        self._history_room.set()
        # Kept up to date by the writer, read by the sweeper (heartbeats, stalled sockets).
        self.last_write = 0.0
        self.write_started = 0.0
        self.heartbeat_due = False
        self.abort: Callable[[], object] | None = None
        # Set where the server exposes the socket: the sweeper notices a client gone through it.
        self.transport: asyncio.BaseTransport | None = None

    # -- the replay's side ---------------------------------------------------------------------

    def push_history_nowait(self, frame: bytes) -> bool:
        """Queue a history frame if there is room; False when the caller must `push_history`."""
        if self._history_bytes >= self.max_bytes or self.close_reason is not None:
            return False
        self._history.append(frame)
        self._history_bytes += len(frame)
        self.wake.set()
        return True

    async def push_history(self, frame: bytes) -> None:
        """Queue a history frame, waiting while the writer is a buffer behind.

        Raises:
            SubscriberClosed: when the client is closing; the replay should stop.
        """
        while not self.push_history_nowait(frame):
            if self.close_reason is not None:
                raise SubscriberClosed(self.close_reason)
            self._history_room.clear()
            await self._history_room.wait()

    def release(self, after_seq: int, marker: bytes = b"") -> None:
        """End the replay: `marker` follows the history, then live frames after `after_seq`."""
        self.floor = after_seq
        if self._backlog:
            self._backlog = [event for event in self._backlog if event.seq > after_seq]
            self.backlog_bytes = sum(len(event.frame) for event in self._backlog)
        if self.group is not None:
            self.pos = max(self.pos, self.group.position_after(after_seq))
        if marker:
            self._history.append(marker)
            self._history_bytes += len(marker)
        self.holding = False
        self.wake.set()

    # -- the writer's side ---------------------------------------------------------------------

    def take(self) -> tuple[bytes, int, float]:
        """Everything ready to write as one chunk: history, then (unless holding) live frames.

        Returns the chunk, how many live events it holds, and when the oldest of them was stored.
        """
        parts = self._history
        group = self.group
        if not parts and (self.holding or (not self._backlog and (group is None or self.pos >= group.end))):
            return _NOTHING  # the common case when a writer looks again after writing
        if parts:
            self._history = []
            self._history_bytes = 0
            self._history_room.set()
        else:
            parts = []  # not the (empty) history list itself: live frames must not land in it
        if self.holding or self.close_reason is not None:
            return b"".join(parts), 0, 0.0
        count = 0
        oldest = 0.0
        if self._backlog:
            parts.extend(event.frame for event in self._backlog)
            count = len(self._backlog)
            oldest = self._backlog[0].stored_at
            self._backlog = []
            self.backlog_bytes = 0
        if group is not None and self.pos < group.end:
            if self.floor:
                self._skip_floor(group)
            if self.pos < group.end:
                chunk, read, first_stored = group.read(self.pos)
                self.pos = group.end
                if not parts:
                    return chunk, read, first_stored  # the shared piece itself, not a copy
                parts.append(chunk)
                oldest = oldest or first_stored
                count += read
        return b"".join(parts), count, oldest

    def _skip_floor(self, group: FilterGroup) -> None:
        self.pos = max(self.pos, group.position_after(self.floor))
        if group.last_seq > self.floor:
            self.floor = 0  # the feed is past the release point; nothing at or below can come

    def park(self) -> None:
        """Nothing to write: sleep until a push, a release, a new live frame or a close."""
        self.wake.clear()
        if not self.holding and self.group is not None:
            self.group.park(self)

    # -- the filter group's side ---------------------------------------------------------------

    def spill(self, group: FilterGroup) -> None:
        """More than a buffer behind: conflate metrics into the backlog, or close with overflow."""
        behind = self._backlog + [event for event in group.events_from(self.pos) if event.seq > self.floor]
        newest: dict[str, int] = {}
        for position, event in enumerate(behind):
            if event.conflation_key is not None:
                newest[event.conflation_key] = position
        kept = [
            event
            for position, event in enumerate(behind)
            if event.conflation_key is None or newest[event.conflation_key] == position
        ]
        kept_bytes = sum(len(event.frame) for event in kept)
        if kept_bytes > self.max_bytes:
            EVENTS_OVERFLOWED.inc(len(behind))
            self.close("overflow")
            return
        EVENTS_CONFLATED.inc(len(behind) - len(kept))
        self._backlog = kept
        self.backlog_bytes = kept_bytes
        self.pos = group.end

    def close(self, reason: str, farewell: bytes = b"") -> None:
        """Stop after the history queued; `farewell` (a control event) is the last thing written."""
        if self.close_reason is None:
            self.close_reason = reason
            self.farewell = farewell
            if self.group is not None:
                # No longer pins the group's log; the index forgets it when the writer ends.
                self.group.subscribers.discard(self)
        self._history_room.set()
        self.wake.set()
