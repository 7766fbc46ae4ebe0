import asyncio
import socket

import pytest
from pydantic import ValidationError

from eh_devtools.nats_server import NatsServer
from eh_runtime.connection import NatsConnection
from eh_runtime.settings import NatsSettings, split_credentials

pytestmark = pytest.mark.nats


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_connects_in_the_background_once_nats_comes_up(tmp_path):
    port = free_port()
    hook_runs = 0

    async def hook(_connection: NatsConnection) -> None:
        nonlocal hook_runs
        hook_runs += 1

    connection = NatsConnection(
        NatsSettings(url=f"nats://127.0.0.1:{port}", reconnect_wait=0.05), "test", on_connect=[hook]
    )
    connection.start()
    await asyncio.sleep(0.3)
    assert not connection.is_connected
    assert not connection.hooks_done
    with NatsServer(tmp_path / "js", port=port, identities=False):
        await connection.wait_ready(timeout=5)
        assert connection.is_connected
        assert hook_runs == 1
        await connection.close()
    assert connection.client.is_closed


async def test_hooks_run_again_after_a_reconnect(nats_server):
    runs = asyncio.Queue[int]()
    count = 0

    async def hook(_connection: NatsConnection) -> None:
        nonlocal count
        count += 1
        runs.put_nowait(count)

    connection = NatsConnection(
        NatsSettings(url=nats_server.url, reconnect_wait=0.05), "test", on_connect=[hook]
    )
    connection.start()
    assert await asyncio.wait_for(runs.get(), 5) == 1
    nats_server.stop()
    nats_server.start()
    assert await asyncio.wait_for(runs.get(), 10) == 2
    await connection.close()


async def test_a_failing_hook_is_retried_until_it_succeeds(nats_server):
    attempts = 0

    async def flaky(_connection: NatsConnection) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise RuntimeError("not yet")

    connection = NatsConnection(NatsSettings(url=nats_server.url), "test", on_connect=[flaky])
    connection.start()
    await connection.wait_ready(timeout=10)
    assert attempts == 3
    assert connection.last_error is None
    await connection.close()


async def test_close_drains_messages_already_received(nats_server, nc):
    """Messages delivered to a subscription but not yet handled are handled before closing."""
    handled = []
    gate = asyncio.Event()
    connection = NatsConnection(NatsSettings(url=nats_server.url), "test")
    connection.start()
    await connection.wait_ready(timeout=5)

    async def held_handler(msg):
        await gate.wait()
        handled.append(msg.data)

    sub = await connection.client.subscribe("drain.test", cb=held_handler)
    await connection.client.flush()
    for i in range(200):
        await nc.publish("drain.test", str(i).encode())
    await nc.flush()
    # Every message has reached the client: one in the held handler, the rest queued behind it.
    async with asyncio.timeout(5):
        while sub.pending_msgs < 199:
            await asyncio.sleep(0.005)
    assert handled == []
    closing = asyncio.create_task(connection.close())
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.wait_for(closing, 10)
    assert len(handled) == 200


def test_credentials_in_urls_never_reach_a_log_line():
    from eh_runtime.connection import without_credentials

    urls = "nats://collector:s3cret@10.0.0.1:4222,tls://admin:x@nats-1:4222,nats://plain:4222"
    assert without_credentials(urls) == "nats://10.0.0.1:4222,tls://nats-1:4222,nats://plain:4222"


@pytest.mark.faults
async def test_credentials_in_the_url_hold_on_a_server_the_cluster_announced(nats_cluster):
    """NATS_URL names one server of a cluster; that server dies; the connection fails over to a
    server it only learned from the cluster's INFO (a URL without credentials) and stays authorized."""
    first, *_ = nats_cluster.servers
    connection = NatsConnection(NatsSettings(url=first.url, reconnect_wait=0.05), "test")
    connection.start()
    await connection.wait_ready(timeout=10)
    first.kill()
    async with asyncio.timeout(15):
        while not (connection.is_connected and connection.client.connected_url.port != first.port):
            await asyncio.sleep(0.05)
    await connection.client.flush(timeout=5)  # an unauthorized connection would be closed by now
    assert connection.is_connected
    await connection.close()


def test_credentials_leave_the_urls_for_the_connection_options():
    servers, user, password = split_credentials(
        ["nats://svc:pw@a:4222", " nats://svc:pw@b:4222", "nats://c:4222"]
    )
    assert servers == ["nats://a:4222", "nats://b:4222", "nats://c:4222"]
    assert (user, password) == ("svc", "pw")
    assert split_credentials(["tls://a:4222"]) == (["tls://a:4222"], None, None)


def test_urls_naming_two_identities_are_refused_when_the_settings_load():
    with pytest.raises(ValidationError, match="one NATS identity"):
        NatsSettings(url="nats://a:x@h1:4222,nats://b:y@h2:4222")
