"""Event records: the envelope models' validation, producing plain dicts, for bulk ingestion.

Validating into pydantic models builds one Python object per nested payload section (six for a
`node_metrics` sample); for a batch of a thousand events that is most of the collector's CPU time.
This module derives, from the very same models, `TypedDict` schemas that pydantic-core validates
into dicts: the same fields, types, constraints, field validators, `extra` and `strict` settings,
and the models' own `model_validator(mode="after")` functions, run on a read-only view of the dict.
Nothing is declared twice; `tests/test_records.py` checks that both paths accept, reject (with the
same paths and types) and serialize alike.
"""

import functools
import types
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Final, NotRequired, Required, Union, get_args, get_origin

import pydantic_core
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter
from typing_extensions import TypedDict

from eh_contracts.envelope import EVENT_MODELS, EventEnvelope, validate_body, validate_item
from eh_contracts.payloads import Payload


class _ModelView:
    """A dict seen through a model's attributes, for running the model's after-validators on it.

    Absent fields read as their model default (None for every payload field that may be absent).
    """

    model_fields: ClassVar[dict[str, Any]] = {}
    defaults: ClassVar[dict[str, Any]] = {}

    @classmethod
    def of(cls, values: dict[str, Any]) -> "_ModelView":
        view = object.__new__(cls)
        view.__dict__ = cls.defaults | values
        return view


def _after_validators(model: type[BaseModel]) -> list[Callable[[Any], Any]]:
    decorators = model.__pydantic_decorators__.model_validators.values()
    return [d.func for d in decorators if d.info.mode == "after"]


def _record_check(model: type[BaseModel]) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    checks = _after_validators(model)
    if not checks:
        return None
    defaults = {
        name: info.get_default(call_default_factory=True) for name, info in model.model_fields.items()
    }
    view: type[_ModelView] = type(
        f"{model.__name__}View", (_ModelView,), {"model_fields": model.model_fields, "defaults": defaults}
    )

    def check(values: dict[str, Any]) -> dict[str, Any]:
        for function in checks:
            function(view.of(values))
        return values

    return check


def _convert(annotation: Any) -> Any:
    """`annotation` with every payload model replaced by its record type."""
    if isinstance(annotation, type) and issubclass(annotation, Payload):
        return record_type(annotation)
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *metadata = get_args(annotation)
        return Annotated[(_convert(base), *metadata)]
    if origin in (Union, types.UnionType):
        return Union[tuple(_convert(a) for a in get_args(annotation))]  # noqa: UP007
    if origin in (list, dict):
        return origin[tuple(_convert(a) for a in get_args(annotation))]
    return annotation


def _typed_dict(name: str, fields: dict[str, Any], config: ConfigDict) -> Any:
    make: Any = TypedDict  # the functional form, with fields computed at run time
    record = make(name, fields)
    record.__pydantic_config__ = config
    return record


@functools.cache
def record_type(model: type[BaseModel]) -> Any:
    """The TypedDict (with the model's after-validators attached) that validates like `model`."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = _convert(info.annotation)
        if info.metadata:
            annotation = Annotated[(annotation, *info.metadata)]
        fields[name] = Required[annotation] if info.is_required() else NotRequired[annotation]
    record = _typed_dict(
        f"{model.__name__}Record",
        fields,
        ConfigDict(extra=model.model_config.get("extra"), strict=bool(model.model_config.get("strict"))),
    )
    check = _record_check(model)
    return record if check is None else Annotated[record, AfterValidator(check)]


def _envelope_record(model: type[EventEnvelope]) -> Any:
    fields = {
        name: (Required if name in ("event", "resource_id", "data") else NotRequired)[
            Annotated[(_convert(info.annotation), *info.metadata)]
            if info.metadata
            else _convert(info.annotation)
        ]
        for name, info in model.model_fields.items()
    }
    return _typed_dict(f"{model.__name__}Record", fields, ConfigDict(extra="forbid", strict=True))


_ANY_RECORD: Final[Any] = Annotated[
    Union[tuple(_envelope_record(m) for m in EVENT_MODELS.values())],  # noqa: UP007
    Field(discriminator="event"),
]
_ONE: Final = TypeAdapter[Any](_ANY_RECORD)
_MANY: Final = TypeAdapter[Any](list[_ANY_RECORD])
_ENVELOPE_ORDER: Final = ("id", "event", "timestamp", "resource_id", "data")


@dataclass(slots=True)
class EventRecord:
    """One validated event as a dict in the envelope's field order, with `id` and `timestamp` set."""

    fields: dict[str, Any]

    @property
    def event(self) -> str:
        value: str = self.fields["event"]
        return value

    @property
    def resource_id(self) -> str:
        value: str = self.fields["resource_id"]
        return value

    @property
    def id(self) -> str:
        value: str = self.fields["id"]
        return value

    @property
    def timestamp(self) -> datetime:
        value: datetime = self.fields["timestamp"]
        return value

    @property
    def data(self) -> dict[str, Any]:
        value: dict[str, Any] = self.fields["data"]
        return value

    def to_json(self) -> bytes:
        """The stored form, byte for byte what `EventEnvelope.to_json` gives for the same input.

        pydantic-core's type inference writes datetimes and IP addresses as the models' serializer
        does, at half the cost of going through the schema.
        """
        return pydantic_core.to_json(self.fields)


def _complete(values: dict[str, Any], now: datetime) -> EventRecord:
    if "id" not in values:
        values["id"] = str(uuid.uuid4())
    if "timestamp" not in values:
        values["timestamp"] = now
    return EventRecord({name: values[name] for name in _ENVELOPE_ORDER})


def parse_records(body: bytes) -> list[EventRecord]:
    """Like `envelope.parse_events` (one object or a non-empty array), into records.

    Raises:
        EventParseError: naming every invalid field, by its path in the body.
    """
    now = datetime.now(UTC)
    return [_complete(values, now) for values in validate_body(body, _ONE, _MANY)]


def parse_record(item: bytes, index: int | None = None) -> EventRecord:
    """Like `envelope.parse_event`: one event, errors located under `index` when given.

    Raises:
        EventParseError: naming every invalid field; `malformed` when the item is not JSON.
    """
    return _complete(validate_item(item, _ONE, index), datetime.now(UTC))
