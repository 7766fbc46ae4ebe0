"""pytest fixtures for tests against a real NATS server: stacked `nats_server → nats_url → nc → js`.

Each test gets its own `nats-server -js` on a free port with a temporary store (it starts in about
20 ms), so no state leaks between tests. `--nats-url` runs the tests against an existing server
instead; they delete and recreate the `EVENTS` stream there, so point it at a throwaway server.
Tests that stop or restart the server ask for `nats_server` and are skipped with `--nats-url`.
"""

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from fastapi import FastAPI
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamInfo
from nats.js.errors import NotFoundError

from eh_contracts.envelope import parse_events
from eh_contracts.stored_events import ENVELOPE_HEADER, ENVELOPE_VERSION, MSG_ID_HEADER
from eh_devtools.nats_cluster import NatsCluster
from eh_devtools.nats_server import NatsServer
from eh_runtime.serve import GracefulServer, server_for
from eh_runtime.service import Service
from eh_runtime.settings import StreamSettings
from eh_runtime.stream import EVENTS_STREAM, ensure_events_stream


def pytest_configure(config: pytest.Config) -> None:
    # The test identity: services built by tests serve without HTTP auth unless a test turns it
    # on (the auth tests do, with AUTH_MODE=jwt and a secret of their own).
    os.environ.setdefault("AUTH_MODE", "none")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--nats-url",
        default=None,
        help="use this NATS server instead of starting one per test (tests delete its EVENTS stream)",
    )


@pytest.fixture
def nats_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of this test's own, which the test may stop and restart."""
    if request.config.getoption("--nats-url"):
        pytest.skip("needs a nats-server of its own (it stops or restarts it); not with --nats-url")
    server = NatsServer(store_dir=tmp_path / "jetstream", monitor_port=-1)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NatsCluster]:
    """Three nats-servers with JetStream clustered on loopback, which the test may kill and restart."""
    if request.config.getoption("--nats-url"):
        pytest.skip("needs nats-servers of its own (it kills them); not with --nats-url")
    cluster = NatsCluster(tmp_path / "cluster")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def nats_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """URL of a clean NATS server with JetStream: this test's own, or `--nats-url` with EVENTS deleted."""
    external: str | None = request.config.getoption("--nats-url")
    if external is None:
        server: NatsServer = request.getfixturevalue("nats_server")
        yield server.url
        return
    client = await nats.connect(external)
    with contextlib.suppress(NotFoundError):
        await client.jetstream().delete_stream(EVENTS_STREAM)
    await client.close()
    yield external


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    """A plain nats-py client, as any other service of the farm would have."""
    client = await nats.connect(nats_url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def js(nc: Client) -> JetStreamContext:
    return nc.jetstream()


@pytest.fixture
async def events_stream(js: JetStreamContext) -> StreamInfo:
    """The EVENTS stream, provisioned with default settings (as the collector would)."""
    return await ensure_events_stream(js, StreamSettings())


async def store_event(js: JetStreamContext, event: dict[str, Any]) -> int:
    """Store one event exactly as the collector does (validated, on its subject, Nats-Msg-Id, marked);
    returns its stream sequence."""
    (envelope,) = parse_events(json.dumps(event).encode())
    headers = {MSG_ID_HEADER: envelope.id, ENVELOPE_HEADER: ENVELOPE_VERSION}
    ack = await js.publish(envelope.subject, envelope.to_json(), stream=EVENTS_STREAM, headers=headers)
    return ack.seq


@contextlib.asynccontextmanager
async def serving(
    app: FastAPI, *, ready_timeout: float = 10.0, send_buffer_bytes: int | None = None, port: int = 0
) -> AsyncIterator[httpx.AsyncClient]:
    """Serve `app` with uvicorn on a free loopback port; yield an HTTP client pointed at it.

    A real server, not an in-process transport, because event streams must be observed as a
    client sees them: chunk by chunk, over a socket. Waits until the service is ready.
    `send_buffer_bytes` fixes the kernel send buffer of accepted sockets (they inherit it from the
    listening one), so that a client that stops reading backs up into the server in kilobytes,
    not in the megabytes loopback autotuning would allow. `port` (0: a free one) lets a test
    restart a service where its clients expect it.
    """
    service: Service = app.state.service
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer_bytes is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    server: GracefulServer = server_for(app, service, host="127.0.0.1", port=port)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the server stopped before it started")
            await asyncio.sleep(0.01)
        await service.nats.wait_ready(ready_timeout)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as client:
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
        sock.close()
