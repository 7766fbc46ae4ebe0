from datetime import timedelta

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from eh_runtime.host_agent import DEFAULT_DOCKER_SOCKET, default_node_id
from eh_runtime.settings import Duration, LoggingSettings, secret_file_checked

__all__ = ["AgentSettings", "default_node_id"]


class AgentSettings(BaseSettings):
    """`AGENT_*` variables, plus `LOG_*`."""

    model_config = SettingsConfigDict(env_prefix="AGENT_", extra="ignore", env_ignore_empty=True)

    collector_url: str = Field(default="http://127.0.0.1:8001", description="Where the collector listens.")
    node_id: str = Field(
        default_factory=default_node_id,
        pattern=r"^[A-Za-z0-9_:-]{1,128}$",
        description="This machine's resource id in the events it reports.",
    )
    interval: Duration = Field(default=timedelta(seconds=5), description="Time between two samples.")
    docker_socket: str = Field(
        default=DEFAULT_DOCKER_SOCKET,
        description="Docker engine socket; containers are reported when it exists.",
    )
    request_timeout: Duration = Field(
        default=timedelta(seconds=5), description="Longest wait for one request to the collector."
    )
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token for the collector (eh.publish: node_status and node_metrics of this node; "
        "container_status and container_metrics too when Docker runs); unset when auth is off. "
        "`make run` signs one when AUTH_MODE=jwt and AUTH_SECRET are set.",
    )
    token_file: str | None = Field(
        default=None,
        description="File holding the bearer token (a mounted secret), instead of AGENT_TOKEN; read again "
        "whenever it changes, so a renewed token is used without a restart.",
    )
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    @field_validator("token_file")
    @classmethod
    def _token_file_readable(cls, path: str | None, info: ValidationInfo) -> str | None:
        return secret_file_checked(path, inline_given=info.data.get("token") is not None, name="AGENT_TOKEN")
