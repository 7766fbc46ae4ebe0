"""The `type` and `resource_id` query parameters: several values each, repeated or comma-separated.

Every filter the edge serves is built here (`event_filters`: types, resources and the `filter`
expression checked against those types), and never wider than the holder's token allows
(`Grant.narrow`): live streams, replays, history pages, snapshots and filter changes all read
through it.
"""

from collections.abc import Iterable
from typing import Annotated, Any, Final

from fastapi import HTTPException, Query

from eh_contracts.event_types import EventType
from eh_contracts.expressions import CompiledExpression
from eh_contracts.subjects import (
    RESOURCE_ID_MAX_LENGTH,
    InvalidResourceId,
    SubjectFilter,
    validate_resource_id,
)
from eh_runtime.auth.claims import Grant, OutsideGrant
from eh_runtime.service import error_detail
from sse_edge.http.filter_expression import parse_filter
from sse_edge.settings import EdgeSettings

_TYPE_LIST = ", ".join(t.value for t in EventType)


def _comma_separated(value: str) -> str:
    """A pattern for text holding `value`s separated by commas, blanks and spaces around allowed."""
    return rf"^\s*(?:(?:{value})\s*)?(?:,\s*(?:(?:{value})\s*)?)*$"


TYPE_VALUES_PATTERN: Final = _comma_separated("|".join(t.value for t in EventType))
RESOURCE_ID_VALUES_PATTERN: Final = _comma_separated(f"[A-Za-z0-9_:-]{{1,{RESOURCE_ID_MAX_LENGTH}}}")
_SEVERAL: Final = "Repeated or comma-separated. None: all."

# How the two parameters are documented, for FastAPI's `Query` here and pydantic's `Field` in the
# event stream's parameter model (`stream_parameters`): written once for both endpoints.
TYPE_PARAMETER_DOC: Final[dict[str, Any]] = {
    "description": f"Event types. {_SEVERAL}",
    "json_schema_extra": {"items": {"type": "string", "pattern": TYPE_VALUES_PATTERN}},
}
RESOURCE_ID_PARAMETER_DOC: Final[dict[str, Any]] = {
    "description": f"Resource ids: letters, digits, '_', '-', ':' (1 to 128 each). {_SEVERAL}",
    "json_schema_extra": {"items": {"type": "string", "pattern": RESOURCE_ID_VALUES_PATTERN}},
}

TypeFilter = Annotated[list[str], Query(**TYPE_PARAMETER_DOC)]
ResourceFilter = Annotated[list[str], Query(**RESOURCE_ID_PARAMETER_DOC)]


def split_values(raw: Iterable[str]) -> list[str]:
    """`["a,b", "c"]` → `["a", "b", "c"]`, in order, without blanks and repeats."""
    values: list[str] = []
    for item in raw:
        for value in item.split(","):
            value = value.strip()
            if value and value not in values:
                values.append(value)
    return values


def subject_filter_from_query(
    types: Iterable[str], resource_ids: Iterable[str], max_values: int, grant: Grant | None
) -> SubjectFilter:
    """Validate both parameters and narrow them to `grant` (None: the token may read nothing),
    before any stream opens.

    Raises:
        HTTPException: 422 naming the parameter and the bad value; 403 naming the parameter
            when it asks for more than the token allows.
    """
    errors: list[dict[str, Any]] = []
    type_values = split_values(types)
    resource_values = split_values(resource_ids)
    for name, values in (("type", type_values), ("resource_id", resource_values)):
        if len(values) > max_values:
            errors.append(_query_error(name, f"{len(values)} values given, at most {max_values}", "too_long"))
    for value in type_values:
        if value not in EventType.__members__.values():
            errors.append(
                _query_error("type", f"unknown event type {value!r}; expected one of: {_TYPE_LIST}", "enum")
            )
    for value in resource_values:
        try:
            validate_resource_id(value)
        except InvalidResourceId as error:
            errors.append(_query_error("resource_id", str(error), "resource_id"))
    if errors:
        raise HTTPException(422, detail=errors)
    if grant is None:
        raise HTTPException(403, "your token does not allow reading events (no eh.subscribe claim)")
    try:
        return grant.narrow(SubjectFilter.of(type_values, resource_values))
    except OutsideGrant as refused:
        raise HTTPException(
            403, detail=[_query_error(refused.parameter, refused.message, "forbidden")]
        ) from None


def event_filters(
    types: Iterable[str],
    resource_ids: Iterable[str],
    expression: str | None,
    settings: EdgeSettings,
    grant: Grant | None,
) -> tuple[SubjectFilter, CompiledExpression | None]:
    """The subjects a query selects (narrowed to `grant`) and its `filter` expression, compiled
    against the event types of those subjects (a field none of them has is an error).

    Raises:
        HTTPException: 422 naming the parameter; 403 naming the parameter when it asks for more
            than the token allows.
    """
    subject_filter = subject_filter_from_query(types, resource_ids, settings.max_filter_values, grant)
    return subject_filter, parse_filter(expression, subject_filter.types, settings.filter_limits)


def _query_error(parameter: str, message: str, kind: str) -> dict[str, Any]:
    return error_detail([parameter], message, kind) | {"in": "query"}
