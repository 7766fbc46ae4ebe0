"""Questions to JetStream about stored events, answered by the server rather than by scanning.

- where the stream begins and ends (`bounds`),
- how many events matching a filter are stored at or after a sequence (`count_from`: a consumer
  created and dropped at once; the server computes its `num_pending` from its subject index),
- which sequence was stored first at or after a time (`first_seq_stored_at`: a direct get),
- the matching events between two sequences (`read`, `read_bursts`: an ordered, flow-controlled
  consumer with several filter subjects, `OrderedRead`; the sink's pace is the consumer's pace,
  so a slow client slows its own replay and nothing else); stored messages that are not events
  are left out (`stored_message_check`).
"""

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, NamedTuple

import structlog
from nats.aio.client import Client
from nats.errors import ConnectionReconnectingError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Histogram

from eh_contracts.times import rfc3339
from eh_runtime.jetstream import delete_consumer_nowait
from eh_runtime.stream import EVENTS_STREAM
from sse_edge.event_selection import EventSelection
from sse_edge.history.ordered_read import Burst, BurstSink, OrderedRead, StopReading
from sse_edge.history.replay_admission import ReplayAdmission
from sse_edge.history.sequence_search import locate_last_n
from sse_edge.metrics import CONSUMERS_CREATED, REPLAY_PENDING_BYTES
from sse_edge.stored_message_check import StoredMessageCheck
from sse_edge.time_window import STORE_CLOCK_END, UNIX_EPOCH, TimeWindow, shifted

log = structlog.get_logger(__name__)

PROBE_SECONDS = Histogram(
    "eventhandler_edge_history_probe_seconds",
    "Time to ask JetStream how many matching events follow a sequence.",
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1),
)

# A probe consumer is deleted at once; should that message be lost, the server drops it after this.
_PROBE_INACTIVE_SECONDS: Final = 10.0
_READ_HEARTBEAT_SECONDS: Final = 2.0
_NO_MESSAGE_STATUS: Final = "404"
_STALL_CHECK_SECONDS: Final = 5.0
# Set while a task holds an admission slot: the probes and reads of one page share it.
_HOLDS_SLOT: ContextVar[bool] = ContextVar("holds_replay_slot", default=False)

EventSink = Callable[[int, str, bytes], None]
"""Receives (stream sequence, subject, stored bytes) of each event read, in order; may raise
`StopReading`. A sink that must wait (for a slow client) takes bursts: `read_bursts`."""


class StoredEvent(NamedTuple):
    seq: int
    subject: str
    data: bytes

    @property
    def event_type(self) -> str:
        return self.subject.split(".", 2)[1]


@dataclass(frozen=True, slots=True)
class JetStreamBounds:
    """The first and last sequence the EVENTS stream holds (last < first: it holds none)."""

    first_seq: int
    last_seq: int


async def first_seq_stored_at(client: Client, moment: datetime) -> int | None:
    """The first sequence of `EVENTS` stored at or after `moment` (a direct get), or None when
    nothing was stored since."""
    request = json.dumps({"start_time": rfc3339(moment)}).encode()
    reply = await client.request(f"$JS.API.DIRECT.GET.{EVENTS_STREAM}", request, timeout=5)
    headers = reply.headers or {}
    if headers.get("Status") == _NO_MESSAGE_STATUS:
        return None
    sequence = headers.get("Nats-Sequence")
    return int(sequence) if sequence else None


class JetStreamHistory:
    """Read access to the `EVENTS` stream's history for one edge process.

    Every read that creates JetStream consumers (a replay with its counting probe, a snapshot, the
    probes and reads of a "last N" page) first takes a slot of `admission` (`ReplayAdmission`):
    a bounded number at once, started at a bounded rate, the others waiting their turn instead of
    failing. Each read holds at most `pending_bytes` that JetStream sent and the client's queue has
    not taken yet (its subscription's limit; flow control keeps the server below it). A
    reconnection storm outside the window of recent events thus becomes a queue of replays at the
    pace NATS and this process sustain. The edge gives its history its own NATS connection: were
    that one cut as a slow consumer, the live feed would not be.
    """

    def __init__(
        self,
        client: Client,
        js: JetStreamContext,
        admission: ReplayAdmission | None = None,
        pending_bytes: int = 4 * 2**20,
    ) -> None:
        self._client = client
        self._js = js
        self._check = StoredMessageCheck("history")
        self.admission = admission if admission is not None else ReplayAdmission(32, 0)
        self.pending_bytes = pending_bytes
        self._reading: set[OrderedRead] = set()
        REPLAY_PENDING_BYTES.set_function(self._pending_now)

    def _pending_now(self) -> float:
        """Bytes JetStream delivered to the reads now running that they have not handed over yet."""
        return float(sum(reading.pending_bytes for reading in self._reading))

    @contextlib.asynccontextmanager
    async def _admitted(self) -> AsyncIterator[None]:
        """A slot of `admission` for the block; reentrant (a page's probes and its read share one)."""
        if _HOLDS_SLOT.get():
            yield
            return
        async with self.admission.admitted():
            token = _HOLDS_SLOT.set(True)
            try:
                yield
            finally:
                _HOLDS_SLOT.reset(token)

    async def _run(self, reading: OrderedRead) -> int:
        self._reading.add(reading)
        try:
            return await reading.run()
        finally:
            self._reading.discard(reading)

    async def bounds(self) -> JetStreamBounds:
        """Where the stream begins and ends.

        Raises:
            ConnectionReconnectingError: at once while disconnected, rather than after the
                request timeout (a request made then waits for the connection to come back).
        """
        if not self._client.is_connected:
            raise ConnectionReconnectingError
        state = (await self._js.stream_info(EVENTS_STREAM)).state
        return JetStreamBounds(first_seq=state.first_seq, last_seq=state.last_seq)

    async def count_from(self, subjects: Sequence[str], seq: int) -> int:
        """Matching events stored at sequence `seq` or later."""
        CONSUMERS_CREATED.labels("probe").inc()
        with PROBE_SECONDS.time():
            info = await self._js.add_consumer(
                EVENTS_STREAM,
                ConsumerConfig(
                    filter_subjects=list(subjects),
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                    opt_start_seq=max(seq, 1),
                    ack_policy=AckPolicy.NONE,
                    mem_storage=True,
                    num_replicas=1,
                    inactive_threshold=_PROBE_INACTIVE_SECONDS,
                ),
            )
        # Fire and forget: waiting for the delete's reply would double the cost of a probe.
        await delete_consumer_nowait(self._client, EVENTS_STREAM, info.name)
        return info.num_pending or 0

    async def first_seq_stored_at(self, moment: datetime) -> int | None:
        """The first sequence stored at or after `moment`, or None when nothing was stored since."""
        return await first_seq_stored_at(self._client, moment)

    async def read(self, subjects: Sequence[str], start_seq: int, end_seq: int, sink: EventSink) -> int:
        """Feed `sink` every matching event with sequence in `start_seq..end_seq`, in order.

        Returns how many events were read. Stops early when the server has nothing more that
        matches (events may expire while they are being read).
        """

        def each(burst: Burst) -> None:
            for seq, subject, data in burst:
                sink(int(seq), subject, data)

        return await self.read_bursts(subjects, start_seq, end_seq, each)

    async def read_bursts(
        self, subjects: Sequence[str], start_seq: int, end_seq: int, sink: BurstSink
    ) -> int:
        """As `read`, a burst of events at a time: what one read from the NATS connection brought.

        The replay's hot path: no call and no integer per event unless the sink makes them.
        """
        if end_seq < start_seq:
            return 0
        async with self._admitted():
            # Counting from start_seq to the stream's end is exact even while events keep arriving
            # (a count up to end_seq would race with them). Matches after end_seq stop the read.
            if await self.count_from(subjects, start_seq) == 0:
                return 0
            return await self._run(self._reading_of(subjects, start_seq, end_seq, sink))

    def _reading_of(
        self,
        subjects: Sequence[str],
        start_seq: int,
        end_seq: int,
        sink: BurstSink,
        *,
        last_per_subject: bool = False,
    ) -> OrderedRead:
        CONSUMERS_CREATED.labels("read").inc()
        return OrderedRead(
            self._client,
            self._js,
            subjects,
            start_seq,
            end_seq,
            sink,
            lambda seq: self.count_from(subjects, seq),
            heartbeat=_READ_HEARTBEAT_SECONDS,
            stall_check=_STALL_CHECK_SECONDS,
            pending_bytes_limit=self.pending_bytes,
            last_per_subject=last_per_subject,
            keep=self._check.sendable_burst,
        )

    async def read_latest_bursts(
        self, subjects: Sequence[str], end_seq: int, sink: BurstSink, *, after_seq: int = 0
    ) -> int:
        """The latest event of every matching subject stored up to `end_seq`, in stream order.

        A snapshot: JetStream's `LAST_PER_SUBJECT` delivery picks them from its subject index,
        without reading the events in between. A subject whose latest event came after `end_seq`
        is left out (the live queue has it). `after_seq` skips what an earlier page returned.
        """
        if end_seq < 1:
            return 0
        # No counting probe first: on a large stream it costs as much as the snapshot's start, and
        # the consumer says itself (its pending count) when nothing matches.
        async with self._admitted():
            return await self._run(
                self._reading_of(subjects, after_seq + 1, end_seq, sink, last_per_subject=True)
            )

    async def latest_per_subject(
        self,
        subjects: Sequence[str],
        end_seq: int,
        n: int,
        *,
        after_seq: int = 0,
        selection: EventSelection | None = None,
    ) -> list[StoredEvent]:
        """Up to `n` events of the snapshot up to `end_seq` (`read_latest_bursts`), after `after_seq`,
        those `selection` keeps."""
        found: list[StoredEvent] = []

        def collect(burst: Burst) -> None:
            for seq, subject, data in burst:
                if selection is not None and not selection.contains(data):
                    continue
                found.append(StoredEvent(int(seq), subject, data))
                if len(found) >= n:
                    raise StopReading

        await self.read_latest_bursts(subjects, end_seq, collect, after_seq=after_seq)
        return found

    async def seq_range(
        self, window: TimeWindow, skew: timedelta, bounds: JetStreamBounds
    ) -> tuple[int, int]:
        """The sequences that can hold events of `window`: stored from start - skew to end + skew.

        Event times may lag store times by up to `skew` (clocks, buffering producers); events
        outside that allowance may be missed by a time-range query.
        """
        low, high = bounds.first_seq, bounds.last_seq
        # JetStream keeps store times as int64 nanoseconds since 1970 (Go's zero time, year 1,
        # reads as no time at all): outside 1970..2262 a time is no bound, or bounds everything.
        if window.start is not None:
            since = shifted(window.start, -skew)
            if since >= STORE_CLOCK_END:
                low = bounds.last_seq + 1
            elif since > UNIX_EPOCH:
                first = await self.first_seq_stored_at(since)
                low = bounds.last_seq + 1 if first is None else max(low, first)
        if window.end is not None:
            until = shifted(window.end, skew)
            if until <= UNIX_EPOCH:
                high = low - 1
            elif until < STORE_CLOCK_END:
                after = await self.first_seq_stored_at(until)
                if after is not None:
                    high = min(high, after - 1)
        return low, high

    async def earliest(
        self, subjects: Sequence[str], selection: EventSelection, low: int, high: int, n: int
    ) -> list[StoredEvent]:
        """The first `n` events of `low..high` on `subjects` that `selection` keeps."""
        found: list[StoredEvent] = []

        def collect(seq: int, subject: str, data: bytes) -> None:
            if selection.contains(data):
                found.append(StoredEvent(seq, subject, data))
                if len(found) >= n:
                    raise StopReading

        await self.read(subjects, low, high, collect)
        return found

    async def latest(
        self, subjects: Sequence[str], selection: EventSelection, low: int, high: int, n: int
    ) -> list[StoredEvent]:
        """The last `n` events of `low..high` on `subjects` that `selection` keeps, oldest first.

        The start is located by counting probes (`locate_last_n`), not by reading everything that
        matches. Events outside the time window (stored within the skew allowance) or that the
        filter expression rejects do not count,
        so the search widens backwards until `n` are found or the range is exhausted.
        """
        kept: list[StoredEvent] = []
        async with self._admitted():
            return await self._latest(subjects, selection, low, high, n, kept)

    async def _latest(
        self,
        subjects: Sequence[str],
        selection: EventSelection,
        low: int,
        high: int,
        n: int,
        kept: list[StoredEvent],
    ) -> list[StoredEvent]:
        while high >= low and len(kept) < n:
            beyond = await self.count_from(subjects, high + 1)
            start = await locate_last_n(
                lambda seq: self.count_from(subjects, seq), low, high, n - len(kept), beyond=beyond
            )
            batch: list[StoredEvent] = []
            await self.read(subjects, start.seq, high, _collector(batch, selection))
            kept = batch + kept
            high = start.seq - 1
        return kept[-n:]


def _collector(batch: list[StoredEvent], selection: EventSelection) -> EventSink:
    def collect(seq: int, subject: str, data: bytes) -> None:
        if selection.contains(data):
            batch.append(StoredEvent(seq, subject, data))

    return collect
