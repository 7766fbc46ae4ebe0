"""The parameters of `GET /api/v1/events`, read and validated in one pydantic call per request.

A reconnection storm is thousands of stream requests a second, and FastAPI reads each declared
query parameter on its own: per parameter and per request it inspects the annotation, looks the
value up and validates it alone (~8 µs each, eleven parameters and a header: a fifth of what a
resume from memory cost the edge). Here the same parameters are one pydantic model, built once:
the route's dependency `stream_parameters` takes the values from the query string and the
`Last-Event-ID` header and validates them in one call. Errors are FastAPI's own
(`RequestValidationError`, located at `query.<name>`), so a client gets the same 422.

The OpenAPI document lists the same parameters (`STREAM_PARAMETERS_OPENAPI`, from the model's
own JSON schema, as FastAPI would have written them): the route stays documented parameter by
parameter, and the model is their one definition.
"""

from typing import Annotated, Any, Final

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sse_edge.http.event_query import EVENT_ID_TEXT_PATTERN, MAX_REPLAY_LIMIT
from sse_edge.http.filter_expression import FILTER_DESCRIPTION
from sse_edge.http.query_filters import RESOURCE_ID_PARAMETER_DOC, TYPE_PARAMETER_DOC

LAST_EVENT_ID_HEADER: Final = "Last-Event-ID"


class StreamParameters(BaseModel):
    """What a client may ask of an event stream, as given (the meaning is checked later:
    `query_filters.event_filters`, `event_query.parse_event_query`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Annotated[list[str], Field(**TYPE_PARAMETER_DOC)] = []
    resource_id: Annotated[list[str], Field(**RESOURCE_ID_PARAMETER_DOC)] = []
    start_time: Annotated[
        str | None,
        Field(description="RFC 3339; replay events whose own timestamp is at or after it, then live."),
    ] = None
    end_time: Annotated[
        str | None,
        Field(
            description="RFC 3339; past: a bounded query that ends with stream.end; future: live until then."
        ),
    ] = None
    limit: Annotated[
        int | None,
        Field(ge=1, le=MAX_REPLAY_LIMIT, description="Replay only the most recent N events of the range."),
    ] = None
    snapshot: Annotated[
        str | None,
        Field(
            description="`latest`: first the latest stored event of every matching (type, resource), "
            "then `stream.caught_up`, then live. Not with start_time, end_time or limit; ignored on resume."
        ),
    ] = None
    filter: Annotated[str | None, Field(description=FILTER_DESCRIPTION)] = None
    max_rate: Annotated[
        float | None,
        Field(
            gt=0,
            le=10_000,
            description="At most this many writes a second; each carries the newest metrics sample of "
            "each resource and every other event since the last (5: five updates a second per node). "
            "Lower than the edge's own cap only.",
        ),
    ] = None
    max_bandwidth: Annotated[
        int | None,
        Field(gt=0, description="At most this many bytes a second. Lower than the edge's own cap only."),
    ] = None
    last_event_id: Annotated[
        str | None,
        Field(
            description="For clients that cannot send the Last-Event-ID header.",
            json_schema_extra={"pattern": EVENT_ID_TEXT_PATTERN},
        ),
    ] = None
    last_event_id_header: Annotated[
        str | None,
        Field(
            alias=LAST_EVENT_ID_HEADER,
            title="Last-Event-Id",
            description="Resume strictly after this sequence.",
            json_schema_extra={"pattern": EVENT_ID_TEXT_PATTERN},
        ),
    ] = None


_LISTS: Final = frozenset({"type", "resource_id"})
_QUERY_NAMES: Final = tuple(
    name for name, field in StreamParameters.model_fields.items() if field.alias is None
)


async def stream_parameters(request: Request) -> StreamParameters:
    """The stream's parameters from the query string and headers.

    Async though it does not await: FastAPI runs a plain function dependency in a worker thread.

    Raises:
        RequestValidationError: a value of the wrong kind or out of range (a 422 naming it).
    """
    query = request.query_params
    given: dict[str, Any] = {}
    for name in _QUERY_NAMES:
        if name in query:
            # As FastAPI reads them: every value of a list parameter, the last of any other.
            given[name] = query.getlist(name) if name in _LISTS else query[name]
    header = request.headers.get(LAST_EVENT_ID_HEADER)
    if header is not None:
        given[LAST_EVENT_ID_HEADER] = header
    try:
        return StreamParameters.model_validate(given)
    except ValidationError as error:
        raise RequestValidationError([_located(item) for item in error.errors()]) from None


def _located(error: Any) -> dict[str, Any]:
    """A pydantic error where FastAPI puts a parameter's: `("query", name)` or `("header", name)`."""
    name = error["loc"][0] if error["loc"] else ""
    where = "header" if name == LAST_EVENT_ID_HEADER else "query"
    return {**error, "loc": (where, name)}


def _openapi_parameters() -> list[dict[str, Any]]:
    """The model's fields as OpenAPI parameter objects, the way FastAPI writes declared ones."""
    properties = StreamParameters.model_json_schema(by_alias=True)["properties"]
    parameters = []
    for name, field in StreamParameters.model_fields.items():
        shown = field.alias or name
        parameters.append(
            {
                "name": shown,
                "in": "header" if field.alias else "query",
                "required": False,
                "schema": properties[shown],
                "description": field.description,
            }
        )
    return parameters


STREAM_PARAMETERS_OPENAPI: Final = {"parameters": _openapi_parameters()}
"""For the route's `openapi_extra`."""
