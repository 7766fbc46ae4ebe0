"""Contract of `eh_runtime.nats_py_internals` with nats-py and nats-server: fails when an upgrade
breaks, or silently turns off, the fast write path of atomic batches."""

import asyncio
import importlib.metadata
import inspect
import json
import tomllib
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from eh_contracts.envelope import parse_events
from eh_contracts.examples import SEED_EXAMPLES
from eh_runtime.connection import NatsConnection
from eh_runtime.event_publisher import EventPublisher
from eh_runtime.nats_py_internals import SUPPORTED_NATS_PY, hpub_frame, send_frames
from eh_runtime.settings import NatsSettings
from eh_runtime.stream import EVENTS_STREAM

PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"


def test_the_installed_nats_py_is_a_supported_one_and_pinned_so():
    installed = importlib.metadata.version("nats-py")
    assert installed in SpecifierSet(SUPPORTED_NATS_PY), (
        f"nats-py {installed} is outside {SUPPORTED_NATS_PY}: check eh_runtime.nats_py_internals against "
        "it, then widen the range here and in libs/runtime/pyproject.toml"
    )
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (pin,) = [Requirement(d) for d in dependencies if Requirement(d).name == "nats-py"]
    assert pin.specifier == SpecifierSet(SUPPORTED_NATS_PY)


def test_the_private_client_methods_are_still_coroutines_taking_raw_bytes():
    for name in ("_send_command", "_flush_pending"):
        assert inspect.iscoroutinefunction(getattr(Client, name, None)), f"nats-py Client.{name} changed"
    assert list(inspect.signature(Client._send_command).parameters)[:2] == ["self", "cmd"]


@pytest.mark.nats
async def test_hand_written_frames_are_delivered_whole_by_the_real_server(nats_url):
    errors: list[Exception] = []

    async def on_error(error: Exception) -> None:
        errors.append(error)

    nc = await nats.connect(nats_url, error_cb=on_error)  # an -ERR from the server lands there
    received: asyncio.Queue = asyncio.Queue()
    sub = await nc.subscribe("contract.>", cb=received.put)
    frames = hpub_frame(
        b"contract.a", b"reply.1", b"X-One: 1\r\nX-Two: two words\r\n", b"payload"
    ) + hpub_frame(b"contract.b", b"", b"", b"")
    await send_frames(nc, frames)
    async with asyncio.timeout(5):
        first, second = await received.get(), await received.get()
    assert (first.subject, first.reply, first.data) == ("contract.a", "reply.1", b"payload")
    assert first.headers == {"X-One": "1", "X-Two": "two words"}
    assert (second.subject, second.reply, second.data) == ("contract.b", "", b"")
    await nc.flush()
    assert errors == []
    assert nc.is_connected
    await sub.unsubscribe()
    await nc.close()


@pytest.mark.nats
async def test_the_event_publisher_takes_the_fast_path(nats_url, events_stream, js):
    """The atomic batch path writes through `send_frames`, which nats-py's publish statistics do
    not see; the fallback (`publish_async` per event) would count each event."""
    connection = NatsConnection(NatsSettings(url=nats_url), "contract")
    connection.start()
    await connection.wait_ready(5)
    try:
        publisher = EventPublisher(connection)
        body = [SEED_EXAMPLES["node_metrics"] | {"id": f"c-{i}"} for i in range(20)]
        events = parse_events(json.dumps(body).encode())
        published_before = connection.client.stats["out_msgs"]
        outcomes = await publisher.publish(events, [e.to_json() for e in events])
        assert [o.ack.seq for o in outcomes if o.ack] == list(range(1, 21))
        assert connection.client.stats["out_msgs"] == published_before, "the batch went message by message"
        stored = await js.get_msg(EVENTS_STREAM, 20)
        assert stored.headers is not None
        assert stored.headers["Nats-Msg-Id"] == "c-19"
    finally:
        await connection.close()
