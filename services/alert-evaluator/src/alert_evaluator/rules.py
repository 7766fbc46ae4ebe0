"""Alert rules: what the rules file says, validated, and compiled into `AlertRule`s.

A rule watches one event type. Its condition is checked on every event of that type, per
resource; `for` says how long it must hold before the alert fires, `staleness` how long a value
counts without a new sample, `resolve_delay` how long it must stop holding before the alert
resolves. Templates fill the alert's title, message and action targets.
"""

import hashlib
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import PurePath
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, TypeAdapter

from alert_evaluator.conditions import CompiledCondition, compile_condition
from eh_contracts.envelope import EVENT_MODELS
from eh_contracts.event_types import EventKind, EventType
from eh_contracts.payloads import AlertLevel, Payload
from eh_runtime.settings import duration_text as settings_duration_text
from eh_runtime.settings import parse_duration

RULE_NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,47}$"

EVALUATED_TYPES: Final = tuple(t for t in EventType if t.kind is not EventKind.ALERT)
"""Every event type but alerts: rules never read alerts, so an alert cannot feed itself."""

if TYPE_CHECKING:
    EvaluatedType = str
else:
    # A Literal (not the enum) for the error message: it lists exactly the types a rule may watch.
    EvaluatedType = Literal[tuple(t.value for t in EVALUATED_TYPES)]

PLACEHOLDERS: Final = frozenset({"resource_id", "value", "threshold", "duration", "rule"})

Never = Literal["never"]


def _duration(value: Any) -> Any:
    if value == "never" or isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    parsed = parse_duration(value)
    if not isinstance(parsed, timedelta):
        raise ValueError(f"expected a duration such as 90s, 5m or 2h, not {value!r}")
    return parsed


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class _Strict(BaseModel):
    # Unknown keys are errors: a misspelt `thresold:` must not be silently ignored.
    model_config = ConfigDict(extra="forbid", strict=False)


class ActionSpec(_Strict):
    type: Annotated[str, StringConstraints(min_length=1)]
    target: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class DefaultsSpec(_Strict):
    staleness: Duration | Never = timedelta(minutes=2)
    resolve_delay: Duration = timedelta(0)


class RuleSpec(_Strict):
    name: Annotated[str, StringConstraints(pattern=RULE_NAME_PATTERN)]
    event: EvaluatedType
    condition: Annotated[str, StringConstraints(min_length=1)]
    for_: Duration = Field(default=timedelta(0), alias="for")
    level: AlertLevel
    category: Annotated[str, StringConstraints(min_length=1)]
    title: Annotated[str, StringConstraints(min_length=1)]
    message: str
    resolved_message: str | None = None
    staleness: Duration | Never | None = None
    resolve_delay: Duration | None = None
    actions: list[ActionSpec] = Field(default_factory=list)


class RulesFileSpec(_Strict):
    defaults: DefaultsSpec = Field(default_factory=DefaultsSpec)
    rules: list[dict[str, Any]]


class TemplateError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One compiled rule; times in seconds (`staleness` None: values never go stale)."""

    name: str
    event: str
    condition: CompiledCondition
    for_seconds: float
    staleness_seconds: float | None
    resolve_delay_seconds: float
    level: AlertLevel
    category: str
    title: str
    message: str
    resolved_message: str
    actions: tuple[ActionSpec, ...]
    spec: RuleSpec = field(compare=False)

    @property
    def duration_text(self) -> str:
        return duration_text(self.for_seconds)

    def describe(self) -> dict[str, Any]:
        """The rule as the API shows it: durations in ISO 8601 (`PT5M`), the defaults it takes from
        the file's `defaults` filled in."""
        staleness = self.staleness_seconds
        return self.spec.model_dump(mode="json", by_alias=True, exclude_none=True) | {
            "staleness": "never" if staleness is None else _iso_duration(staleness),
            "resolve_delay": _iso_duration(self.resolve_delay_seconds),
            "fields": list(self.condition.fields),
        }


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules of one rules file, looked up by name and by event type."""

    rules: tuple[AlertRule, ...]
    source: str
    checksum: str
    by_name: Mapping[str, AlertRule] = field(init=False, compare=False)
    by_type: Mapping[str, tuple[AlertRule, ...]] = field(init=False, compare=False)

    @property
    def file_name(self) -> str:
        """The rules file's name without its directory: what clients see (the path is for logs)."""
        return PurePath(self.source).name

    def __post_init__(self) -> None:
        by_type: dict[str, list[AlertRule]] = {}
        for rule in self.rules:
            by_type.setdefault(rule.event, []).append(rule)
        object.__setattr__(self, "by_name", {rule.name: rule for rule in self.rules})
        object.__setattr__(self, "by_type", {t: tuple(r) for t, r in by_type.items()})

    def changes_from(self, older: "RuleSet") -> dict[str, list[str]]:
        """Rule names added, removed and changed compared with `older`."""
        return {
            "added": sorted(self.by_name.keys() - older.by_name.keys()),
            "removed": sorted(older.by_name.keys() - self.by_name.keys()),
            "changed": sorted(
                name
                for name in self.by_name.keys() & older.by_name.keys()
                if self.by_name[name].spec != older.by_name[name].spec
            ),
        }


_DURATION: Final = TypeAdapter(timedelta)


def _iso_duration(seconds: float) -> str:
    text: str = _DURATION.dump_python(timedelta(seconds=seconds), mode="json")
    return text


def checksum_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()[:16]


def compile_rule(spec: RuleSpec, defaults: DefaultsSpec) -> AlertRule:
    """Turn a validated rule into an `AlertRule`.

    Raises:
        ConditionError: the condition is invalid for the event type's payload.
        TemplateError: a template uses an unknown placeholder or a bad format.
    """
    model: type[Payload] = EVENT_MODELS[EventType(spec.event)].model_fields["data"].annotation  # type: ignore[assignment]
    condition = compile_condition(spec.condition, model)
    numeric = not isinstance(condition.threshold, str | tuple)
    staleness: timedelta | Never | None = spec.staleness
    if staleness is None:
        # A status is reported once per change: it holds until the next one, it never goes stale.
        staleness = "never" if EventType(spec.event).kind is EventKind.STATUS else defaults.staleness
    resolve_delay = spec.resolve_delay if spec.resolve_delay is not None else defaults.resolve_delay
    resolved_message = spec.resolved_message or f"Resolved: {spec.message}"
    for name, template in (
        ("title", spec.title),
        ("message", spec.message),
        ("resolved_message", resolved_message),
        *((f"actions.{i}.target", a.target or "") for i, a in enumerate(spec.actions)),
    ):
        check_template(template, numeric, name)
    return AlertRule(
        name=spec.name,
        event=spec.event,
        condition=condition,
        for_seconds=spec.for_.total_seconds(),
        staleness_seconds=None if staleness == "never" else staleness.total_seconds(),
        resolve_delay_seconds=resolve_delay.total_seconds(),
        level=spec.level,
        category=spec.category,
        title=spec.title,
        message=spec.message,
        resolved_message=resolved_message,
        actions=tuple(spec.actions),
        spec=spec,
    )


# --- templates -------------------------------------------------------------------------------


class _AlertFormatter(string.Formatter):
    """`str.format` over plain values only, with numbers written as people write them."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec:
            return format(value, format_spec)
        return value_text(value)


_FORMATTER: Final = _AlertFormatter()


def check_template(template: str, numeric: bool, where: str) -> None:
    """Only known placeholders, no attribute or index access, and format specs that work.

    Raises:
        TemplateError: naming the field and the problem.
    """
    try:
        parts = list(_FORMATTER.parse(template))
    except ValueError as error:
        raise TemplateError(f"{where}: {error}") from None
    sample: dict[str, Any] = {
        "resource_id": "node-001",
        "value": 1.5 if numeric else "x",
        "threshold": 1.5 if numeric else "x",
        "duration": "5m",
        "rule": "rule",
    }
    for _text, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
            raise TemplateError(f"{where}: unknown placeholder {{{name}}}; known: {known}")
        if conversion:
            raise TemplateError(f"{where}: conversions like !{conversion} are not supported")
        if spec:
            try:
                format(sample[name], spec)
            except ValueError as error:
                raise TemplateError(f"{where}: format {{{name}:{spec}}}: {error}") from None


def render(template: str, values: Mapping[str, Any]) -> str:
    """Fill a checked template; a format that does not suit the value falls back to plain text."""
    try:
        return _FORMATTER.vformat(template, (), values)
    except (ValueError, TypeError):
        plain = {k: value_text(v) for k, v in values.items()}
        return _FORMATTER.vformat(_strip_specs(template), (), plain)


def _strip_specs(template: str) -> str:
    out = []
    for text, name, _spec, _conversion in _FORMATTER.parse(template):
        out.append(text.replace("{", "{{").replace("}", "}}"))
        if name is not None:
            out.append("{" + name + "}")
    return "".join(out)


def value_text(value: Any) -> str:
    """80.0 → "80", 93.456 → "93.46", a list of choices → "a, b"."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.2f}".rstrip("0").rstrip(".")
    if isinstance(value, tuple | list):
        return ", ".join(value_text(v) for v in value)
    return "" if value is None else str(value)


def duration_text(seconds: float) -> str:
    """300 → "5m", 90 → "90s", 7200 → "2h"."""
    return settings_duration_text(timedelta(seconds=seconds))
