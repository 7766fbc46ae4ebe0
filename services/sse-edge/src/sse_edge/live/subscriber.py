"""One connected client's delivery state: its history queue, its place in its filter group's log.

A `Subscriber` is the only owner of its state. The modules around it call its methods, each from
one side: the replay (`push_history`, `release`), the writer (`attach_writer`, `detach_writer`,
`take`, `park`, `begin_write`/`end_write`, `take_heartbeat`), the fan-out index (`join`), its
filter group (`spill`), the fan-out's flush (`frames_arrived`), the sweeper (`request_heartbeat`,
`close`, `abort`). They read the few properties they need and assign nothing.

A subscriber starts *holding*: it has a position in its group's log from the moment it joined
(before the replay read the stream's end), but its writer does not read the log until `release`.
The replay meanwhile pushes history frames, with backpressure. `release(after_seq)` moves the
position past what the history covered: no gap, because the position predates the stream end the
replay read, and no duplicate, because of the release sequence (`floor`; the feed may still deliver
events at or below it after the release, and those are skipped when read).

A subscriber that falls more than a buffer behind is *spilled* by its group: metrics events
(`node_metrics`, `container_metrics`) are conflated to the latest per resource into a private
backlog, and if what remains still does not fit, it is closed with reason "overflow" so that the
client resumes from its Last-Event-ID instead of holding memory for a reader that is not reading.

Live frames for a parked writer are written without waking its task where the writer can write
synchronously (`StreamWriter.write_now`: its socket took everything so far, no pace): the task
sleeps on while the fan-out's flush calls `take` and the write for it, and parks it again. Anything
else for the writer (history, a release, a filter switch, a heartbeat, a close) sets its wake-up,
and a flush finding it set leaves the frames to the task, which takes them with the rest.
"""

from collections.abc import Coroutine
from typing import Any, Protocol

import structlog

from eh_contracts.expressions import CompiledExpression
from eh_contracts.subjects import SubjectFilter
from sse_edge.live.filter_group import FilterGroup, FramedEvent
from sse_edge.live.wakeup import Wakeup
from sse_edge.metrics import EVENTS_CONFLATED, EVENTS_OVERFLOWED, EVENTS_REREAD
from sse_edge.time_window import TimeWindow

log = structlog.get_logger(__name__)

_NOTHING: tuple[bytes, int, float] = (b"", 0, 0.0)


class StreamWriter(Protocol):
    """What a subscriber needs of the writer of its stream (`http.sse_response.SseResponse`)."""

    @property
    def socket_closed(self) -> bool:
        """The client closed its socket (known only where the server exposes its transport)."""

    def abort(self) -> None:
        """End a stalled write: abort the socket, or cancel the writer where it is not known."""

    def write_now(self, now: float) -> bool:
        """Write what `take` has ready, without waiting, at `now` (`time.monotonic()`); False
        when this stream cannot (its socket has not taken the last write, it is paced, no direct
        path to the socket): its task must."""


class SubscriberClosed(Exception):
    """The subscriber is gone or being closed; stop producing for it."""


class Subscriber:
    __slots__ = (
        "_backlog",
        "_backlog_bytes",
        "_close_reason",
        "_conflate_live",
        "_deferred_through",
        "_defers_live",
        "_expression",
        "_farewell",
        "_filter",
        "_floor",
        "_group",
        "_heartbeat_due",
        "_history",
        "_history_bytes",
        "_history_room",
        "_holding",
        "_last_write",
        "_max_bytes",
        "_parked",
        "_peer",
        "_pos",
        "_wake",
        "_window",
        "_write_started",
        "_writer",
        "owner",
        "subscription_id",
    )

    def __init__(
        self,
        subject_filter: SubjectFilter,
        max_bytes: int,
        peer: str,
        window: TimeWindow | None = None,
        expression: CompiledExpression | None = None,
        subscription_id: str | None = None,
        owner: str | None = None,
    ) -> None:
        self._filter = subject_filter
        self._expression = expression
        self.subscription_id = subscription_id
        """Names this stream for `PATCH /api/v1/subscriptions/{id}`; None: it cannot be changed."""
        self.owner = owner
        """Who may change it: the principal that opened it; None without authentication."""
        self._conflate_live = False
        self._defers_live = False
        self._deferred_through = 0
        self._window = window if window is not None and window.bounded else None
        self._max_bytes = max_bytes
        self._peer = peer
        self._wake = Wakeup()
        self._close_reason: str | None = None
        self._farewell = b""
        self._holding = True
        self._floor = 0
        self._group: FilterGroup | None = None
        self._pos = 0
        self._parked = False
        self._backlog: list[FramedEvent] = []
        self._backlog_bytes = 0
        self._history: list[bytes] = []
        self._history_bytes = 0
        self._history_room = Wakeup()
        self._history_room.set()
        # Kept up to date by the writer, read by the sweeper (heartbeats, stalled sockets).
        self._last_write = 0.0
        self._write_started = 0.0
        self._heartbeat_due = False
        self._writer: StreamWriter | None = None

    # -- what others read ----------------------------------------------------------------------

    @property
    def filter(self) -> SubjectFilter:
        return self._filter

    @property
    def expression(self) -> CompiledExpression | None:
        """The filter expression live events must satisfy; None for none."""
        return self._expression

    @property
    def window(self) -> TimeWindow | None:
        """The time window live frames must fall in; None when unbounded."""
        return self._window

    @property
    def max_bytes(self) -> int:
        """The client's buffer: most bytes queued for it."""
        return self._max_bytes

    @property
    def peer(self) -> str:
        return self._peer

    @property
    def close_reason(self) -> str | None:
        """None while open; then why it closed (disconnected, end, overflow, shutdown, ...)."""
        return self._close_reason

    @property
    def farewell(self) -> bytes:
        """The control event to write last, given to `close`."""
        return self._farewell

    @property
    def group(self) -> FilterGroup | None:
        return self._group

    @property
    def pos(self) -> int:
        return self._pos

    @property
    def holding(self) -> bool:
        """The replay is still running: live frames wait for `release`."""
        return self._holding

    @property
    def floor(self) -> int:
        """Live events at or below this sequence were covered by the history; skipped when read."""
        return self._floor

    @property
    def backlog_bytes(self) -> int:
        return self._backlog_bytes

    @property
    def parked(self) -> bool:
        """The writer waits for the group's next frame."""
        return self._parked

    @property
    def woken(self) -> bool:
        """Something is ready for the writer (or it must look at a close)."""
        return self._wake.is_set()

    @property
    def last_write(self) -> float:
        """`time.monotonic()` of the writer's last completed write."""
        return self._last_write

    @property
    def write_started(self) -> float:
        """`time.monotonic()` when the write now waiting for the socket began; 0.0 when none."""
        return self._write_started

    @property
    def socket_closed(self) -> bool:
        """The client closed its socket (known only where the server exposes its transport)."""
        return self._writer is not None and self._writer.socket_closed

    # -- the fan-out index's side ---------------------------------------------------------------

    def join(self, group: FilterGroup) -> None:
        """Read `group`'s log from its end on; its filter object replaces ours (one per group)."""
        self._filter = group.key[0]
        self._expression = group.expression
        self._group = group
        self._pos = group.add_reader(self)

    def switch(self, group: FilterGroup, after_seq: int, marker: bytes) -> None:
        """Change filters at `after_seq`: what the old group holds for us (every event up to it,
        old filters) is queued, then `marker`, then `group`'s frames after `after_seq` (new filters).

        `after_seq` is at least the last sequence the index has published and the floor: nothing
        of the old filters is lost, nothing at or below it comes again through the new group.
        """
        old = self._group
        pending = self._backlog
        if old is not None:
            pending = pending + [event for event in old.events_from(self._pos) if event.seq > self._floor]
            old.remove_reader(self)
        for event in pending:
            self._history.append(event.frame)
            self._history_bytes += len(event.frame)
        self._history.append(marker)
        self._history_bytes += len(marker)
        self._backlog = []
        self._backlog_bytes = 0
        self._parked = False  # parked on the old group: park again on the new one
        self.join(group)
        self._floor = after_seq
        self._wake.set()

    # -- the replay's side ---------------------------------------------------------------------

    def push_history_nowait(self, frame: bytes) -> bool:
        """Queue a history frame if there is room; False when the caller must `push_history`."""
        if self._history_bytes >= self._max_bytes or self._close_reason is not None:
            return False
        self._history.append(frame)
        self._history_bytes += len(frame)
        self._wake.set()
        return True

    async def push_history(self, frame: bytes) -> None:
        """Queue a history frame, waiting while the writer is a buffer behind.

        Raises:
            SubscriberClosed: when the subscriber is closing; the replay should stop.
        """
        while not self.push_history_nowait(frame):
            if self._close_reason is not None:
                raise SubscriberClosed(self._close_reason)
            self._history_room.clear()
            await self._history_room.wait()

    def defer_live(self) -> None:
        """While the replay holds the stream, live events more than a buffer behind are dropped
        instead of closing it with overflow; the replay reads them again from JetStream
        (`take_deferred`). For a replay that waits its turn in a storm, at any event rate."""
        self._defers_live = True

    def take_deferred(self) -> int:
        """The last sequence of live events dropped while holding (0: none); forgets it."""
        deferred, self._deferred_through = self._deferred_through, 0
        return deferred

    def release(self, after_seq: int, marker: bytes = b"") -> None:
        """End the replay: `marker` follows the history, then live frames after `after_seq`."""
        self._floor = after_seq
        if self._backlog:
            self._backlog = [event for event in self._backlog if event.seq > after_seq]
            self._backlog_bytes = sum(len(event.frame) for event in self._backlog)
        if self._group is not None:
            self._pos = max(self._pos, self._group.position_after(after_seq))
        if marker:
            self._history.append(marker)
            self._history_bytes += len(marker)
        self._holding = False
        self._wake.set()

    # -- the writer's side ---------------------------------------------------------------------

    def attach_writer(self, writer: StreamWriter) -> None:
        """The writer started: it ends stalled writes, sees the socket close, writes live frames."""
        self._writer = writer

    def detach_writer(self) -> None:
        """The writer ended: forget it (it refers to this subscriber; no cycle may outlive them)."""
        self._writer = None

    def conflate_live(self) -> None:
        """Paced writes (a rate or bandwidth cap): each write carries the newest metrics event of
        each resource, not every one that arrived since the last write (other events all go)."""
        self._conflate_live = True

    def take(self) -> tuple[bytes, int, float]:
        """Everything ready to write as one chunk: history, then (unless holding) live frames.

        Returns the chunk, how many live events it holds, and when the oldest of them was stored.
        """
        parts = self._history
        group = self._group
        if not parts and (self._holding or (not self._backlog and (group is None or self._pos >= group.end))):
            return _NOTHING  # the common case when a writer looks again after writing
        if parts:
            self._history = []
            self._history_bytes = 0
            self._history_room.set()
        else:
            parts = []  # not the (empty) history list itself: live frames must not land in it
        if self._holding or self._close_reason is not None:
            return b"".join(parts), 0, 0.0
        count = 0
        oldest = 0.0
        if self._backlog:
            parts.extend(event.frame for event in self._backlog)
            count = len(self._backlog)
            oldest = self._backlog[0].stored_at
            self._backlog = []
            self._backlog_bytes = 0
        if group is not None and self._pos < group.end:
            if self._floor:
                self._skip_floor(group)
            if self._pos < group.end and self._conflate_live:
                fresh = conflated(group.events_from(self._pos))
                EVENTS_CONFLATED.inc(group.end - self._pos - len(fresh))
                self._pos = group.end
                parts.extend(event.frame for event in fresh)
                oldest = oldest or fresh[0].stored_at
                count += len(fresh)
            elif self._pos < group.end:
                chunk, read, first_stored = group.read(self._pos)
                self._pos = group.end
                if not parts:
                    return chunk, read, first_stored  # the shared piece itself, not a copy
                parts.append(chunk)
                oldest = oldest or first_stored
                count += read
        return b"".join(parts), count, oldest

    def _skip_floor(self, group: FilterGroup) -> None:
        self._pos = max(self._pos, group.position_after(self._floor))
        if group.last_seq > self._floor:
            self._floor = 0  # the feed is past the release point; nothing at or below can come

    def park(self) -> Coroutine[Any, Any, None]:
        """Nothing to write: the awaitable that sleeps until a push, a release, a frame or a close."""
        self._wake.clear()
        self._park_on_group()
        return self._wake.wait()

    def _park_on_group(self) -> None:
        if not self._holding and self._group is not None and not self._parked:
            self._parked = True
            self._group.park(self)

    def take_heartbeat(self) -> bool:
        """True once after the sweeper found the stream idle for a heartbeat interval."""
        if self._heartbeat_due:
            self._heartbeat_due = False
            return True
        return False

    def begin_write(self, now: float) -> None:
        """A write that may wait for the socket starts (the sweeper times it)."""
        self._write_started = now

    def end_write(self, now: float) -> None:
        """A write completed; `now` is when it began (or ended, for one that could not wait)."""
        self._write_started = 0.0
        self._last_write = now

    # -- the filter group's side ---------------------------------------------------------------

    # -- the fan-out's flush side ---------------------------------------------------------------

    def frames_arrived(self, now: float) -> None:
        """Frames arrived for the parked writer: written now by the writer if it can, without its
        task, and parked again; else its task wakes and takes them."""
        self._parked = False
        if self._wake.is_set():
            return  # the task is awake already (history, heartbeat, close...): it takes them too
        writer = self._writer
        if writer is None or self._close_reason is not None:
            self._wake.set()
            return
        try:
            written = writer.write_now(now)
        except Exception as error:  # what was taken is lost: the client must resume, not skip it
            log.warning("sse write failed, closing the stream", peer=self._peer, error=repr(error))
            self.close("write_failed")
            return
        if written:
            self._park_on_group()
        else:
            self._wake.set()

    def spill(self, group: FilterGroup) -> None:
        """More than a buffer behind: conflate metrics into the backlog, or close with overflow."""
        behind = self._backlog + [event for event in group.events_from(self._pos) if event.seq > self._floor]
        if self._holding and self._defers_live and self._close_reason is None:
            if behind:
                self._deferred_through = max(self._deferred_through, behind[-1].seq)
                EVENTS_REREAD.inc(len(behind))
            self._backlog = []
            self._backlog_bytes = 0
            self._pos = group.end
            return
        kept = conflated(behind)
        kept_bytes = sum(len(event.frame) for event in kept)
        if kept_bytes > self._max_bytes:
            EVENTS_OVERFLOWED.inc(len(behind))
            self.close("overflow")
            return
        EVENTS_CONFLATED.inc(len(behind) - len(kept))
        self._backlog = kept
        self._backlog_bytes = kept_bytes
        self._pos = group.end

    # -- the sweeper's side (and anyone ending the stream) ---------------------------------------

    def request_heartbeat(self) -> None:
        if not self._heartbeat_due:
            self._heartbeat_due = True
            self._wake.set()

    def abort(self) -> None:
        """End a stalled write: abort the socket, or cancel the writer where it is not known."""
        if self._writer is not None:
            self._writer.abort()

    def close(self, reason: str, farewell: bytes = b"") -> None:
        """Stop after the history queued; `farewell` (a control event) is the last thing written."""
        if self._close_reason is None:
            self._close_reason = reason
            self._farewell = farewell
            if self._group is not None:
                # No longer pins the group's log; the index forgets it when the writer ends.
                self._group.remove_reader(self)
        self._history_room.set()
        self._wake.set()


def conflated(events: list[FramedEvent]) -> list[FramedEvent]:
    """`events` with only the newest of each conflation key (metrics of one resource), in order."""
    newest: dict[str, int] = {}
    for position, event in enumerate(events):
        if event.conflation_key is not None:
            newest[event.conflation_key] = position
    return [
        event
        for position, event in enumerate(events)
        if event.conflation_key is None or newest[event.conflation_key] == position
    ]
