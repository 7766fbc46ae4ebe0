"""NATS locked down: one identity per service, each refused everything beyond its rights, and
every service working with only its own (against a real nats-server with the generated identities)."""

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.errors import Error as NatsError

from alert_evaluator.app import create_app as create_evaluator
from alert_evaluator.settings import EvaluatorSettings
from collector.app import create_app as create_collector
from collector.settings import CollectorSettings
from eh_devtools.nats_identities import PRODUCER, producer
from eh_devtools.nats_server import NatsServer
from eh_devtools.provisioning import provision_all
from eh_devtools.pytest_plugin import serving
from eh_devtools.sse_client import next_event, read_sse
from eh_runtime.connection import NatsConnection, inbox_scope, private_inbox_prefix
from eh_runtime.settings import NatsSettings, StreamSettings
from sse_edge.app import create_app as create_edge
from sse_edge.settings import EdgeSettings

pytestmark = [pytest.mark.nats, pytest.mark.own_server]

CI = producer("ci", ["pipeline_status"])
VIOLATION = "permissions violation"


@pytest.fixture
async def locked(tmp_path: Path) -> AsyncIterator[NatsServer]:
    """A server with the service identities and two producers, provisioned by the admin."""
    server = NatsServer(store_dir=tmp_path / "js", producers=(PRODUCER, CI))
    server.start()
    try:
        await provision_all(server.url, StreamSettings())
        yield server
    finally:
        server.stop()


class Session:
    """One identity's connection, with the server's asynchronous errors collected."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.client = Client()
        self.inbox_prefix = ""

    async def connect(self, server: NatsServer, name: str) -> "Session":
        async def on_error(error: Exception) -> None:
            self.errors.append(str(error).lower())

        # As the services connect: a prefix of this connection's own, below its identity's scope.
        self.inbox_prefix = private_inbox_prefix(inbox_scope(name))
        await self.client.connect(
            server.url_for(name),
            inbox_prefix=self.inbox_prefix,
            error_cb=on_error,
            allow_reconnect=False,
        )
        return self

    async def refused(self, action) -> None:
        """`action` fails, and the server said it was a permissions violation."""
        self.errors.clear()
        with contextlib.suppress(NatsError, TimeoutError, asyncio.TimeoutError):
            await action()
            await self.client.flush(1)
        for _ in range(40):
            if any(VIOLATION in error for error in self.errors):
                return
            await asyncio.sleep(0.025)
        pytest.fail(f"no permissions violation; errors: {self.errors}")


@contextlib.asynccontextmanager
async def session(server: NatsServer, name: str) -> AsyncIterator[Session]:
    s = await Session().connect(server, name)
    try:
        yield s
    finally:
        await s.client.close()


async def test_an_anonymous_client_is_refused(locked):
    for url in (locked.anonymous_url, locked.anonymous_url.replace("://", "://collector:wrong@")):
        client = Client()
        try:
            with pytest.raises(NatsError, match=r"(?i)authorization"):
                await client.connect(url, allow_reconnect=False, max_reconnect_attempts=0)
        finally:
            await client.close()


async def test_only_the_admin_creates_changes_or_deletes_streams_and_buckets(locked):
    for name in ("collector", "sse-edge", "alert-evaluator", "producer"):
        async with session(locked, name) as s:
            js = s.client.jetstream(timeout=0.5)
            await s.refused(lambda js=js: js.delete_stream("EVENTS"))
            await s.refused(lambda js=js: js.delete_key_value("resource_states"))
            await s.refused(lambda js=js: js.purge_stream("EVENTS"))
            await s.refused(lambda js=js: js.add_stream(name="ROGUE", subjects=["rogue.>"]))
    async with session(locked, "admin") as admin:
        assert (await admin.client.jetstream().stream_info("EVENTS")).config.name == "EVENTS"


async def test_only_the_collector_and_the_evaluator_write_events(locked):
    for name in ("sse-edge", "producer", "ci"):
        async with session(locked, name) as s:
            await s.refused(lambda c=s.client: c.publish("events.node_status.node-1", b"{}"))
    async with session(locked, "alert-evaluator") as s:
        await s.refused(lambda: s.client.publish("events.node_status.node-1", b"{}"))
        s.errors.clear()
        await s.client.publish("events.system_log.alert-evaluator", b"{}")  # its own types: allowed
        await s.client.flush(1)
        assert not any(VIOLATION in e for e in s.errors)


async def test_nobody_answers_or_overhears_ingestion_but_the_collector(locked):
    async with session(locked, "producer") as s:
        await s.refused(lambda: s.client.subscribe("ingest.>", queue="collector"))
        await s.refused(lambda: s.client.subscribe("_INBOX.>"))
        await s.refused(lambda: s.client.subscribe("_INBOX.collector.>"))
        await s.refused(lambda: s.client.subscribe("events.>"))
    for name in ("sse-edge", "alert-evaluator"):
        async with session(locked, name) as s:
            await s.refused(lambda c=s.client: c.subscribe("ingest.>", queue="collector"))
            await s.refused(lambda c=s.client: c.subscribe("_INBOX.>"))
    async with session(locked, "ci") as s:
        # A producer requests only its own types.
        await s.refused(lambda: s.client.publish("ingest.node_status.node-1", b"{}"))


async def test_replies_are_private_to_the_connection_that_asked(locked):
    """A reply travels to `_INBOX.<identity>.<random>`: another identity may not subscribe there,
    nor anywhere under the asker's identity; the asker's own requests still get their answers."""
    async with session(locked, "ci") as asker, session(locked, "admin") as admin:
        # The admin answers in this test (nobody else may subscribe to ingest.*) and sees every
        # reply subject, which is what an eavesdropper would need to know.
        asked: list[str] = []

        async def answer(msg) -> None:
            asked.append(msg.reply)
            await msg.respond(b"ok")

        await admin.client.subscribe("ingest.pipeline_status.*", cb=answer)
        await admin.client.flush(1)
        reply = await asker.client.request("ingest.pipeline_status.ci-1", b"{}", timeout=5)
        assert reply.data == b"ok"
        (reply_subject,) = asked
        assert reply_subject.startswith(f"{asker.inbox_prefix}.")
        assert asker.inbox_prefix.startswith("_INBOX.ci.")
        assert len(asker.inbox_prefix) >= len("_INBOX.ci.") + 32  # 128 random bits, in hex
        eavesdrops = (reply_subject, f"{asker.inbox_prefix}.>", "_INBOX.ci.>", "_INBOX.*.>", "_INBOX.>")
        for other in ("producer", "collector", "sse-edge", "alert-evaluator", "reader"):
            async with session(locked, other) as s:
                for subject in eavesdrops:
                    await s.refused(lambda c=s.client, subject=subject: c.subscribe(subject))
                # Nor can they answer in the asker's place: no identity may publish on _INBOX.
                await s.refused(lambda c=s.client: c.publish(reply_subject, b"forged"))


async def test_each_connection_of_a_service_replies_under_its_own_prefix(locked):
    """Two replicas of one service share an identity, never a reply prefix."""
    connections = [
        NatsConnection(NatsSettings(url=locked.url_for("sse-edge"), reconnect_wait=0.05), "sse-edge")
        for _ in range(2)
    ]
    for connection in connections:
        connection.start()
    try:
        for connection in connections:
            await connection.wait_ready(10)
        prefixes = [connection.client.new_inbox().rsplit(".", 1)[0] for connection in connections]
        assert all(prefix.startswith("_INBOX.sse-edge.") for prefix in prefixes)
        assert prefixes[0] != prefixes[1]
        # Each still does its JetStream work, its answers coming back to its own inbox.
        for connection in connections:
            info = await connection.jetstream().stream_info("EVENTS")
            assert info.config.name == "EVENTS"
    finally:
        for connection in connections:
            await connection.close()


async def test_the_evaluators_lease_and_consumer_are_its_own(locked):
    for name in ("collector", "sse-edge", "producer"):
        async with session(locked, name) as s:
            await s.refused(lambda c=s.client: c.publish("$KV.ALERT_EVALUATOR.lease", b"x"))
    async with session(locked, "sse-edge") as s:
        await s.refused(lambda: s.client.publish("$JS.API.CONSUMER.DELETE.EVENTS.alert-evaluator", b""))


async def test_every_service_works_with_only_its_own_rights(locked, tmp_path):
    def nats_for(name: str) -> NatsSettings:
        return NatsSettings(url=locked.url_for(name), reconnect_wait=0.05, request_timeout=2)

    collector = create_collector(CollectorSettings(nats=nats_for("collector")))
    edge = create_edge(EdgeSettings(nats=nats_for("sse-edge")))
    evaluator = create_evaluator(EvaluatorSettings(nats=nats_for("alert-evaluator")))
    async with (
        serving(collector) as collector_http,
        serving(edge) as edge_http,
        serving(evaluator) as evaluator_http,
    ):
        assert (await evaluator_http.get("/readyz")).status_code == 200
        assert (await collector_http.post("/api/v1/nodes/node-1/heartbeat", json={})).status_code == 202
        async with edge_http.stream("GET", "/api/v1/events", params={"type": "pipeline_status"}) as response:
            messages = read_sse(response)
            assert (await asyncio.wait_for(next_event(messages), 5)).event == "stream.ready"
            assert (await asyncio.wait_for(next_event(messages), 5)).event == "stream.caught_up"
            async with session(locked, "ci") as ci:
                body = {"data": {"new_status": "running"}}
                reply = await ci.client.request(
                    "ingest.pipeline_status.ci-1", json.dumps(body).encode(), timeout=5
                )
            assert json.loads(reply.data)["status"] == "stored"
            delivered = await asyncio.wait_for(next_event(messages), 5)
        assert delivered.json()["resource_id"] == "ci-1"
        listing = await collector_http.get("/api/v1/resources/node")
        assert [r["id"] for r in listing.json()["resources"]] == ["node-1"]


async def test_provisioning_runs_as_the_admin_and_only_as_the_admin(tmp_path):
    """`python -m collector provision` / `python -m alert_evaluator provision`, as deployments run them."""
    server = NatsServer(store_dir=tmp_path / "js")
    server.start()
    try:
        assert server.credentials is not None

        async def provision(module: str, identity: str) -> int:
            environment = {
                "PATH": os.environ["PATH"],
                "AUTH_MODE": "none",
                "NATS_URL": server.anonymous_url,
                "NATS_USER": identity,
                "NATS_PASSWORD": server.credentials.passwords[identity],
                "NATS_REQUEST_TIMEOUT": "1s",
            }
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", module, "provision", env=environment,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            try:
                return await asyncio.wait_for(process.wait(), 60)
            except TimeoutError:
                process.kill()
                await process.wait()
                return -1

        assert await provision("collector", "collector") != 0
        assert await provision("collector", "admin") == 0
        assert await provision("alert_evaluator", "admin") == 0
        async with session(server, "admin") as admin:
            js = admin.client.jetstream()
            assert (await js.stream_info("EVENTS")).config.name == "EVENTS"
            for bucket in ("resource_states", "node_heartbeats", "ALERT_EVALUATOR"):
                assert (await js.key_value(bucket)).__class__.__name__ == "KeyValue"
    finally:
        server.stop()
