"""Contract tests of `sse_edge.http.uvicorn_transport`, the edge's one reach below uvicorn.

They fail when an uvicorn upgrade silently turns the fast path off (the stream would still work,
only slower), and check that without it the stream falls back to plain ASGI.
"""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.pytest_plugin import store_event
from eh_devtools.sse_client import next_event, read_sse
from eh_runtime.service import Service
from sse_edge.app import create_app
from sse_edge.http.uvicorn_transport import UvicornTransport
from sse_edge.metrics import WRITES

pytestmark = pytest.mark.nats


async def stream_one_event(client: httpx.AsyncClient, js) -> None:
    """Open a stream, store an event, and read it back intact."""
    async with client.stream("GET", "/api/v1/events", params={"type": "system_log"}) as response:
        assert response.status_code == 200
        messages = read_sse(response)
        assert (await asyncio.wait_for(next_event(messages), 5)).event == "stream.ready"
        assert (await asyncio.wait_for(next_event(messages), 5)).event == "stream.caught_up"
        seq = await store_event(js, SEED_EXAMPLES["system_log"] | {"id": f"transport-{id(client)}"})
        received = await asyncio.wait_for(next_event(messages), 5)
        assert (received.event, int(received.id)) == ("system_log", seq)


async def test_the_fast_path_is_engaged_for_a_stream_served_by_uvicorn(edge, js):
    """Served as production serves it (eh_runtime.serve: uvicorn, httptools, uvloop), the stream's
    writes go straight to the transport, and the client decodes them as uvicorn's own chunks."""
    before = WRITES.direct
    await stream_one_event(edge, js)
    assert WRITES.direct > before, (
        "no write of the stream went straight to uvicorn's transport: this uvicorn no longer exposes "
        "its request cycle through receive.__self__ (transport, chunked_encoding) as "
        "sse_edge.http.uvicorn_transport expects; the edge works, but on the slow path"
    )
    metrics = (await edge.get("/metrics")).text
    assert "eventhandler_edge_writes_direct_total" in metrics


async def test_live_events_reach_a_waiting_stream_straight_from_the_fanout(edge, js):
    """The live event is written by the fan-out's flush (`UvicornTransport.writable`), not by
    waking the stream's task: if the check answered False under an upgrade, this fails."""
    before = WRITES.from_fanout
    await stream_one_event(edge, js)
    assert WRITES.from_fanout > before, (
        "the live event was not written by the fan-out: UvicornTransport.writable() refused a "
        "stream whose socket keeps up; the edge works, but wakes a task per client per event"
    )


@contextlib.asynccontextmanager
async def serving_with_h11(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    service: Service = app.state.service
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, http="h11", loop="asyncio")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        await service.nats.wait_ready(10)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as client:
            yield client
    finally:
        service.request_stop()
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
        sock.close()


async def test_where_the_fast_path_does_not_apply_the_stream_writes_through_asgi_send(
    nats_url, events_stream, js, edge_settings
):
    """uvicorn's h11 protocol frames bodies itself: the stream must not write around it."""
    async with serving_with_h11(create_app(edge_settings(nats_url))) as client:
        before = (WRITES.direct, WRITES.from_fanout)
        await stream_one_event(client, js)
        assert (WRITES.direct, WRITES.from_fanout) == before


def test_without_uvicorn_behind_receive_there_is_no_transport():
    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    assert UvicornTransport.find(receive) is None
