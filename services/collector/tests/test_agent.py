"""The host agent: real samples of this machine, sent to a real collector; Docker shapes converted."""

import asyncio
import json
import os
import signal
import subprocess
import sys

import psutil
import pytest

from collector.agent.docker_engine import container_id, container_metrics_data, container_status_event
from collector.agent.host_sampler import HostSampler
from collector.agent.runner import Agent
from collector.agent.settings import AgentSettings, default_node_id
from eh_client import EventClient
from eh_contracts.envelope import parse_event
from eh_runtime.stream import EVENTS_STREAM


async def stored(js) -> list[dict]:
    info = await js.stream_info(EVENTS_STREAM)
    if info.state.messages == 0:
        return []
    return [json.loads((await js.get_msg(EVENTS_STREAM, s)).data) for s in range(1, info.state.last_seq + 1)]


def test_a_host_sample_is_valid_node_metrics_of_this_machine():
    sampler = HostSampler()
    data = sampler.sample()
    event = parse_event(json.dumps({"event": "node_metrics", "resource_id": "n", "data": data}).encode())
    assert event.data.cpu.cores == psutil.cpu_count()
    assert 0 <= event.data.cpu.usage <= 100
    assert event.data.memory.total == pytest.approx(psutil.virtual_memory().total / 2**20, rel=0.01)
    assert event.data.disk.total > 0
    assert event.data.network.in_bytes >= 0  # a rate since the sampler's first reading


def test_the_default_node_id_is_the_host_name_as_a_subject_token():
    assert default_node_id().replace("-", "").replace("_", "").isalnum()


@pytest.mark.nats
async def test_one_round_brings_this_machine_online_with_its_metrics(collector, js):
    settings = AgentSettings(node_id="this-host", docker_socket="/nonexistent/docker.sock")
    async with EventClient(collector_url=str(collector.base_url)) as client:
        answer = await Agent(settings, client).report_once()
    assert answer["transition"]["status"] == "stored"
    status, metrics = await stored(js)
    assert (status["event"], status["resource_id"], status["data"]["new_state"]) == (
        "node_status",
        "this-host",
        "online",
    )
    assert metrics["event"] == "node_metrics"
    assert metrics["data"]["cpu"]["cores"] == psutil.cpu_count()


@pytest.mark.nats
async def test_python_m_collector_agent_reports_until_sigterm(collector, js):
    env = os.environ | {
        "AGENT_COLLECTOR_URL": str(collector.base_url),
        "AGENT_NODE_ID": "cli-host",
        "AGENT_INTERVAL": "200ms",
        "LOG_FORMAT": "json",
    }
    process = subprocess.Popen([sys.executable, "-m", "collector", "agent"], env=env)  # noqa: ASYNC220
    try:
        deadline = asyncio.get_running_loop().time() + 120  # a process of its own: slow to start when loaded
        while sum(e["event"] == "node_metrics" for e in await stored(js)) < 2:
            assert process.poll() is None
            assert asyncio.get_running_loop().time() < deadline, "no metrics from the agent"
            await asyncio.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 10) == 0
    events = await stored(js)
    assert [e["data"]["new_state"] for e in events if e["event"] == "node_status"] == ["online"]


# Shapes as the Docker Engine API documents them (GET /containers/json, /containers/{id}/stats).
CONTAINER = {
    "Id": "8dfafdbc3a40f1a2b3c4d5e6",
    "Names": ["/build-42"],
    "State": "exited",
    "Status": "Exited (137) 3 minutes ago",
    "Labels": {"eventhandler.pipeline_id": "pipeline-001"},
}
STATS = {
    "cpu_stats": {
        "cpu_usage": {"total_usage": 400_000_000},
        "system_cpu_usage": 20_000_000_000,
        "online_cpus": 4,
    },
    "precpu_stats": {"cpu_usage": {"total_usage": 200_000_000}, "system_cpu_usage": 19_000_000_000},
    "memory_stats": {"usage": 300 * 2**20, "limit": 4096 * 2**20, "stats": {"inactive_file": 44 * 2**20}},
    "networks": {
        "eth0": {"rx_bytes": 100, "tx_bytes": 50, "rx_packets": 3, "tx_packets": 2},
        "eth1": {"rx_bytes": 1, "tx_bytes": 1},
    },
    "blkio_stats": {
        "io_service_bytes_recursive": [{"op": "read", "value": 4096}, {"op": "write", "value": 8192}]
    },
}


def test_docker_containers_become_valid_container_status_events():
    event = container_status_event(CONTAINER, "node-1")
    assert event["resource_id"] == "build-42"
    assert event["data"] == {
        "new_state": "exited",
        "node_id": "node-1",
        "exit_code": 137,
        "pipeline_id": "pipeline-001",
    }
    parse_event(json.dumps(event).encode())
    assert container_id({"Id": "abcdef0123456789", "Names": ["/bad name"]}) == "abcdef012345"


def test_docker_stats_become_valid_container_metrics():
    data = container_metrics_data(STATS)
    assert data["cpu"] == {"usage": 80.0, "limit": 400.0}  # 0.2 s of 1 s on 4 cores
    assert data["memory"] == {"usage": 256.0, "limit": 4096.0}
    assert data["network"] == {"rx_bytes": 101, "tx_bytes": 51, "rx_packets": 3, "tx_packets": 2}
    assert data["block_io"] == {"read_bytes": 4096, "write_bytes": 8192}
    parse_event(json.dumps({"event": "container_metrics", "resource_id": "c", "data": data}).encode())
