"""The edge's Prometheus metrics, in one place so that a dashboard author finds them all."""

import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Final

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

CONNECTIONS = Gauge("eventhandler_edge_connections", "SSE clients connected now.")
CONNECTIONS_OPENED = Counter("eventhandler_edge_connections_opened", "SSE streams opened.")
CONNECTIONS_CLOSED = Counter(
    "eventhandler_edge_connections_closed",
    "SSE streams ended, by reason: disconnected, end, overflow, shutdown, send_timeout, replay_failed, "
    "write_failed.",
    ["reason"],
)
CONNECTIONS_REJECTED = Counter(
    "eventhandler_edge_connections_rejected",
    "SSE streams refused by a connection limit: edge_full (503) or address_full (429).",
    ["reason"],
)
EVENTS_CONFLATED = Counter(
    "eventhandler_edge_events_conflated",
    "Metrics events dropped for a slow client because a newer one of the same resource replaced them.",
)
EVENTS_REREAD = Counter(
    "eventhandler_edge_events_reread",
    "Live events dropped for a stream whose replay still held it (waiting its turn, say) when they "
    "passed its buffer, and read again from JetStream after its history instead of an overflow.",
)
EVENTS_OVERFLOWED = Counter(
    "eventhandler_edge_events_overflowed",
    "Events queued for clients cut off with stream.overflow; they resume them from Last-Event-ID.",
)
MESSAGES_SKIPPED = Counter(
    "eventhandler_edge_messages_skipped",
    "Stored messages that are not events (malformed, invalid, wrong_subject, no_id), not sent to "
    "clients; `reader`: live or history.",
    ["reason", "reader"],
)
RESUMES = Counter(
    "eventhandler_edge_resumes",
    "Streams resumed from a Last-Event-ID, by source: memory (this edge's window of recent events, "
    "no JetStream consumer) or jetstream.",
    ["source"],
)
HISTORY_READS_WAITING = Gauge(
    "eventhandler_edge_history_reads_waiting",
    "JetStream history reads (replays, pages) waiting for a slot or for their start (SSE_EDGE_"
    "MAX_CONCURRENT_REPLAYS, SSE_EDGE_REPLAY_PENDING_TOTAL_BYTES, SSE_EDGE_REPLAY_STARTS_PER_SECOND).",
)
CONSUMERS_CREATED = Counter(
    "eventhandler_edge_history_consumers",
    "JetStream consumers this edge created for history, by purpose: read (a replay, a snapshot, a "
    "page) or probe (counting matches). Resumes from the window of recent events create none.",
    ["purpose"],
)
REPLAY_PENDING_BYTES = Gauge(
    "eventhandler_edge_replay_pending_bytes",
    "Bytes JetStream delivered to history reads running now that they have not handed to their "
    "clients' queues yet (each read holds at most SSE_EDGE_REPLAY_PENDING_BYTES).",
)
REPLAY_RETRIES = Counter(
    "eventhandler_edge_replay_retries",
    "Replays that met a NATS timeout or disconnect and went on from their last event after a pause, "
    "instead of ending the stream.",
)


class FeedStats:
    """What the live feed received, kept in plain ints and read by Prometheus at scrape time.

    Updated once per event: three prometheus_client updates (each takes a lock) cost 1 µs an
    event, a fifth of the feed's own work; these three stores cost well under a tenth of that.
    """

    __slots__ = ("events", "lag", "last_seq")

    def __init__(self) -> None:
        self.events = 0
        self.last_seq = 0
        self.lag = 0

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "eventhandler_edge_feed_events", "Events received by this edge's live feed.", value=self.events
        )
        yield GaugeMetricFamily(
            "eventhandler_edge_feed_last_sequence",
            "Stream sequence of the last event received live.",
            value=self.last_seq,
        )
        yield GaugeMetricFamily(
            "eventhandler_edge_feed_lag_events",
            "Events stored in the stream that the live feed has not received yet (its consumer's pending).",
            value=self.lag,
        )


FEED: Final = FeedStats()
REGISTRY.register(FEED)


LAG_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WriteStats:
    """What the writers did, counted in plain ints and read by Prometheus at scrape time.

    Writes are the hot path (a hundred thousand a second under load); a prometheus_client counter
    takes a lock per increment, which cost a third of the writers' time.
    """

    __slots__ = ("bytes", "direct", "events", "from_fanout", "lag_counts", "lag_sum", "writes")

    def __init__(self) -> None:
        self.writes = 0
        self.direct = 0  # of the writes: straight to uvicorn's transport (http.uvicorn_transport)
        self.from_fanout = 0  # of the direct writes: by the fan-out's flush, the stream's task asleep
        self.events = 0
        self.bytes = 0
        self.lag_counts = [0] * (len(LAG_BUCKETS) + 1)
        self.lag_sum = 0.0

    def record(self, written: int, events: int, oldest_stored_at: float) -> None:
        self.writes += 1
        self.bytes += written
        if events:
            self.events += events
            lag = time.time() - oldest_stored_at
            self.lag_counts[bisect_left(LAG_BUCKETS, lag)] += 1
            self.lag_sum += lag

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "eventhandler_edge_writes",
            "Writes to SSE clients (each holds what was ready).",
            value=self.writes,
        )
        yield CounterMetricFamily(
            "eventhandler_edge_writes_direct",
            "Of the writes, those handed straight to uvicorn's transport while the socket kept up; "
            "the others went through ASGI send. Zero under another server: the fast path is off.",
            value=self.direct,
        )
        yield CounterMetricFamily(
            "eventhandler_edge_writes_from_fanout",
            "Of the direct writes, those of live events made by the fan-out for a stream waiting for "
            "them, without waking the stream's writer task.",
            value=self.from_fanout,
        )
        yield CounterMetricFamily(
            "eventhandler_edge_events_delivered",
            "Live events written to clients (one per client per event).",
            value=self.events,
        )
        yield CounterMetricFamily(
            "eventhandler_edge_bytes_written",
            "Bytes written to SSE clients, before compression.",
            value=self.bytes,
        )
        cumulative = 0
        buckets = []
        for bound, count in zip((*LAG_BUCKETS, float("inf")), self.lag_counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
        yield HistogramMetricFamily(
            "eventhandler_edge_delivery_lag_seconds",
            "From JetStream storing an event to its write to a client; one sample per write "
            "(its oldest event).",
            buckets=buckets,
            sum_value=self.lag_sum,
        )


WRITES: Final = WriteStats()
REGISTRY.register(WRITES)
