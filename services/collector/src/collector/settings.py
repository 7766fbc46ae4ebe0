from pydantic import ByteSize, Field
from pydantic_settings import SettingsConfigDict

from eh_runtime.settings import ServiceSettings


class CollectorSettings(ServiceSettings):
    """`COLLECTOR_*` variables, plus the shared `NATS_*`, `EVENTS_*` and `LOG_*` groups."""

    model_config = SettingsConfigDict(env_prefix="COLLECTOR_", extra="ignore")

    port: int = Field(default=8001, ge=0, le=65535)
    max_body_bytes: ByteSize = Field(
        default=ByteSize(4 * 2**20), description="Largest request body accepted (413 above), e.g. 4MiB."
    )
