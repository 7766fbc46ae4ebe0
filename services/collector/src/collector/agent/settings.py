import re
import socket
from datetime import timedelta

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from eh_runtime.settings import Duration, LoggingSettings


def default_node_id() -> str:
    """The host name as a resource id: characters a subject token cannot hold become `-`."""
    return re.sub(r"[^A-Za-z0-9_:-]", "-", socket.gethostname())[:128] or "localhost"


class AgentSettings(BaseSettings):
    """`AGENT_*` variables, plus `LOG_*`."""

    model_config = SettingsConfigDict(env_prefix="AGENT_", extra="ignore")

    collector_url: str = Field(default="http://127.0.0.1:8001", description="Where the collector listens.")
    node_id: str = Field(
        default_factory=default_node_id,
        pattern=r"^[A-Za-z0-9_:-]{1,128}$",
        description="This machine's resource id in the events it reports.",
    )
    interval: Duration = Field(default=timedelta(seconds=5), description="Time between two samples.")
    docker_socket: str = Field(
        default="/var/run/docker.sock",
        description="Docker engine socket; containers are reported when it exists.",
    )
    request_timeout: Duration = Field(
        default=timedelta(seconds=5), description="Longest wait for one request to the collector."
    )
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token for the collector (eh.publish: node_status, node_metrics, "
        "container_status, container_metrics for this node and its containers); unset when auth is off.",
    )
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
