"""The edge's Prometheus metrics, in one place so that a dashboard author finds them all."""

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Gauge("eventhandler_edge_connections", "SSE clients connected now.")
CONNECTIONS_OPENED = Counter("eventhandler_edge_connections_opened", "SSE streams opened.")
CONNECTIONS_CLOSED = Counter(
    "eventhandler_edge_connections_closed",
    "SSE streams ended, by reason: disconnected, end, overflow, shutdown, send_timeout, replay_failed.",
    ["reason"],
)
CONNECTIONS_REJECTED = Counter(
    "eventhandler_edge_connections_rejected",
    "SSE streams refused by a connection limit: edge_full (503) or address_full (429).",
    ["reason"],
)
EVENTS_DELIVERED = Counter(
    "eventhandler_edge_events_delivered", "Live events written to clients (one per client per event)."
)
BYTES_WRITTEN = Counter(
    "eventhandler_edge_bytes_written", "Bytes written to SSE clients, before compression."
)
EVENTS_CONFLATED = Counter(
    "eventhandler_edge_events_conflated",
    "Metrics events dropped for a slow client because a newer one of the same resource replaced them.",
)
EVENTS_OVERFLOWED = Counter(
    "eventhandler_edge_events_overflowed",
    "Events queued for clients cut off with stream.overflow; they resume them from Last-Event-ID.",
)
DELIVERY_LAG = Histogram(
    "eventhandler_edge_delivery_lag_seconds",
    "From JetStream storing an event to its write to a client; one sample per write, its oldest event.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
FEED_EVENTS = Counter("eventhandler_edge_feed_events", "Events received by this edge's live feed.")
FEED_LAST_SEQ = Gauge(
    "eventhandler_edge_feed_last_sequence", "Stream sequence of the last event received live."
)
FEED_LAG = Gauge(
    "eventhandler_edge_feed_lag_events",
    "Events stored in the stream that the live feed has not received yet (its consumer's pending).",
)
