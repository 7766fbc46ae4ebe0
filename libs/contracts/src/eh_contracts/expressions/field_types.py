"""What each name in an expression holds, read from the event models.

An expression is checked against the events it can meet: a stream filter against the envelope
of the requested event types (all eight when none is named), an alert rule against the payload
of its one type. A field is known when at least one of those models has it; its type is the union
of what they say (`data.new_state` is a node state or a container state in a stream of both).
Open-ended parts of a payload (`context`, `details` of a step, `params`) hold anything: `dyn`.
"""

import ipaddress
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Union

from pydantic import AwareDatetime, BaseModel, IPvAnyAddress

from eh_contracts.envelope import EVENT_MODELS
from eh_contracts.event_types import EventType


class Kind(StrEnum):
    NUMBER = "number"
    STRING = "string"
    BOOL = "bool"
    NULL = "null"
    MAP = "map"
    LIST = "list"
    DYN = "dyn"  # anything: checked when the event arrives, not before


@dataclass(frozen=True, slots=True)
class FieldType:
    """The kinds a value may have; for text, its possible values when enumerated; for a section,
    its fields (None: any key, each `dyn`)."""

    kinds: frozenset[Kind]
    choices: frozenset[str] | None = None
    fields: Mapping[str, "FieldType"] | None = field(default=None, compare=False)

    @property
    def dynamic(self) -> bool:
        return Kind.DYN in self.kinds

    def only(self, kind: Kind) -> bool:
        """Every value of this field is of `kind` (null aside: a missing value is no value)."""
        return self.kinds - {Kind.NULL} == {kind}

    def allows(self, kind: Kind) -> bool:
        return self.dynamic or kind in self.kinds

    def describe(self) -> str:
        kinds = sorted(k.value for k in self.kinds - {Kind.NULL}) or ["null"]
        return " or ".join(_WORDS[k] for k in kinds)

    def child(self, name: str) -> "FieldType | None":
        if self.dynamic or (Kind.MAP in self.kinds and self.fields is None):
            return DYN
        if self.fields is None:
            return None
        return self.fields.get(name)


# Types pydantic writes as JSON strings.
_TEXT_IN_JSON: tuple[Any, ...] = (AwareDatetime, IPvAnyAddress, ipaddress.IPv4Address, ipaddress.IPv6Address)
_WORDS = {
    "number": "a number",
    "string": "text",
    "bool": "true or false",
    "null": "null",
    "map": "a section",
    "list": "a list",
    "dyn": "any value",
}

DYN = FieldType(frozenset({Kind.DYN}))
NUMBER = FieldType(frozenset({Kind.NUMBER}))
STRING = FieldType(frozenset({Kind.STRING}))
BOOL = FieldType(frozenset({Kind.BOOL}))
NULL = FieldType(frozenset({Kind.NULL}))
LIST = FieldType(frozenset({Kind.LIST}))


def merge(a: FieldType, b: FieldType) -> FieldType:
    """A field that may hold what `a` or `b` holds."""
    choices = None if a.choices is None or b.choices is None else a.choices | b.choices
    if Kind.STRING not in a.kinds:
        choices = b.choices
    elif Kind.STRING not in b.kinds:
        choices = a.choices
    fields: dict[str, FieldType] | None
    if a.fields is None and b.fields is None:
        fields = None
    elif (Kind.MAP in a.kinds and a.fields is None) or (Kind.MAP in b.kinds and b.fields is None):
        fields = None  # one side takes any key: so does the union
    else:
        fields = dict(a.fields or {})
        for name, kind in (b.fields or {}).items():
            fields[name] = merge(fields[name], kind) if name in fields else kind
    return FieldType(a.kinds | b.kinds, choices, fields)


def model_type(model: type[BaseModel]) -> FieldType:
    """A section with the fields of `model`."""
    return FieldType(
        frozenset({Kind.MAP}),
        fields={name: annotation_type(info.annotation) for name, info in model.model_fields.items()},
    )


def annotation_type(annotation: Any) -> FieldType:
    """What a pydantic field annotation holds once serialized to JSON."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return annotation_type(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        members = [annotation_type(member) for member in typing.get_args(annotation)]
        result = members[0]
        for member in members[1:]:
            result = merge(result, member)
        return result
    if origin is Literal:
        values = typing.get_args(annotation)
        if all(isinstance(v, str) for v in values):
            return FieldType(frozenset({Kind.STRING}), frozenset(values))
        return DYN
    if origin in (list, tuple, set, frozenset):
        return LIST
    if origin in (dict, Mapping):
        return FieldType(frozenset({Kind.MAP}))
    if annotation is type(None):
        return NULL
    if annotation is bool:
        return BOOL
    if annotation in (int, float):
        return NUMBER
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return model_type(annotation)
        if issubclass(annotation, str | datetime | ipaddress.IPv4Address | ipaddress.IPv6Address):
            return STRING
    if annotation in _TEXT_IN_JSON:
        return STRING
    return DYN


def payload_scope(model: type[BaseModel]) -> FieldType:
    """The names of an alert condition: the fields of one event type's `data`."""
    return model_type(model)


def envelope_scope(event_types: Iterable[EventType | str] = ()) -> FieldType:
    """The names of a stream filter: the envelope of the given event types (all when empty)."""
    wanted = [EventType(t) for t in event_types] or list(EventType)
    data: FieldType | None = None
    for event_type in wanted:
        payload = annotation_type(EVENT_MODELS[event_type].model_fields["data"].annotation)
        data = payload if data is None else merge(data, payload)
    assert data is not None
    return FieldType(
        frozenset({Kind.MAP}),
        fields={
            "id": STRING,
            "event": FieldType(frozenset({Kind.STRING}), frozenset(t.value for t in wanted)),
            "timestamp": STRING,
            "resource_id": STRING,
            "data": data,
        },
    )
