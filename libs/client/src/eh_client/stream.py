"""One logical event stream over as many HTTP connections as it takes.

After any drop (network error, server restart, `stream.overflow`, `stream.shutdown`) the stream
reconnects after a jittered backoff and resumes with `Last-Event-ID` strictly after the last
event it yielded, so the caller sees every matching event once, in order. One exception, before
the first `stream.caught_up` of a snapshot: the snapshot is asked for again and what was already
yielded (a lower sequence, since a snapshot comes in stream order) is skipped.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Final

import httpx

from eh_client.backoff import Backoff
from eh_client.errors import EventStreamError
from eh_client.items import RECONNECTING, Control, StreamItem, parse_event_or_control
from eh_client.query import EventQuery
from eh_client.sse import SseDecoder

# No byte for this long means the connection is dead: the edge sends a heartbeat every 15 s.
READ_TIMEOUT: Final = 45.0
_RETRYABLE_STATUS: Final = frozenset({429, 502, 503, 504})
_ENDS: Final = frozenset({"stream.end"})
_DROPS: Final = frozenset({"stream.overflow", "stream.shutdown"})


class EventStream:
    """An async iterator of `Event` and `Control` items; `last_event_id` is where it would resume."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        path: str,
        query: EventQuery,
        *,
        last_event_id: int | None = None,
        reconnect: bool = True,
        backoff: Backoff | None = None,
    ) -> None:
        self._http = http
        self._path = path
        self.query = query
        self.last_event_id = last_event_id
        self.reconnect = reconnect
        self.backoff = backoff or Backoff()
        self.caught_up = False
        self.connections = 0
        self._retry_hint = 0.0

    def __aiter__(self) -> AsyncIterator[StreamItem]:
        return self._items()

    async def _items(self) -> AsyncIterator[StreamItem]:
        while True:
            error: BaseException | None = None
            ended = False
            try:
                async for item in self._one_connection():
                    if isinstance(item, Control) and item.name in _ENDS:
                        ended = True
                    yield item
                    if ended:
                        return
            except EventStreamError:
                raise
            except (httpx.TransportError, httpx.HTTPStatusError, _Dropped) as caught:
                error = caught
            if not self.reconnect:
                if error is not None:
                    raise EventStreamError(f"event stream lost: {error}") from error
                return
            delay = self.backoff.next(at_least=self._retry_hint)
            self._retry_hint = 0.0
            yield Control(
                RECONNECTING,
                {"delay": round(delay, 3), "last_event_id": self.last_event_id, "error": _describe(error)},
            )
            await asyncio.sleep(delay)

    def _request(self) -> tuple[dict[str, str], dict[str, str]]:
        resuming = self.last_event_id is not None and (self.caught_up or not self.query.snapshot)
        query = self.query.filters_only() if resuming else self.query
        headers = {"Accept": "text/event-stream"}
        if resuming:
            headers["Last-Event-ID"] = str(self.last_event_id)
        return query.params(), headers

    async def _one_connection(self) -> AsyncIterator[StreamItem]:
        params, headers = self._request()
        skip_through = self.last_event_id if "Last-Event-ID" not in headers else None
        timeout = httpx.Timeout(self._http.timeout.connect, read=READ_TIMEOUT)
        async with self._http.stream(
            "GET", self._path, params=params, headers=headers, timeout=timeout
        ) as response:
            if response.status_code != 200:
                await response.aread()
                if response.status_code in _RETRYABLE_STATUS:
                    self._retry_hint = _retry_after(response)
                    response.raise_for_status()
                raise EventStreamError(_error_text(response), status=response.status_code)
            self.connections += 1
            decoder = SseDecoder()
            async for line in response.aiter_lines():
                message = decoder.feed(line)
                if message is None:
                    continue
                if message.retry is not None:
                    self._retry_hint = message.retry / 1000
                if not message.data:
                    continue
                if message.id is not None and message.id.isdigit():
                    seq = int(message.id)
                    if skip_through is not None and seq <= skip_through:
                        continue  # a snapshot asked for again: this one was already yielded
                    item = parse_event_or_control(seq, message.data)
                    self.last_event_id = seq
                    self.backoff.reset()  # a connection that delivers is a connection that works
                    yield item
                    continue
                control = Control(message.event, _json_object(message.data))
                if control.name == "stream.caught_up":
                    self.caught_up = True
                    self.backoff.reset()
                    if self.last_event_id is None:
                        # Nothing matched so far: resume from the caught-up point, not from scratch.
                        self.last_event_id = int(control.data.get("last_seq", 0)) or None
                yield control
                if control.name in _DROPS:
                    raise _Dropped(control.name)
        raise _Dropped("connection closed by the server")


class _Dropped(Exception):
    """The server ended the connection without ending the stream: resume."""


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"text": text}
    return value if isinstance(value, dict) else {"value": value}


def _retry_after(response: httpx.Response) -> float:
    raw = response.headers.get("retry-after", "")
    return float(raw) if raw.replace(".", "", 1).isdigit() else 0.0


def _error_text(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    return f"HTTP {response.status_code}: {detail}"


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "connection closed"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
