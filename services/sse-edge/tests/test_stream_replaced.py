"""The EVENTS stream deleted and created again under a running edge: open streams end (their
Last-Event-ID means nothing in the new stream), new ones get the new stream's events."""

import asyncio

import pytest

from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.pytest_plugin import store_event
from eh_devtools.sse_client import next_event, read_sse
from eh_runtime.settings import StreamSettings
from eh_runtime.stream import EVENTS_STREAM, ensure_events_stream

pytestmark = pytest.mark.nats


def log(n: int) -> dict:
    return SEED_EXAMPLES["system_log"] | {"id": f"log-{n}", "resource_id": "log-1"}


async def test_open_streams_end_and_new_ones_get_the_new_stream(edge, js):
    for n in range(20):  # the old stream goes further than the new one will
        await store_event(js, log(n))
    async with edge.stream("GET", "/api/v1/events", params={"type": "system_log"}) as response:
        messages = read_sse(response)
        assert (await asyncio.wait_for(next_event(messages), 5)).event == "stream.ready"
        await js.delete_stream(EVENTS_STREAM)
        await ensure_events_stream(js, StreamSettings())
        end = await asyncio.wait_for(next_event(messages), 10)
        while end.event != "stream.end":
            end = await asyncio.wait_for(next_event(messages), 10)
        assert end.json()["reason"].startswith("stream_replaced")
    async with edge.stream("GET", "/api/v1/events", params={"type": "system_log"}) as response:
        messages = read_sse(response)
        assert (await asyncio.wait_for(next_event(messages), 5)).event == "stream.ready"
        seq = await store_event(js, log(100))
        assert seq == 1
        received = await asyncio.wait_for(next_event(messages), 10)
        while received.event.startswith("stream."):
            received = await asyncio.wait_for(next_event(messages), 10)
        assert (int(received.id), received.json()["id"]) == (1, "log-100")
    assert (await edge.get("/readyz")).status_code == 200
