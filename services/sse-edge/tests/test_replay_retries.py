"""A replay outside the window of recent events rides through NATS not answering (a stalled
nats-server: SIGSTOP, sockets open, no answer), against a real server: the stream opens without a
NATS request, and the replay's requests that time out are retried from where they stopped."""

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI

from eh_devtools.nats_server import NatsServer
from eh_devtools.pytest_plugin import serving
from eh_devtools.sse_client import next_event, read_sse
from eh_runtime.settings import NatsSettings
from sse_edge.app import create_app
from sse_edge.metrics import HISTORY_READS_WAITING, REPLAY_RETRIES
from sse_edge.settings import EdgeSettings

from .test_reconnect_storm import caught_up, event, store_bulk

pytestmark = pytest.mark.nats

# NATS requests give up after a second here, so that a stalled server makes them time out quickly.
_REQUEST_TIMEOUT = 1.0
_STALL_SECONDS = 2.5


def edge_without_window(nats_url: str, **overrides: Any) -> FastAPI:
    """An edge whose resumes all read JetStream (its window holds nothing)."""
    nats = NatsSettings(url=nats_url, reconnect_wait=0.05, request_timeout=_REQUEST_TIMEOUT)
    return create_app(EdgeSettings(nats=nats, recent_events_bytes=0, **overrides))


def retries() -> float:
    return float(REPLAY_RETRIES._value.get())


async def read_resume(response: Any, opened: asyncio.Event) -> tuple[list[int], list[str]]:
    """(event ids, control events) of a resume up to `stream.caught_up` or `stream.end`."""
    ids: list[int] = []
    controls: list[str] = []
    messages = read_sse(response)
    async with asyncio.timeout(30):
        while True:
            message = await next_event(messages)
            if not message.event.startswith("stream."):
                ids.append(int(message.id))
                continue
            controls.append(message.event)
            opened.set()
            if message.event in ("stream.caught_up", "stream.end"):
                return ids, controls


async def test_a_resume_outside_the_window_opens_while_nats_stalls_and_replays_once_it_answers(
    nats_server: NatsServer, events_stream, js
):
    """No NATS request before the stream opens: the stream's end is the live feed's, and the
    stream's first sequence is read by the replay, retried while NATS does not answer (before,
    the request made before the response timed out: a 503)."""
    app = edge_without_window(nats_server.url)
    async with serving(app) as edge:
        stored = await store_bulk(js, [event(n, f"node-{n % 3}") for n in range(60)])
        await caught_up(app.state.recent_events, stored[-1])
        before = retries()
        opened = asyncio.Event()
        nats_server.pause()
        try:
            headers = {"Last-Event-ID": str(stored[9])}
            params = {"resource_id": "node-1"}
            async with edge.stream("GET", "/api/v1/events", params=params, headers=headers) as response:
                assert response.status_code == 200
                reading = asyncio.create_task(read_resume(response, opened))
                await asyncio.wait_for(opened.wait(), 5)  # stream.ready, NATS still silent
                await asyncio.sleep(_STALL_SECONDS)  # the replay's first request times out
                nats_server.resume()
                ids, controls = await reading
        finally:
            nats_server.resume()
    assert ids == [seq for n, seq in enumerate(stored) if n > 9 and n % 3 == 1]
    assert controls == ["stream.ready", "stream.caught_up"]
    assert retries() > before


async def test_a_replay_whose_read_times_out_goes_on_once_nats_answers(
    nats_server: NatsServer, events_stream, js
):
    """The replay waits for its admission slot (held by the test); NATS stalls; the slot frees,
    and the read's first request (its counting probe) times out. Without the retry the stream
    would end with `stream.end` (replay failed); with it, the client gets every event once."""
    app = edge_without_window(nats_server.url, max_concurrent_replays=1)
    release = asyncio.Event()

    async def hold_the_slot() -> None:
        async with app.state.history.admission.admitted():
            await release.wait()

    async with serving(app) as edge:
        stored = await store_bulk(js, [event(n) for n in range(40)])
        await caught_up(app.state.recent_events, stored[-1])
        before = retries()
        opened = asyncio.Event()
        holder = asyncio.create_task(hold_the_slot())
        headers = {"Last-Event-ID": str(stored[4])}
        try:
            async with edge.stream("GET", "/api/v1/events", headers=headers) as response:
                assert response.status_code == 200
                reading = asyncio.create_task(read_resume(response, opened))
                async with asyncio.timeout(10):
                    while HISTORY_READS_WAITING._value.get() < 1:  # the replay waits for the slot
                        await asyncio.sleep(0.02)
                nats_server.pause()
                release.set()  # the read starts; its requests time out
                await holder
                await asyncio.sleep(_STALL_SECONDS)
                assert retries() > before
                nats_server.resume()
                ids, controls = await reading
        finally:
            release.set()
            nats_server.resume()
    assert ids == stored[5:]
    assert controls == ["stream.ready", "stream.caught_up"]
