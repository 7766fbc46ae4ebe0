from datetime import timedelta

from pydantic import ByteSize, Field
from pydantic_settings import SettingsConfigDict

from eh_runtime.settings import Duration, ServiceSettings


class CollectorSettings(ServiceSettings):
    """`COLLECTOR_*` variables, plus the shared `NATS_*`, `EVENTS_*` and `LOG_*` groups."""

    model_config = SettingsConfigDict(env_prefix="COLLECTOR_", extra="ignore")

    port: int = Field(default=8001, ge=0, le=65535, description="Port the HTTP server listens on.")
    max_body_bytes: ByteSize = Field(
        default=ByteSize(4 * 2**20), description="Largest request body accepted (413 above), e.g. 4MiB."
    )
    max_events_per_body: int = Field(
        default=10_000,
        ge=1,
        description="Most events in one request body (413 above): bounds the work and the answer "
        "one request can cause.",
    )
    max_errors_listed: int = Field(
        default=100,
        ge=1,
        description="Most field errors listed in one answer; the rest are counted (errors_total).",
    )
    max_clock_skew: Duration = Field(
        default=timedelta(minutes=5),
        description="How far in the future an event's timestamp may be before it is rejected.",
    )
    heartbeat_timeout: Duration = Field(
        default=timedelta(seconds=30),
        description="A node without a heartbeat for this long becomes offline (heartbeat_timeout).",
    )
    workers: int = Field(
        default=1,
        ge=1,
        description="Collector processes sharing the port, each a whole collector (its own NATS "
        "connection); /metrics answers for the process that took the request.",
    )
    ingest_concurrency: int = Field(
        default=256, ge=1, description="NATS ingestion requests handled at once; more wait in NATS."
    )
