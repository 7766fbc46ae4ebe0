"""The host agent against a collector that wants tokens: stored with the token `make run` would sign,
refused without one, and a refusal logged as such, once, until the outcome changes."""

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import structlog.testing
from prometheus_client import REGISTRY

from collector.agent.report_log import ReportLog, describe_failure
from collector.agent.runner import Agent
from collector.agent.settings import AgentSettings
from collector.agent.token_file import TokenFile
from collector.app import create_app
from eh_client import EventClient, PublishError, RequestError
from eh_devtools.pytest_plugin import serving
from eh_runtime.auth.settings import AuthSettings
from eh_runtime.auth.token import sign_token
from eh_runtime.host_agent import host_agent_scope
from eh_runtime.stream import EVENTS_STREAM

SECRET = "agent-auth-test-secret-0123456789abcdef"
HEARTBEAT_ROUTE = "/api/v1/nodes/{node_id}/heartbeat"


async def stored(js) -> list[dict]:
    info = await js.stream_info(EVENTS_STREAM)
    if info.state.messages == 0:
        return []
    return [json.loads((await js.get_msg(EVENTS_STREAM, s)).data) for s in range(1, info.state.last_seq + 1)]


def heartbeats_answered(status: int) -> float:
    labels = {"route": HEARTBEAT_ROUTE, "method": "POST", "status": str(status)}
    return REGISTRY.get_sample_value("eventhandler_http_requests_total", labels) or 0.0


@pytest.fixture
async def jwt_collector(nats_url, collector_settings):
    settings = collector_settings(nats_url, auth=AuthSettings(mode="jwt", secret=SECRET))
    async with serving(create_app(settings)) as client:
        yield client


def write_token(path: Path, token: str) -> None:
    """As `make run` renews it: a new file renamed over the old one."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(token + "\n")
    fresh.replace(path)


async def wait_for(condition, what: str, timeout: float = 120.0) -> None:
    """Until `condition()`; generous, for a loaded machine (the agent is a process of its own)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.1)


class AgentProcess:
    """`python -m collector agent` with JSON logs in a file, reporting every 100 ms."""

    def __init__(self, collector_url: str, log_path: Path, **variables: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")} | {
            "AGENT_COLLECTOR_URL": collector_url,
            "AGENT_NODE_ID": "agent-host",
            "AGENT_INTERVAL": "100ms",
            "AGENT_DOCKER_SOCKET": "/nonexistent/docker.sock",
            "LOG_FORMAT": "json",
            **variables,
        }
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "collector", "agent"], env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]

    async def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(self.process.wait, 20) == 0, self.log_path.read_text()


@pytest.mark.nats
async def test_the_agent_with_the_host_agent_token_is_stored_under_jwt(jwt_collector, js, tmp_path):
    token_file = tmp_path / "token"
    write_token(
        token_file,
        sign_token(SECRET, "host-agent:signed-host", host_agent_scope("signed-host", containers=False)),
    )
    settings = AgentSettings(
        node_id="signed-host",
        collector_url=str(jwt_collector.base_url),
        interval="100ms",
        docker_socket="/nonexistent/docker.sock",
        token_file=str(token_file),
    )
    stop = asyncio.Event()
    async with EventClient(collector_url=settings.collector_url) as client:
        run = asyncio.create_task(Agent(settings, client).run(stop))
        try:

            async def two_samples() -> bool:
                assert not run.done(), run
                return sum(e["event"] == "node_metrics" for e in await stored(js)) >= 2

            await wait_for(two_samples, "no metrics stored from the agent with its token")
        finally:
            stop.set()
            await run
    events = await stored(js)
    assert {(e["event"], e["resource_id"]) for e in events} == {
        ("node_status", "signed-host"),
        ("node_metrics", "signed-host"),
    }


@pytest.mark.nats
async def test_without_a_token_the_agent_logs_refused_401_once(jwt_collector, tmp_path):
    before = heartbeats_answered(401)
    agent = AgentProcess(str(jwt_collector.base_url), tmp_path / "agent.log")
    try:

        async def several_rounds_refused() -> bool:
            assert agent.process.poll() is None, agent.log_path.read_text()
            return heartbeats_answered(401) - before >= 5

        await wait_for(several_rounds_refused, "the collector refused no heartbeats")
    finally:
        await agent.stop()
    warnings = [line for line in agent.lines() if line["level"] == "warning"]
    assert len(warnings) == 1, warnings  # five refusals or more, one line
    assert warnings[0]["event"] == "collector refused the agent's reports"
    assert warnings[0]["status"] == 401
    assert warnings[0]["error"].startswith("HTTP 401 from /api/v1/nodes/agent-host/heartbeat: "), warnings[0]
    assert "AGENT_TOKEN_FILE" in warnings[0]["hint"]
    assert not any("unreachable" in line["event"] for line in agent.lines())


@pytest.mark.nats
async def test_a_renewed_token_file_is_used_without_a_restart(jwt_collector, js, tmp_path):
    token_file = tmp_path / "token"
    # Valid, but for another node: the collector says 403 and why.
    write_token(
        token_file, sign_token(SECRET, "host-agent:other", host_agent_scope("other-host", containers=False))
    )
    agent = AgentProcess(
        str(jwt_collector.base_url), tmp_path / "agent.log", AGENT_TOKEN_FILE=str(token_file)
    )
    try:

        async def refused() -> bool:
            assert agent.process.poll() is None, agent.log_path.read_text()
            return any(line["event"] == "collector refused the agent's reports" for line in agent.lines())

        await wait_for(refused, "the refusal was not logged")
        write_token(
            token_file,
            sign_token(SECRET, "host-agent:agent-host", host_agent_scope("agent-host", containers=False)),
        )

        async def accepted() -> bool:
            assert agent.process.poll() is None, agent.log_path.read_text()
            return any(e["event"] == "node_status" for e in await stored(js))

        await wait_for(accepted, "the renewed token was not used")

        async def recovery_logged() -> bool:
            return any(
                line["event"] == "collector accepts the agent's reports again" for line in agent.lines()
            )

        await wait_for(recovery_logged, "the recovery was not logged")
    finally:
        await agent.stop()
    refusal = next(line for line in agent.lines() if line["level"] == "warning")
    assert refusal["status"] == 403
    assert "agent-host" in refusal["error"], refusal  # the collector's own words: which node
    assert "hint" not in refusal


def test_a_refusal_is_not_an_unreachable_collector():
    refused = describe_failure(RequestError("HTTP 403 from /x: no", status=403), has_token=True)
    assert refused == (
        "collector refused the agent's reports",
        {"status": 403, "error": "HTTP 403 from /x: no"},
    )
    unreachable = describe_failure(httpx.ConnectError("All connection attempts failed"), has_token=True)
    assert unreachable[0].startswith("collector unreachable")
    spent = describe_failure(PublishError("collector unreachable after 2 attempts: boom"), has_token=False)
    assert spent[0].startswith("collector unreachable")
    failing = describe_failure(RequestError("HTTP 503 from /x: store down", status=503), has_token=True)
    assert failing == (
        "collector answered with an error; next try at the next interval",
        {"status": 503, "error": "HTTP 503 from /x: store down"},
    )


def test_the_report_log_writes_a_line_when_the_outcome_changes():
    report_log = ReportLog()
    refused = ("collector refused the agent's reports", {"status": 401, "error": "no token"})
    unreachable = ("collector unreachable; next try at the next interval", {"error": "ConnectError: x"})
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            report_log.failed(*refused)
        report_log.failed(*unreachable)
        report_log.failed(*unreachable)
        report_log.succeeded()
        report_log.succeeded()
        report_log.failed(*refused)
    assert [(line["event"], line["log_level"]) for line in logs] == [
        (refused[0], "warning"),
        (unreachable[0], "warning"),
        ("collector accepts the agent's reports again", "info"),
        (refused[0], "warning"),
    ]
    assert logs[1]["previous_failure_repeated"] == 2
    assert logs[2]["failed_rounds"] == 5


def test_a_token_file_is_read_again_only_when_it_changes(tmp_path):
    path = tmp_path / "token"
    write_token(path, "first")
    token_file = TokenFile(path)
    assert token_file.renewed() == "first"
    assert token_file.renewed() is None
    write_token(path, "second")
    assert token_file.renewed() == "second"
    path.unlink()
    with pytest.raises(FileNotFoundError):
        token_file.renewed()


def test_agent_token_and_agent_token_file_are_one_or_the_other(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="the file is empty"):
        AgentSettings(token_file=str(empty))
    with pytest.raises(ValueError, match="cannot be read"):
        AgentSettings(token_file=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="not both"):
        AgentSettings(token="t", token_file=str(empty))


def test_an_empty_agent_token_file_variable_means_none(monkeypatch):
    monkeypatch.setenv("AGENT_TOKEN_FILE", "")
    assert AgentSettings().token_file is None
