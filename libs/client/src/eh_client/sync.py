"""`SyncEventClient`: the same calls for code without an event loop (scripts, notebooks, tests).

It owns one private event loop (`asyncio.Runner`) and runs each call of an `EventClient` on it,
so connections are reused between calls; a stream is iterated one item per loop turn.
"""

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from types import TracebackType
from typing import Any, Self, TypeVar

from eh_client.client import EventClient, HistoryPage, ResourceKind
from eh_client.items import Event, StreamItem
from eh_client.publishing import EventInput, PublishResult


class SyncEventClient:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Takes the arguments of `EventClient`."""
        self._runner = asyncio.Runner()
        self._client: EventClient = self._runner.run(_make(args, kwargs))

    @classmethod
    def from_env(cls, **overrides: Any) -> Self:
        instance = cls.__new__(cls)
        instance._runner = asyncio.Runner()
        instance._client = instance._runner.run(_make_from_env(overrides))
        return instance

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._runner.run(self._client.aclose())
        self._runner.close()

    def events(self, **query: Any) -> Iterator[StreamItem]:
        """As `EventClient.events`; a generator. Close it (or break) to drop the connection."""
        stream = aiter(self._client.events(**query))
        try:
            while True:
                try:
                    yield self._runner.run(_next(stream))
                except StopAsyncIteration:
                    return
        finally:
            self._runner.run(stream.aclose())  # type: ignore[attr-defined]

    def history(self, **query: Any) -> Iterator[Event]:
        pages = aiter(self._client.history(**query))
        while True:
            try:
                yield self._runner.run(_next(pages))
            except StopAsyncIteration:
                return

    def history_page(self, **query: Any) -> HistoryPage:
        return self._runner.run(self._client.history_page(**query))

    def publish(self, *events: EventInput | Iterable[EventInput], retries: int = 5) -> PublishResult:
        return self._runner.run(self._client.publish(*events, retries=retries))

    def state(self, kind: ResourceKind, resource_id: str | None = None) -> dict[str, Any]:
        return self._runner.run(self._client.state(kind, resource_id))

    def alerts(self) -> list[dict[str, Any]]:
        return self._runner.run(self._client.alerts())


T = TypeVar("T")


async def _next(iterator: AsyncIterator[T]) -> T:
    return await anext(iterator)


async def _make(args: tuple[Any, ...], kwargs: dict[str, Any]) -> EventClient:
    # Created inside the loop that will use it: httpx binds its pools to the running loop.
    return EventClient(*args, **kwargs)


async def _make_from_env(overrides: dict[str, Any]) -> EventClient:
    return EventClient.from_env(**overrides)
