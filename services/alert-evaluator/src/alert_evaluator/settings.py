import os
import socket
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import Field, StringConstraints
from pydantic_settings import SettingsConfigDict

from eh_runtime.settings import Duration, ServiceSettings

DEFAULT_RULES_FILE: Final = Path(__file__).with_name("default_rules.yaml")


def _default_replica_id() -> str:
    """`<host name>-<pid>`."""
    # The pod name in Kubernetes; the pid tells two replicas on one machine apart.
    return f"{socket.gethostname()}-{os.getpid()}"


class EvaluatorSettings(ServiceSettings):
    """`ALERT_EVALUATOR_*` variables, plus the shared `NATS_*`, `EVENTS_*` and `LOG_*` groups."""

    model_config = SettingsConfigDict(env_prefix="ALERT_EVALUATOR_", extra="ignore")

    port: int = Field(default=8002, ge=0, le=65535, description="Port the HTTP server listens on.")
    rules_file: Path = Field(default=DEFAULT_RULES_FILE, description="YAML rules; reloaded on SIGHUP.")
    replica_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        default_factory=_default_replica_id, description="This replica's name in the lease and in logs."
    )
    lease_ttl: Duration = Field(
        default=timedelta(seconds=10),
        description="How long the active replica's lease lasts without renewal: a standby takes over "
        "at most this long after the active one died (at once after a graceful stop).",
    )
    batch_size: int = Field(default=500, ge=1, le=5000, description="Events fetched and committed at once.")
    start_from: Literal["new", "all"] = Field(
        default="new",
        description="Where a first start (no saved position) begins: new events only, or the whole stream.",
    )
    max_clock_skew: Duration = Field(
        default=timedelta(minutes=5),
        description="Events stamped further than this in the future are not evaluated (a wrong clock).",
    )
