"""One client's history: the events it asked for from the past, then the hand-over to live.

Runs beside the client's writer. Its plan depends on the query:

- resume (`Last-Event-ID`): everything matching after that id, announcing with `stream.gap`
  whatever expired in between; from this edge's window of recent events (`RecentEvents`) when
  the id falls inside it, without a JetStream consumer;
- `start_time`: from the first sequence stored at start_time minus the skew allowance, keeping
  exactly the events whose own timestamp is in range;
- `limit`: the most recent N of the range, located with a few counting probes
  (`sequence_search`), never by reading everything that matches;
- only an `end_time`, already past: everything up to it;
- `snapshot`: the latest matching event of every subject (type and resource) stored up to the
  stream's end, in stream order, picked by JetStream (`LAST_PER_SUBJECT`); a subject whose latest
  event arrived after that point gets it live instead, so the client ends up with the newest of
  every subject either way;
- no history parameter: nothing to read.

Then either `stream.end` (an `end_time` already past) or `stream.caught_up` and live, ended by a
timer at a future `end_time`. The client was registered in the fan-out before the stream's last
sequence was read, so every later event is in its live queue; `release` drops those the history
already covered.
"""

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Final

import structlog
from nats.errors import ConnectionReconnectingError, NoRespondersError
from nats.js.errors import ServiceUnavailableError

from sse_edge.history.jetstream_history import JetStreamBounds, JetStreamHistory
from sse_edge.history.ordered_read import Burst, BurstSink
from sse_edge.http.event_query import EventQuery
from sse_edge.http.sse_frames import BurstFrames, control_frame, event_frame
from sse_edge.live.recent_events import RecentEvents, RecentSelection
from sse_edge.live.subscriber import Subscriber
from sse_edge.metrics import REPLAY_RETRIES, RESUMES

log = structlog.get_logger(__name__)

# Frames of a resume from memory queued per chunk: a client buffer's worth would be one big copy.
_RECENT_BURST = 256
# NATS trouble that passes: a request that timed out (nats-server or this process busy, a storm),
# a reconnection under way, JetStream electing a leader. A replay goes on from its last event.
_PASSING: Final = (TimeoutError, ConnectionReconnectingError, NoRespondersError, ServiceUnavailableError)
_FROM_MEMORY: Final = RESUMES.labels("memory")  # labelled once: `labels()` locks on every call
_FIRST_PAUSE: Final = 0.25
_LONGEST_PAUSE: Final = 5.0


class Replay:
    def __init__(
        self,
        history: JetStreamHistory,
        query: EventQuery,
        bounds: JetStreamBounds,
        skew: timedelta,
        recent: RecentEvents | None = None,
        retry_for: timedelta = timedelta(seconds=60),
        *,
        first_seq_known: bool = True,
    ) -> None:
        """`first_seq_known`: False when `bounds` came from the live feed rather than from
        JetStream (the stream opened without asking NATS): its `first_seq` means nothing, and a
        replay that reads JetStream asks for it first, retrying like its reads."""
        self.history = history
        self._first_seq_known = first_seq_known
        self.retry_for = retry_for.total_seconds()
        self._last_queued: int | None = None  # the last event queued for the client
        self.recent = recent if recent is not None and recent.enabled else None
        self.query = query
        self.bounds = bounds
        self.skew = skew
        self.subjects = query.filter.subjects

    @property
    def live_only(self) -> bool:
        """Nothing to read and nothing to end: the client goes live at once, without a task."""
        query = self.query
        return (
            query.resume_after is None
            and query.limit is None
            and query.window.start is None
            and query.window.end is None
            and not query.snapshot
        )

    def resume_from_memory_now(self, client: Subscriber) -> bool:
        """Serve a resume from the window of recent events at once, without a task: the history
        and `stream.caught_up` queued in one chunk, for the writer's first write. False (nothing
        done) when the query needs more (a future end_time) or the history is more than a
        client buffer (then the task queues it piece by piece as the writer takes it)."""
        query, recent = self.query, self.recent
        if (
            query.resume_after is None
            or recent is None
            or not recent.covers(query.resume_after)
            or query.window.end is not None
            or query.window.start is not None
        ):
            return False
        end = recent.last_seq
        chunk = self._joined_recent(recent, query.resume_after, client.max_bytes)
        if chunk is None:
            return False
        self.bounds = JetStreamBounds(self.bounds.first_seq, end)
        _FROM_MEMORY.inc()
        if chunk:
            client.push_history_nowait(chunk)
        self.go_live(client)
        return True

    def _joined_recent(self, recent: RecentEvents, after_seq: int, max_bytes: int) -> bytes | None:
        """The frames `_pick_recent` picks, joined; None when they are more than `max_bytes`."""
        selection = self.query.selection
        if not selection.bounded:
            return recent.joined(after_seq, self.query.filter, max_bytes)  # shared between resumes
        chunk = b"".join(self._pick_recent(recent, after_seq).frames)
        return chunk if len(chunk) <= max_bytes else None

    def _pick_recent(self, recent: RecentEvents, after_seq: int) -> RecentSelection:
        """The window's events after `after_seq` that the query selects (filters, expression)."""
        selection = self.query.selection
        return recent.select(after_seq, self.query.filter, selection.contains if selection.bounded else None)

    def go_live(self, client: Subscriber) -> None:
        client.release(
            self.bounds.last_seq, control_frame("stream.caught_up", {"last_seq": self.bounds.last_seq})
        )

    async def __call__(self, client: Subscriber) -> None:
        query = self.query
        client.defer_live()
        last_read = await self._replay(client)
        if query.ends_by(datetime.now(UTC)):
            client.close("end", self._end_frame("end_time is in the past: bounded query", last_read))
            return
        last_read = await self._read_deferred(client, last_read)
        self.go_live(client)
        if query.window.end is not None:
            delay = (query.window.end - datetime.now(UTC)).total_seconds()
            await asyncio.sleep(max(0.0, delay))
            client.close("end", self._end_frame("end_time reached", None))

    async def _read_deferred(self, client: Subscriber, last_read: int | None) -> int | None:
        """The live events dropped while the replay held the stream (`Subscriber.defer_live`), read
        from JetStream after the history; the hand-over to live moves past them."""
        while (deferred := client.take_deferred()) > self.bounds.last_seq:
            start = self.bounds.last_seq + 1
            self.bounds = JetStreamBounds(self.bounds.first_seq, deferred)
            read = await self._read_range(client, start, deferred)
            last_read = read if read is not None else last_read
        return last_read

    async def _replay(self, client: Subscriber) -> int | None:
        """Push the history frames; returns the sequence of the last event pushed, if any."""
        query, bounds, history = self.query, self.bounds, self.history
        recent = self.recent
        if query.resume_after is not None and recent is not None and recent.covers(query.resume_after):
            return await self._read_recent(client, recent, query.resume_after)
        if not self._first_seq_known:
            bounds = self.bounds = JetStreamBounds(await self._first_seq(), bounds.last_seq)
        low, high = await history.seq_range(query.window, self.skew, bounds)
        if query.resume_after is not None:
            low = query.resume_after + 1
            if low < bounds.first_seq:
                await client.push_history(
                    control_frame(
                        "stream.gap",
                        {
                            "first_missing": low,
                            "last_missing": bounds.first_seq - 1,
                            "reason": "expired by retention before it could be replayed",
                        },
                    )
                )
                low = bounds.first_seq
            RESUMES.labels("jetstream").inc()
            return await self._read_range(client, low, high)
        if query.snapshot:
            return await self._read_snapshot(client, bounds.last_seq)
        if query.limit is not None:
            latest = await history.latest(self.subjects, query.selection, low, high, query.limit)
            for event in latest:
                await client.push_history(event_frame(event.seq, event.event_type, event.data))
            return latest[-1].seq if latest else None
        if query.window.start is not None or query.ends_by(datetime.now(UTC)):
            # A start time, or only an end already past: everything of the range.
            return await self._read_range(client, low, high)
        return None

    async def _read_range(self, client: Subscriber, start: int, end: int) -> int | None:
        """Every event of `start..end` the query keeps (time window, filter), straight to the client.

        A read that fails on passing NATS trouble (`_PASSING`) is tried again after a pause, from the
        event after the last one queued, for up to `retry_for`: the stream stays open and exact.
        """
        patience = _NatsPatience(self.retry_for)
        progress: int | None = None
        while True:
            try:
                read = functools.partial(self.history.read_bursts, self.subjects, start, end)
                await self._deliver(client, read)
                return self._last_queued
            except _PASSING as error:
                if self._last_queued != progress:  # trouble anew after progress: a fresh allowance
                    patience.renew()
                    progress = self._last_queued
                if self._last_queued is not None:
                    start = self._last_queued + 1
                if not await patience.wait(error, "replay waits for NATS, then goes on", next_seq=start):
                    raise

    async def _first_seq(self) -> int:
        """The stream's first sequence, asked of JetStream inside the open stream: NATS trouble
        (`_PASSING`, a storm's timeouts) is waited out for up to `retry_for`, not a 503."""
        patience = _NatsPatience(self.retry_for)
        while True:
            try:
                first_seq = (await self.history.bounds()).first_seq
            except _PASSING as error:
                if not await patience.wait(error, "replay waits for NATS to read the stream's bounds"):
                    raise
            else:
                self._first_seq_known = True
                return first_seq

    async def _read_snapshot(self, client: Subscriber, end: int) -> int | None:
        """The latest event of every subject up to `end`, if the filter keeps it, to the client."""
        return await self._deliver(
            client, lambda sink: self.history.read_latest_bursts(self.subjects, end, sink)
        )

    async def _deliver(self, client: Subscriber, read: Callable[[BurstSink], Awaitable[int]]) -> int | None:
        """Run `read` with a sink that keeps what the query selects and queues it for `client`.

        Returns the last sequence queued, or None when nothing was.
        """
        selection = self.query.selection
        frames = BurstFrames()

        def sink(burst: Burst) -> Awaitable[None] | None:
            # Once per burst of events, not per event: one chunk for the client's queue.
            if selection.bounded:
                burst = [event for event in burst if selection.contains(event[2])]
                if not burst:
                    return None
            self._last_queued = int(burst[-1][0])
            chunk = frames(burst)
            # Only a full client buffer makes the read wait; the common case costs no coroutine.
            return None if client.push_history_nowait(chunk) else client.push_history(chunk)

        await read(sink)
        return self._last_queued

    async def _read_recent(self, client: Subscriber, recent: RecentEvents, after_seq: int) -> int | None:
        """Everything the query selects after `after_seq`, from the window of recent events.

        The events are picked in one step, with the window's end: the hand-over to live happens
        at that end (`go_live`), whatever the stream held when the client came, so that the live
        feed delivers exactly what follows.
        """
        end = recent.last_seq
        picked = self._pick_recent(recent, after_seq)
        self.bounds = JetStreamBounds(self.bounds.first_seq, end)
        _FROM_MEMORY.inc()
        frames = picked.frames
        for start in range(0, len(frames), _RECENT_BURST):
            chunk = b"".join(frames[start : start + _RECENT_BURST])
            if not client.push_history_nowait(chunk):
                await client.push_history(chunk)
        return picked.seqs[-1] if picked.seqs else None

    def _end_frame(self, reason: str, last_seq: int | None) -> bytes:
        return control_frame("stream.end", {"reason": reason, "last_seq": last_seq})


class _NatsPatience:
    """How a replay waits out passing NATS trouble (`_PASSING`): pauses that double from
    `_FIRST_PAUSE` up to `_LONGEST_PAUSE`, jittered, for up to `seconds` from the first trouble
    (or from `renew`)."""

    __slots__ = ("_deadline", "_pause", "_seconds")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._deadline = 0.0  # set at the first trouble
        self._pause = _FIRST_PAUSE

    def renew(self) -> None:
        """The replay made progress since the last trouble: the next one gets a fresh allowance."""
        self._deadline = 0.0

    async def wait(self, error: BaseException, message: str, **fields: object) -> bool:
        """Pause before the next try; False, without pausing, when the allowance is spent (the
        caller raises `error`)."""
        loop = asyncio.get_running_loop()
        if not self._deadline:
            self._deadline, self._pause = loop.time() + self._seconds, _FIRST_PAUSE
        if loop.time() + self._pause > self._deadline:
            return False
        REPLAY_RETRIES.inc()
        log.info(message, error=repr(error), **fields)
        await asyncio.sleep(self._pause * (0.5 + random.random()))  # noqa: S311 - jitter
        self._pause = min(self._pause * 2, _LONGEST_PAUSE)
        return True
