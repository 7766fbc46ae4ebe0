"""`EventClient`: the one object a Python program needs to read and write the farm's events.

Three services answer it: the SSE edge (live events, snapshot, history), the collector
(publishing, heartbeats, current resource state) and the alert evaluator (alerts under way).
Locally they listen on ports 8000, 8001 and 8002; behind an Ingress give each its URL.
"""

import json
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any, Final, Literal, Self

import httpx

from eh_client.errors import RequestError
from eh_client.items import Event, parse_event
from eh_client.publishing import EventInput, PublishResult, publish
from eh_client.query import EventQuery, TimeLike
from eh_client.stream import EventStream
from eh_contracts.envelope import EventEnvelope

DEFAULT_EDGE_URL: Final = "http://localhost:8000"
DEFAULT_COLLECTOR_URL: Final = "http://localhost:8001"
DEFAULT_EVALUATOR_URL: Final = "http://localhost:8002"
EVENTS_PATH: Final = "/api/v1/events"
HISTORY_PATH: Final = "/api/v1/events/history"

ResourceKind = Literal["node", "pipeline", "container"]
Order = Literal["asc", "desc"]


class HistoryPage:
    """One page of the history endpoint: its events, and the cursor of the next page (None: last)."""

    __slots__ = ("events", "last_seq", "next")

    def __init__(self, events: list[Event], next_cursor: str | None, last_seq: int | None) -> None:
        self.events = events
        self.next = next_cursor
        self.last_seq = last_seq
        """For a snapshot page: the stream sequence it is consistent with; stream from there."""


class EventClient:
    """Async client. Use as `async with EventClient(...) as client:`, or call `aclose()`."""

    def __init__(
        self,
        url: str = DEFAULT_EDGE_URL,
        *,
        collector_url: str = DEFAULT_COLLECTOR_URL,
        evaluator_url: str = DEFAULT_EVALUATOR_URL,
        token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}

        def http(base_url: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout, transport=transport)

        self.edge = http(url)
        self.collector = http(collector_url)
        self.evaluator = http(evaluator_url)

    @classmethod
    def from_env(cls, **overrides: Any) -> Self:
        """URLs and token from `EH_URL`, `EH_COLLECTOR_URL`, `EH_EVALUATOR_URL`, `EH_TOKEN`."""
        settings: dict[str, Any] = {
            "url": os.environ.get("EH_URL", DEFAULT_EDGE_URL),
            "collector_url": os.environ.get("EH_COLLECTOR_URL", DEFAULT_COLLECTOR_URL),
            "evaluator_url": os.environ.get("EH_EVALUATOR_URL", DEFAULT_EVALUATOR_URL),
            "token": os.environ.get("EH_TOKEN") or None,
        }
        return cls(**(settings | overrides))

    def set_token(self, token: str | None) -> None:
        """Send `token` from the next request on (a renewed one), or none."""
        for http in (self.edge, self.collector, self.evaluator):
            if token:
                http.headers["Authorization"] = f"Bearer {token}"
            else:
                http.headers.pop("Authorization", None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for http in (self.edge, self.collector, self.evaluator):
            await http.aclose()

    # -- reading -----------------------------------------------------------------------------------

    def events(
        self,
        *,
        types: str | Iterable[str] | None = None,
        resources: str | Iterable[str] | None = None,
        since: TimeLike | None = None,
        start_time: TimeLike | None = None,
        end_time: TimeLike | None = None,
        limit: int | None = None,
        snapshot: bool = False,
        last_event_id: int | None = None,
        reconnect: bool = True,
    ) -> EventStream:
        """Live events, after the history asked for: `async for item in client.events(...)`.

        Yields `Event` (typed envelope and stream sequence) and `Control` items (`stream.ready`,
        `stream.caught_up`, `stream.gap`, `stream.overflow`, `client.reconnecting`, ...).
        `snapshot=True`: first the latest event of every matching (type, resource), then
        `stream.caught_up`, then live. `since="10m"` replays the last ten minutes first;
        `limit=N` the last N events. Drops are resumed exactly (Last-Event-ID), after a jittered
        backoff, unless `reconnect=False`. A bounded query (`end_time` past) ends after `stream.end`.
        """
        query = EventQuery.of(
            types=types,
            resources=resources,
            since=since,
            start_time=start_time,
            end_time=end_time,
            limit=limit,
            snapshot=snapshot,
        )
        return EventStream(self.edge, EVENTS_PATH, query, last_event_id=last_event_id, reconnect=reconnect)

    async def history_page(
        self,
        *,
        types: str | Iterable[str] | None = None,
        resources: str | Iterable[str] | None = None,
        since: TimeLike | None = None,
        start_time: TimeLike | None = None,
        end_time: TimeLike | None = None,
        snapshot: bool = False,
        order: Order = "asc",
        page_size: int = 500,
        cursor: str | None = None,
    ) -> HistoryPage:
        query = EventQuery.of(
            types=types,
            resources=resources,
            since=since,
            start_time=start_time,
            end_time=end_time,
            snapshot=snapshot,
        )
        params = query.params() | {"limit": str(page_size), "order": order}
        if cursor:
            params["cursor"] = cursor
        body = await _get_json(self.edge, HISTORY_PATH, params)
        events = [parse_event(item.pop("seq"), json.dumps(item)) for item in body["events"]]
        return HistoryPage(events, body.get("next"), body.get("last_seq"))

    async def history(
        self,
        *,
        types: str | Iterable[str] | None = None,
        resources: str | Iterable[str] | None = None,
        since: TimeLike | None = None,
        start_time: TimeLike | None = None,
        end_time: TimeLike | None = None,
        snapshot: bool = False,
        order: Order = "asc",
        page_size: int = 500,
        max_events: int | None = None,
    ) -> AsyncIterator[Event]:
        """Every stored event matching, page after page (stable while events keep arriving)."""
        cursor: str | None = None
        yielded = 0
        while True:
            page = await self.history_page(
                types=types,
                resources=resources,
                since=since,
                start_time=start_time,
                end_time=end_time,
                snapshot=snapshot,
                order=order,
                page_size=page_size,
                cursor=cursor,
            )
            for event in page.events:
                yield event
                yielded += 1
                if max_events is not None and yielded >= max_events:
                    return
            if page.next is None:
                return
            cursor = page.next

    async def state(self, kind: ResourceKind, resource_id: str | None = None) -> dict[str, Any]:
        """The current state of every node, pipeline or container (or of one), from the collector.

        The answer's `stream_seq` is where the state stands: stream with `last_event_id` of it.
        """
        path = f"/api/v1/resources/{kind}" + (f"/{resource_id}" if resource_id else "")
        state: dict[str, Any] = await _get_json(self.collector, path)
        return state

    async def alerts(self) -> list[dict[str, Any]]:
        """Alerts pending and firing now, from the alert evaluator's active replica."""
        body = await _get_json(self.evaluator, "/api/v1/alerts")
        alerts: list[dict[str, Any]] = body.get("alerts", [])
        return alerts

    # -- writing -----------------------------------------------------------------------------------

    async def publish(self, *events: EventInput | Iterable[EventInput], retries: int = 5) -> PublishResult:
        """Store events (dicts or contract models, one or many); each gets an id before the first
        try, so retries (after a timeout, a 503) never store one twice. Per-event results."""
        flat: list[EventInput] = []
        for item in events:
            if isinstance(item, Mapping | EventEnvelope) or not isinstance(item, Iterable):
                flat.append(item)
            else:
                flat.extend(item)
        return await publish(self.collector, flat, retries=retries)

    async def heartbeat(
        self, node_id: str, *, metrics: dict[str, Any] | None = None, ip: str | None = None
    ) -> dict[str, Any]:
        """A node's heartbeat (it goes online, stays online), optionally with its metrics."""
        body: dict[str, Any] = {}
        if metrics is not None:
            body["metrics"] = metrics
        if ip is not None:
            body["ip"] = ip
        response = await self.collector.post(f"/api/v1/nodes/{node_id}/heartbeat", json=body)
        answer: dict[str, Any] = _json_or_error(response)
        return answer


async def _get_json(http: httpx.AsyncClient, path: str, params: dict[str, str] | None = None) -> Any:
    return _json_or_error(await http.get(path, params=params))


def _json_or_error(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        message = f"HTTP {response.status_code} from {response.url.path}: {detail}"
        raise RequestError(message, status=response.status_code)
    return response.json()
