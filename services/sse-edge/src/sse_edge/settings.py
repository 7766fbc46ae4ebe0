from datetime import timedelta

from pydantic import ByteSize, Field, field_validator
from pydantic_settings import SettingsConfigDict

from eh_contracts.expressions import ExpressionLimits
from eh_runtime.settings import Duration, ServiceSettings
from sse_edge.http.stream_encoding import parse_encodings


class EdgeSettings(ServiceSettings):
    """`SSE_EDGE_*` variables, plus the shared `NATS_*`, `EVENTS_*` and `LOG_*` groups."""

    model_config = SettingsConfigDict(env_prefix="SSE_EDGE_", extra="ignore")

    port: int = Field(default=8000, ge=0, le=65535, description="Port the HTTP server listens on.")
    heartbeat_interval: Duration = Field(
        default=timedelta(seconds=15),
        description="Idle time after which a comment line keeps the stream open.",
    )
    retry: Duration = Field(
        default=timedelta(seconds=3), description="Reconnection delay suggested to clients (SSE `retry:`)."
    )
    client_buffer_bytes: ByteSize = Field(
        default=ByteSize(2**20),
        description="Most bytes of events queued for one client before it is cut off.",
    )
    max_filter_values: int = Field(
        default=500, ge=1, description="Most values one filter parameter (type, resource_id) may list."
    )
    recent_events_bytes: ByteSize = Field(
        default=ByteSize(64 * 2**20),
        description="Memory for the most recent live events, from which resumes (Last-Event-ID) inside "
        "it are served without a JetStream consumer; 0 turns the window off.",
    )
    recent_events_prefill: Duration = Field(
        default=timedelta(seconds=60),
        description="On start, the window of recent events is filled with the events stored this long "
        "before (as far as its bytes allow), so that clients coming back from a restarted edge resume "
        "from memory at once; 0 starts it empty.",
    )
    max_concurrent_replays: int = Field(
        default=32,
        ge=1,
        description="Most JetStream consumers reading history at once (replays outside the window of "
        "recent events, history pages); the others wait their turn, as long as their client stays.",
    )
    replay_pending_bytes: ByteSize = Field(
        default=ByteSize(4 * 2**20),
        ge=2 * 2**20,
        description="Most bytes one history read holds that JetStream sent and its client's queue has not "
        "taken yet (JetStream's flow control keeps about 2 MB in flight per consumer, hence the minimum).",
    )
    replay_pending_total_bytes: ByteSize = Field(
        default=ByteSize(128 * 2**20),
        ge=2 * 2**20,
        description="Most bytes all history reads together may hold that way: with "
        "SSE_EDGE_REPLAY_PENDING_BYTES, how many read at once (fewer if SSE_EDGE_MAX_CONCURRENT_REPLAYS "
        "says so); the others wait.",
    )
    replay_starts_per_second: float = Field(
        default=200.0,
        ge=0,
        description="Most history reads started per second (each creates JetStream consumers); the others "
        "wait their turn, so a reconnection storm reaches nats-server as a steady ramp. 0: no limit.",
    )
    replay_retry_for: Duration = Field(
        default=timedelta(seconds=60),
        description="How long a replay keeps retrying, from its last event, after NATS timeouts or a "
        "disconnect before it ends the stream (the client then resumes with Last-Event-ID).",
    )
    max_rate: float = Field(
        default=0,
        ge=0,
        description="Most writes per second to one stream (each carries the newest metrics sample per "
        "resource); 0: none. A request may ask for less with max_rate=.",
    )
    max_bandwidth: ByteSize = Field(
        default=ByteSize(0),
        description="Most bytes per second written to one stream; 0: none. A request may ask for less "
        "with max_bandwidth=.",
    )
    filter_max_length: int = Field(
        default=2_000, ge=1, le=100_000, description="Most characters of one filter expression (filter=)."
    )
    filter_max_depth: int = Field(
        default=24, ge=1, le=100, description="Deepest nesting of one filter expression."
    )
    filter_max_list_values: int = Field(
        default=100, ge=1, le=10_000, description="Most values of one list in a filter expression."
    )
    stream_encodings: str = Field(
        default="zstd,gzip,br",
        description="Compressions offered to event streams, in the edge's order of preference, chosen "
        "from the client's Accept-Encoding (zstd, br, gzip; flushed per write); empty: none.",
    )
    gzip: bool = Field(
        default=True,
        description="Whether gzip is among the stream compressions (SSE_EDGE_STREAM_ENCODINGS).",
    )
    max_connections: int = Field(
        default=10_000, ge=1, description="Most event streams this edge process holds; beyond it, 503."
    )
    max_connections_per_address: int = Field(
        default=200, ge=1, description="Most event streams one client address may hold; beyond it, 429."
    )
    max_connections_per_principal: int = Field(
        default=100,
        ge=1,
        description="Most event streams one token holder (issuer and subject) may hold; beyond it, 429.",
    )
    send_timeout: Duration = Field(
        default=timedelta(seconds=10),
        description="A client that takes no write for this long is stalled.",
    )
    shutdown_spread: Duration = Field(
        default=timedelta(seconds=10),
        description="On shutdown, clients reconnect after a random delay up to this, to spread the load.",
    )
    time_skew: Duration = Field(
        default=timedelta(seconds=30),
        description="How far an event's own timestamp may lag its store time; widens time-range seeks.",
    )

    @property
    def replay_slots(self) -> int:
        """History reads that may run at once: the pending-bytes budget, and the explicit cap."""
        by_bytes = max(1, int(self.replay_pending_total_bytes) // int(self.replay_pending_bytes))
        return min(self.max_concurrent_replays, by_bytes)

    @property
    def filter_limits(self) -> ExpressionLimits:
        return ExpressionLimits(self.filter_max_length, self.filter_max_depth, self.filter_max_list_values)

    @property
    def encodings(self) -> tuple[str, ...]:
        """`stream_encodings` in order, without gzip when `gzip` is off."""
        names = parse_encodings(self.stream_encodings.split(","))
        return tuple(name for name in names if self.gzip or name != "gzip")

    @field_validator("stream_encodings")
    @classmethod
    def _known_encodings(cls, value: str) -> str:
        parse_encodings(value.split(","))
        return value
