from pydantic import Field
from pydantic_settings import SettingsConfigDict

from eh_runtime.settings import ServiceSettings


class EvaluatorSettings(ServiceSettings):
    """`ALERT_EVALUATOR_*` variables, plus the shared `NATS_*`, `EVENTS_*` and `LOG_*` groups."""

    model_config = SettingsConfigDict(env_prefix="ALERT_EVALUATOR_", extra="ignore")

    port: int = Field(default=8002, ge=0, le=65535)
