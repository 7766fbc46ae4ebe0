"""Retention: each type's TTL from configuration, applied by JetStream per message."""

import asyncio

import pytest

from collector.app import create_app
from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.pytest_plugin import serving
from eh_runtime.settings import StreamSettings
from eh_runtime.stream import EVENTS_STREAM

pytestmark = pytest.mark.nats


async def test_a_short_ttl_type_expires_while_a_long_one_stays(nats_url, js, collector_settings):
    stream = StreamSettings(ttl_node_metrics=1, ttl_system_log=3600)
    async with serving(create_app(collector_settings(nats_url, stream=stream))) as client:
        response = await client.post(
            "/api/v1/events", json=[SEED_EXAMPLES["node_metrics"], SEED_EXAMPLES["system_log"]]
        )
        assert response.status_code == 202
    metrics_seq, log_seq = (e["seq"] for e in response.json()["events"])
    assert (await js.get_msg(EVENTS_STREAM, metrics_seq)).headers["Nats-TTL"] == "1"
    assert (await js.get_msg(EVENTS_STREAM, log_seq)).headers["Nats-TTL"] == "3600"

    deadline = asyncio.get_running_loop().time() + 10
    while (await js.stream_info(EVENTS_STREAM)).state.messages > 1:
        assert asyncio.get_running_loop().time() < deadline, "the metrics event did not expire"
        await asyncio.sleep(0.2)
    info = await js.stream_info(EVENTS_STREAM)
    assert info.state.first_seq == log_seq
    assert (await js.get_msg(EVENTS_STREAM, log_seq)).subject == "events.system_log.log-001"


def test_ttl_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("EVENTS_TTL_NODE_METRICS", "6h")
    monkeypatch.setenv("EVENTS_TTL_SYSTEM_ALERT", "0")
    settings = StreamSettings()
    assert settings.ttl_seconds("node_metrics") == 6 * 3600
    assert settings.ttl_seconds("system_alert") is None
    assert settings.ttl_seconds("system_log") == 3 * 86400
