"""The `filter` parameter: an event expression, compiled once per distinct text and event types.

The language is `eh_contracts.expressions` (a strict subset of CEL). A filter is checked against
the envelopes of the event types the query names, so its errors depend on them too; every error
is a 422 naming `filter`, with the column and the kind of problem.
"""

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Final

from fastapi import HTTPException

from eh_contracts.event_types import EventType
from eh_contracts.expressions import (
    CompiledExpression,
    ExpressionError,
    ExpressionLimits,
    compile_expression,
    envelope_scope,
)
from eh_runtime.service import error_detail

FILTER_DESCRIPTION: Final = (
    "An expression each event must satisfy, in a strict subset of CEL over the envelope: "
    '`data.level in ["warning", "critical"] && data.category == "resource"`, `data.cpu.usage > 90`, '
    '`has(data.gpu)`, `resource_id.startsWith("node-")`. Checked against the event types asked for; '
    "an error is a 422 naming the column. See the Expression filters reference."
)
# Reconnection storms bring the same few filters back thousands of times: compiled once each.
_CACHE_SIZE: Final = 1024
_compiled: "OrderedDict[tuple[str, frozenset[EventType], ExpressionLimits], CompiledExpression]" = (
    OrderedDict()
)


def parse_filter(
    text: str | None,
    types: Iterable[EventType],
    limits: ExpressionLimits,
    *,
    parameter: str = "filter",
    location: str = "query",
) -> CompiledExpression | None:
    """The compiled expression of `text` for events of `types` (all when empty); None when absent.

    Raises:
        HTTPException: 422 naming `parameter`, the column and the kind of problem.
    """
    if text is None or text.strip() == "":
        return None
    key = (text, frozenset(types), limits)
    compiled = _compiled.get(key)
    if compiled is not None:
        _compiled.move_to_end(key)
        return compiled
    try:
        compiled = compile_expression(text, envelope_scope(key[1]), limits=limits)
    except ExpressionError as error:
        raise HTTPException(422, detail=[filter_error(error, parameter, location)]) from None
    _compiled[key] = compiled
    if len(_compiled) > _CACHE_SIZE:
        _compiled.popitem(last=False)
    return compiled


def filter_error(error: ExpressionError, parameter: str, location: str) -> dict[str, Any]:
    detail = error_detail([parameter], str(error), f"filter_{error.reason}") | {"in": location}
    if error.column is not None:
        detail["column"] = error.column
    return detail
