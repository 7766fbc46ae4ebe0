"""Settings shared by every service, read from environment variables and validated at start.

Each class maps to one group of variables (`NATS_*`, `EVENTS_*`, `LOG_*`); services compose them
with their own prefixed class. A bad value stops the service at start with the variable's name.
"""

import inspect
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    ByteSize,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from eh_runtime.auth.settings import AuthSettings, CorsSettings
from eh_runtime.durations import Duration, parse_duration

__all__ = [
    "SHARED_GROUPS",
    "AuthSettings",
    "CorsSettings",
    "Duration",
    "LoggingSettings",
    "NatsSettings",
    "ServiceSettings",
    "StreamSettings",
    "load_settings",
    "parse_duration",
]


def secret_file_checked(path: str | None, *, inline_given: bool, name: str) -> str | None:
    """`path` of a `<name>_FILE` setting, checked at start so that a missing, unreadable or empty
    file stops the process there, naming the variable; also refused beside `<name>` itself.

    Raises:
        ValueError: one of those (pydantic reports it under the variable's name).
    """
    if path is None:
        return None
    if inline_given:
        raise ValueError(f"set {name} or {name}_FILE, not both")
    try:
        secret = Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ValueError(f"cannot be read: {error.strerror}") from None
    if not secret:
        raise ValueError("the file is empty")
    return path


class NatsSettings(BaseSettings):
    """How to reach NATS. `NATS_URL` is the variable the NATS tools already use."""

    model_config = SettingsConfigDict(env_prefix="NATS_", extra="ignore")

    url: str = Field(
        default="nats://127.0.0.1:4222",
        description="Server URL(s), comma-separated for a cluster; credentials may be embedded.",
    )
    creds: str | None = Field(default=None, description="Path to a credentials file (NATS_CREDS).")
    user: str | None = Field(default=None, description="This service's NATS user (its own identity).")
    password: SecretStr | None = Field(default=None, description="The NATS user's password.")
    password_file: str | None = Field(
        default=None,
        description="File holding the NATS user's password (a mounted secret), instead of NATS_PASSWORD.",
    )
    inbox_prefix: str | None = Field(
        default=None,
        description="Where this process's reply subjects live; default `_INBOX.<NATS user>`, the only "
        "inbox its NATS identity may subscribe to. Each connection adds a random token of its own.",
    )
    tls_ca: str | None = Field(
        default=None, description="CA certificate file: connect with TLS, verify the server."
    )
    tls_cert: str | None = Field(
        default=None, description="Client certificate file (with NATS_TLS_KEY), if the server asks."
    )
    tls_key: str | None = Field(default=None, description="Client private key file.")
    connect_timeout: Duration = Field(default=timedelta(seconds=2), description="One connection attempt.")
    reconnect_wait: Duration = Field(
        default=timedelta(seconds=1),
        description="Pause between two reconnection attempts (they go on forever).",
    )
    request_timeout: Duration = Field(
        default=timedelta(seconds=5), description="How long to wait for a JetStream API reply or ack."
    )

    @field_validator("url")
    @classmethod
    def _one_identity(cls, url: str) -> str:
        split_credentials(url.split(","))
        return url

    @property
    def servers(self) -> list[str]:
        return [url.strip() for url in self.url.split(",") if url.strip()]

    @field_validator("password_file")
    @classmethod
    def _password_file_readable(cls, path: str | None, info: ValidationInfo) -> str | None:
        return secret_file_checked(
            path, inline_given=info.data.get("password") is not None, name="NATS_PASSWORD"
        )

    @model_validator(mode="after")
    def _password_from_file(self) -> Self:
        if self.password_file is not None and self.password is None:
            self.password = SecretStr(Path(self.password_file).read_text(encoding="utf-8").strip())
        return self


def split_credentials(servers: list[str]) -> tuple[list[str], str | None, str | None]:
    """Server URLs without `user:password@`, and the user and password they carried.

    nats-py authenticates with the credentials of the URL it dials, and falls back to the
    connection's own `user`/`password` only for URLs without them. The servers a cluster announces
    (`connect_urls` in its INFO) come without credentials, so credentials left inside the URLs would
    make every failover to an announced server an authorization violation. A process has one
    identity: URLs naming different users or passwords are refused.
    """
    parsed = [urlsplit(url.strip()) for url in servers]
    identities = {(url.username, url.password) for url in parsed if url.username is not None}
    if len(identities) > 1:
        raise ValueError("the URLs carry different credentials; a process has one NATS identity")
    user, password = next(iter(identities), (None, None))
    bare = [url._replace(netloc=url.netloc.rpartition("@")[2]).geturl() for url in parsed]
    return bare, user, password


def _ttl(event_type: str) -> str:
    return f"Time-to-live of `{event_type}` events (per message, `Nats-TTL`; 0: only the stream-wide limits)."


class StreamSettings(BaseSettings):
    """The `EVENTS` stream: how much history it keeps and how safely.

    `replicas` is 1 on a single server and 3 on a cluster; with 3, an acknowledged event is on a
    majority of servers. How often a server syncs to disk is the server's own setting
    (`sync_interval`), not the stream's; see docs/operations/durability.md.
    """

    model_config = SettingsConfigDict(env_prefix="EVENTS_", extra="ignore")

    max_age: Duration = Field(default=timedelta(days=30), description="Oldest event kept (0: no limit).")
    max_bytes: ByteSize = Field(
        default=ByteSize(10 * 2**30), description="Size cap, e.g. 10GiB (-1: no limit)."
    )
    duplicate_window: Duration = Field(
        default=timedelta(minutes=2), description="How long an event id is remembered for deduplication."
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=5,
        description="Replicas of the stream and the key-value buckets: 1 on one server, 3 on a cluster.",
    )
    # Per-type time-to-live, sent as each message's `Nats-TTL` (0: only the stream-wide limits).
    # Metrics are many and soon stale; states and alerts are what an operator looks back at.
    ttl_node_status: Duration = Field(default=timedelta(days=30), description=_ttl("node_status"))
    ttl_node_metrics: Duration = Field(default=timedelta(hours=24), description=_ttl("node_metrics"))
    ttl_pipeline_status: Duration = Field(default=timedelta(days=30), description=_ttl("pipeline_status"))
    ttl_pipeline_progress: Duration = Field(default=timedelta(days=3), description=_ttl("pipeline_progress"))
    ttl_container_status: Duration = Field(default=timedelta(days=30), description=_ttl("container_status"))
    ttl_container_metrics: Duration = Field(
        default=timedelta(hours=24), description=_ttl("container_metrics")
    )
    ttl_system_alert: Duration = Field(default=timedelta(days=30), description=_ttl("system_alert"))
    ttl_system_log: Duration = Field(default=timedelta(days=3), description=_ttl("system_log"))

    def ttl_seconds(self, event_type: str) -> int | None:
        """The `Nats-TTL` for events of this type, in whole seconds (at least 1), or None for none."""
        ttl: timedelta | None = getattr(self, f"ttl_{event_type}", None)
        if ttl is None or ttl.total_seconds() <= 0:
            return None
        return max(1, round(ttl.total_seconds()))


class LoggingSettings(BaseSettings):
    """How much the process logs, and in which format."""

    model_config = SettingsConfigDict(env_prefix="LOG_", extra="ignore")

    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="The least severe log lines written."
    )
    format: Literal["json", "console"] = Field(
        default="json", description="json for machines (the default), console for a terminal."
    )


class HttpServerSettings(BaseSettings):
    """What one client may hold of a service's HTTP server: every service has the same bounds.

    They are enforced by the server itself (`eh_runtime.uvicorn_httptools_limits`), so a service
    stays up without a proxy in front; a proxy may bound them tighter.
    """

    model_config = SettingsConfigDict(env_prefix="HTTP_", extra="ignore")

    max_head_bytes: ByteSize = Field(
        default=ByteSize(64 * 2**10),
        description="Largest request line plus headers (431 above); a JWT fits many times over.",
    )
    max_headers: int = Field(default=100, ge=1, description="Most header fields in one request (431 above).")
    head_timeout: Duration = Field(
        default=timedelta(seconds=10),
        description="Time to send a request's line and headers, from the connection or its first "
        "byte (408 after).",
    )
    body_timeout: Duration = Field(
        default=timedelta(seconds=60),
        description="Time to send a request's body once its head is in (408 after).",
    )
    max_connections: int | None = Field(
        default=None,
        ge=1,
        description="Most open connections; beyond it the oldest idle one is closed (or the new one "
        "gets a 503). Default: the file descriptor limit less 256 kept for NATS, logs and probes.",
    )


class ServiceSettings(BaseSettings):
    """What every service has: where it listens, how long it may take to stop, and the groups above.

    Subclasses set their own `env_prefix` (`COLLECTOR_`, `SSE_EDGE_`, `ALERT_EVALUATOR_`).
    """

    model_config = SettingsConfigDict(extra="ignore")

    host: str = Field(default="0.0.0.0", description="Address the HTTP server listens on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port the HTTP server listens on.")
    shutdown_timeout: Duration = Field(
        default=timedelta(seconds=10), description="Grace period for open requests on SIGTERM."
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Addresses or networks (CIDR) of the proxies trusted to name the client in "
        "X-Forwarded-For, comma-separated; the right-most address not among them is the client.",
    )
    nats: NatsSettings = Field(default_factory=NatsSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    cors: CorsSettings = Field(default_factory=CorsSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    http: HttpServerSettings = Field(default_factory=HttpServerSettings)

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _no_wildcard_proxy(cls, value: str) -> str:
        if "*" in (item.strip() for item in value.split(",")):
            raise ValueError(
                "'*' would let any client name its own address (and dodge per-address limits); "
                "list the proxies' addresses or networks"
            )
        return value


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class SettingsError(SystemExit):
    """Invalid configuration: exits the process with the variables named, not a traceback."""


def load_settings(cls: type[SettingsT]) -> SettingsT:
    """Read `cls` from the environment, or exit with one line per bad variable.

    Raises:
        SettingsError: a SystemExit whose message names each variable and what is wrong.
    """
    problems: list[str] = []
    groups = _group_fields(cls)
    # Only the groups `cls` holds: the host agent has no NATS connection nor HTTP auth, and must
    # not be asked for AUTH_MODE (it was, and `make run` stopped when the agent exited).
    for group in dict.fromkeys(groups.values()):
        problems += _problems(group, lambda g=group: g())
    # With the groups checked on their own, the service's own variables are checked with the
    # groups stubbed out, so every bad variable is reported at once, not the first one only.
    stubs: dict[str, Any] = {name: group.model_construct() for name, group in groups.items()}
    problems += _problems(cls, lambda: cls.model_validate(stubs))
    if problems:
        raise SettingsError("\n".join([f"invalid configuration ({len(problems)} problem(s)):", *problems]))
    return cls()


SHARED_GROUPS: tuple[type[BaseSettings], ...] = (
    NatsSettings,
    StreamSettings,
    LoggingSettings,
    HttpServerSettings,
    AuthSettings,
    CorsSettings,
)
"""Groups every service reads with the same variables (`NATS_*`, `EVENTS_*`, `LOG_*`, `HTTP_*`,
`AUTH_*`, `CORS_*`): checked on their own by `load_settings`, documented once by the docs."""


def _group_fields(cls: type[BaseSettings]) -> dict[str, type[BaseSettings]]:
    return {
        name: field.annotation
        for name, field in cls.model_fields.items()
        if isinstance(field.annotation, type) and field.annotation in SHARED_GROUPS
    }


def _problems(cls: type[BaseSettings], build: Any) -> list[str]:
    try:
        build()
    except ValidationError as error:
        prefix = str(cls.model_config.get("env_prefix", ""))
        return [
            f"  {prefix}{'_'.join(str(p) for p in item['loc']).upper()}={item.get('input')!r}: {item['msg']}"
            for item in error.errors(include_url=False)
        ]
    return []


@dataclass(frozen=True, slots=True)
class SettingsVariable:
    """One environment variable a settings class reads: its name, default and meaning."""

    name: str
    default: str
    description: str


def settings_variables(cls: type[BaseSettings]) -> list[SettingsVariable]:
    """Every environment variable `cls` reads, its nested groups' (`NATS_*`, …) included, in order."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    found: list[SettingsVariable] = []
    for name, field in cls.model_fields.items():
        if inspect.isclass(field.annotation) and issubclass(field.annotation, BaseSettings):
            found += settings_variables(field.annotation)
            continue
        default = field.get_default(call_default_factory=True)
        found.append(
            SettingsVariable(
                variable_name(prefix, name, field),
                "" if default is None else setting_text(default),
                field.description or "",
            )
        )
    return found


def variable_name(prefix: str, name: str, field: FieldInfo) -> str:
    """The environment variable of the field `name` of a settings class with `env_prefix` `prefix`."""
    alias = field.validation_alias if isinstance(field.validation_alias, str) else None
    return alias.upper() if alias else f"{prefix}{name}".upper()


def duration_text(value: timedelta) -> str:
    """A duration in the largest unit that writes it whole: `5m`, `90s`, `250ms`, `0s`."""
    seconds = value.total_seconds()
    if seconds <= 0:
        return "0s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def setting_text(value: Any) -> str:
    """A value as it would be written in the environment: `15s`, `1MiB`, `true`."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, timedelta):
        return duration_text(value)
    if isinstance(value, ByteSize):
        return size_text(value)
    return str(value)


def size_text(value: int) -> str:
    """A size in bytes in the largest binary unit that writes it whole: `10GiB`, `1536`."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value and value % size == 0:
            return f"{value // size}{unit}"
    return str(value)
