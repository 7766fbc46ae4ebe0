"""The `data` of each event type, field for field as in the seed design's examples.

Every payload keeps keys it does not know (producers evolve ahead of this schema) and rejects
values of the wrong type for the keys it does know. Validation is strict: a number sent as a string
is an error, not something to guess at, because dashboards and alert rules compute on these values.
"""

import re
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetPydanticSchema,
    IPvAnyAddress,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from eh_contracts.subjects import RESOURCE_ID_MAX_LENGTH, RESOURCE_ID_PATTERN, validate_resource_id

# RFC 3339 `date-time` (the offset is left to the datetime type, whose error says "timezone"),
# ASCII digits only. pydantic alone also reads a string of digits as Unix seconds ("1710929100"),
# and `\d` would take any Unicode digit: producers must say what they mean.
RFC3339_PATTERN: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?$"
)
_RFC3339_RE: Final = re.compile(RFC3339_PATTERN)


def require_rfc3339_text(value: Any) -> str:
    if not isinstance(value, str) or not _RFC3339_RE.fullmatch(value):
        shown = repr(value[:40]) if isinstance(value, str) else f"a JSON {type(value).__name__}"
        raise PydanticCustomError(
            "datetime_type",
            "Input should be a valid datetime: RFC 3339 text such as 2024-03-20T10:00:00Z, not {shown}",
            {"shown": shown},
        )
    return value


def to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # 9999-12-31T23:59:59-23:59 is a valid RFC 3339 text whose UTC time has no year in 1..9999.
        raise ValueError(f"{value.isoformat()} is outside years 1 to 9999 once converted to UTC") from None


def rfc3339_schema(
    tz_constraint: Literal["aware"] | int, *, native_text_check: bool = False
) -> core_schema.CoreSchema:
    """JSON: RFC 3339 text only, read as a datetime; Python: a datetime object (strict).

    The text check comes first in a chain, so the datetime step (lax, to read text at all) never
    sees a number or a string of digits. `native_text_check`: the same pattern checked by
    pydantic-core itself (0.1 µs per time instead of 0.5), with pydantic's generic error message
    instead of ours; for schemas whose errors nobody reads (the fast records).
    """
    text_check = (
        core_schema.str_schema(pattern=RFC3339_PATTERN, strict=True)
        if native_text_check
        else core_schema.no_info_plain_validator_function(require_rfc3339_text)
    )
    return core_schema.json_or_python_schema(
        json_schema=core_schema.chain_schema(
            [text_check, core_schema.datetime_schema(strict=False, tz_constraint=tz_constraint)]
        ),
        python_schema=core_schema.datetime_schema(strict=True, tz_constraint=tz_constraint),
    )


UtcDatetime = Annotated[
    datetime,
    GetPydanticSchema(lambda _t, _h: rfc3339_schema("aware")),
    AfterValidator(to_utc),
    WithJsonSchema(
        {
            "description": "RFC 3339 time with an offset; stored in UTC.",
            "format": "date-time",
            "type": "string",
        }
    ),
]
"""A point in time; naive times are rejected because their meaning depends on the producer's clock."""

ResourceId = Annotated[
    str,
    # Checked by our own function, for a message that says which character is wrong; the pattern
    # is for the JSON Schema.
    AfterValidator(validate_resource_id),
    Field(
        json_schema_extra={
            "pattern": RESOURCE_ID_PATTERN,
            "minLength": 1,
            "maxLength": RESOURCE_ID_MAX_LENGTH,
        },
        description="A node, pipeline, container, alert or log id: letters, digits, '_', '-', ':'.",
    ),
]
Percent = Annotated[float, Field(ge=0, le=100)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
NonEmptyStr = Annotated[str, Field(min_length=1)]

NodeState = Literal["online", "offline", "unknown", "maintenance", "draining"]
PipelineStatusValue = Literal["pending", "queued", "running", "paused", "completed", "failed", "cancelled"]
StepStatusValue = Literal["pending", "running", "completed", "failed", "cancelled", "skipped"]
ContainerState = Literal[
    "created", "running", "paused", "restarting", "stopped", "exited", "removed", "dead", "unknown"
]
AlertLevel = Literal["info", "warning", "error", "critical"]
AlertState = Literal["firing", "resolved"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class Payload(BaseModel):
    """Base of every payload object: strict types, unknown keys kept."""

    model_config = ConfigDict(extra="allow", strict=True)

    def check_fields(self) -> None:
        """Checks across fields, beyond each field's own type: raise ValueError (none here).

        A plain method, not a `model_validator`, so that `eh_contracts.records` runs the very same
        check on the dicts it validates.
        """

    @model_validator(mode="after")
    def _check_fields(self) -> Self:
        self.check_fields()
        return self


def _requires_a_section(schema: dict[str, Any], cls: type) -> None:
    """JSON Schema for `MetricsPayload.check_fields`: at least one section present, as an object."""
    sections = [name for name in getattr(cls, "model_fields", {}) if name not in Payload.model_fields]
    schema["anyOf"] = [{"required": [name], "properties": {name: {"type": "object"}}} for name in sections]


class MetricsPayload(Payload):
    """A metrics sample: every section is optional, but a sample with none of them says nothing."""

    model_config = ConfigDict(json_schema_extra=_requires_a_section)

    def check_fields(self) -> None:
        # Stops at the first section present: run on every sample the collector receives.
        if all(getattr(self, name) is None for name in type(self).model_fields):
            names = ", ".join(type(self).model_fields)
            raise ValueError(f"a metrics sample needs at least one of: {names}")


# --- node_status -----------------------------------------------------------------------------


def require_text(value: Any) -> Any:
    """Refuse numbers and booleans: pydantic's IP type reads `false` or `0` as the address 0.0.0.0."""
    if not isinstance(value, str | IPv4Address | IPv6Address):
        raise ValueError('an IP address is given as text, such as "10.0.0.7"')
    return value


IpAddress = Annotated[IPvAnyAddress, BeforeValidator(require_text)]


class NodeStatusDetails(Payload):
    ip: IpAddress | None = None
    last_heartbeat: UtcDatetime | None = None


class NodeStatus(Payload):
    old_state: NodeState | None = Field(
        default=None, description="State before the change; the collector fills it when absent."
    )
    new_state: NodeState
    reason: str | None = Field(default=None, examples=["heartbeat_received", "heartbeat_timeout"])
    details: NodeStatusDetails | None = None


# --- node_metrics ----------------------------------------------------------------------------


class NodeCpu(Payload):
    usage: Percent = Field(description="Busy share of all cores, percent.")
    cores: Annotated[int, Field(gt=0)] | None = None
    temperature: float | None = Field(default=None, description="Degrees Celsius.")


class NodeMemory(Payload):
    """Memory in MiB."""

    total: NonNegativeFloat
    used: NonNegativeFloat
    free: NonNegativeFloat | None = None


class NodeDisk(Payload):
    """Disk space in MiB."""

    total: NonNegativeFloat
    used: NonNegativeFloat
    free: NonNegativeFloat | None = None


class NodeNetwork(Payload):
    in_bytes: NonNegativeFloat = Field(description="Bytes received per second over the sample interval.")
    out_bytes: NonNegativeFloat = Field(description="Bytes sent per second over the sample interval.")
    connections: NonNegativeInt | None = None


class NodeGpu(Payload):
    usage: Percent
    memory_used: NonNegativeFloat | None = Field(default=None, description="MiB.")
    temperature: float | None = Field(default=None, description="Degrees Celsius.")


class NodeMetrics(MetricsPayload):
    cpu: NodeCpu | None = None
    memory: NodeMemory | None = None
    disk: NodeDisk | None = None
    network: NodeNetwork | None = None
    gpu: NodeGpu | None = None


# --- pipeline_status -------------------------------------------------------------------------


class PipelineStatus(Payload):
    old_status: PipelineStatusValue | None = Field(
        default=None, description="Status before the change; the collector fills it when absent."
    )
    new_status: PipelineStatusValue
    node_id: ResourceId | None = None
    start_time: UtcDatetime | None = None
    end_time: UtcDatetime | None = None
    error: str | dict[str, Any] | None = None


# --- pipeline_progress -----------------------------------------------------------------------


class StepStatus(Payload):
    name: NonEmptyStr
    status: StepStatusValue
    start_time: UtcDatetime | None = None
    end_time: UtcDatetime | None = None
    details: dict[str, Any] | None = None


class PipelineProgress(Payload):
    current_step: NonNegativeInt
    total_steps: Annotated[int, Field(gt=0)]
    progress: Percent
    step_status: StepStatus | None = None

    def check_fields(self) -> None:
        if self.current_step > self.total_steps:
            raise ValueError(
                f"current_step ({self.current_step}) is larger than total_steps ({self.total_steps})"
            )


# --- container_status ------------------------------------------------------------------------


class ContainerStatus(Payload):
    old_state: ContainerState | None = Field(
        default=None, description="State before the change; the collector fills it when absent."
    )
    new_state: ContainerState
    node_id: ResourceId | None = None
    pipeline_id: ResourceId | None = None
    reason: str | None = None
    exit_code: int | None = None
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None


# --- container_metrics -----------------------------------------------------------------------


class ContainerCpu(Payload):
    usage: NonNegativeFloat = Field(description="Percent of one core; above 100 on several cores.")
    limit: NonNegativeFloat | None = None
    period: NonNegativeInt | None = Field(default=None, description="CFS period, microseconds.")


class ContainerMemory(Payload):
    """Memory in MiB."""

    usage: NonNegativeFloat
    limit: NonNegativeFloat | None = None
    swap: NonNegativeFloat | None = None


class ContainerNetwork(Payload):
    rx_bytes: NonNegativeInt
    tx_bytes: NonNegativeInt
    rx_packets: NonNegativeInt | None = None
    tx_packets: NonNegativeInt | None = None


class ContainerBlockIo(Payload):
    read_bytes: NonNegativeInt
    write_bytes: NonNegativeInt


class ContainerMetrics(MetricsPayload):
    cpu: ContainerCpu | None = None
    memory: ContainerMemory | None = None
    network: ContainerNetwork | None = None
    block_io: ContainerBlockIo | None = None


# --- system_alert ----------------------------------------------------------------------------


class AlertDetails(Payload):
    threshold: float | None = None
    current_value: float | None = None
    duration: str | None = Field(default=None, examples=["5m"])


class AlertAction(Payload):
    type: NonEmptyStr = Field(examples=["scale_up"])
    target: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class SystemAlert(Payload):
    level: AlertLevel
    category: NonEmptyStr = Field(examples=["resource"])
    title: NonEmptyStr
    message: str
    source: str | None = None
    details: AlertDetails | None = None
    actions: list[AlertAction] = Field(default_factory=list)
    state: AlertState | None = Field(
        default=None,
        description="For alerts from rules: `firing` when it starts, `resolved` when it ends; "
        "both carry the same resource id (the alert id) and `started_at`.",
    )
    rule: str | None = Field(default=None, description="Name of the rule that raised the alert.")
    started_at: UtcDatetime | None = Field(default=None, description="When the alert started firing.")


# --- system_log ------------------------------------------------------------------------------


class SystemLog(Payload):
    level: LogLevel
    component: NonEmptyStr
    message: str
    source: str | None = None
    trace_id: str | None = None
    context: dict[str, Any] | None = None
