"""`eh` as a user runs it: a separate process against a real collector, edge, evaluator and NATS."""

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from alert_evaluator.app import create_app as create_evaluator
from alert_evaluator.settings import EvaluatorSettings
from collector.app import create_app as create_collector
from collector.settings import CollectorSettings
from eh_cli.main import cli
from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.pytest_plugin import serving
from eh_runtime.settings import NatsSettings
from sse_edge.app import create_app as create_edge
from sse_edge.settings import EdgeSettings

DEFAULT_RULES = Path(__file__).parents[3] / "services/alert-evaluator/src/alert_evaluator/default_rules.yaml"


@pytest.fixture
async def env(nats_url: str) -> AsyncIterator[dict[str, str]]:
    """The environment `eh` reads its URLs from, pointing at a running collector, edge, evaluator."""
    nats = NatsSettings(url=nats_url, reconnect_wait=0.05)
    async with (
        serving(create_collector(CollectorSettings(nats=nats))) as collector,
        serving(create_edge(EdgeSettings(nats=nats))) as edge,
        serving(create_evaluator(EvaluatorSettings(nats=nats, rules_file=DEFAULT_RULES))) as evaluator,
    ):
        yield os.environ | {
            "EH_URL": str(edge.base_url),
            "EH_COLLECTOR_URL": str(collector.base_url),
            "EH_EVALUATOR_URL": str(evaluator.base_url),
            "NO_COLOR": "1",
        }


async def eh(env: dict[str, str], *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "eh_cli",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def metrics_event(node: str, usage: float) -> dict:
    return (
        SEED_EXAMPLES["node_metrics"]
        | {"resource_id": node}
        | {"data": SEED_EXAMPLES["node_metrics"]["data"] | {"cpu": {"usage": usage, "cores": 8}}}
    )


@pytest.mark.nats
async def test_post_from_stdin_ndjson_then_history_and_a_snapshot_tail(env):
    ndjson = "\n".join(json.dumps(metrics_event(f"node-{i % 3}", i)) for i in range(9)).encode()
    code, out, _ = await eh(env, "post", "-", "--json", stdin=ndjson)
    assert code == 0
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["status"] for r in results] == ["stored"] * 9
    code, out, _ = await eh(env, "history", "--resource", "node-1", "--json")
    assert code == 0
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [results[i]["seq"] for i in (1, 4, 7)]
    code, out, _err = await eh(env, "tail", "--snapshot", "--type", "node_metrics", "--json", "--count", "3")
    assert code == 0
    latest = [json.loads(line) for line in out.splitlines() if '"seq"' in line]
    assert [e["data"]["cpu"]["usage"] for e in latest] == [6, 7, 8]
    controls = [json.loads(line)["control"] for line in out.splitlines() if '"control"' in line]
    assert controls[0] == "stream.ready"


@pytest.mark.nats
async def test_post_with_flags_and_a_rejected_event_exits_1_naming_the_field(env):
    code, out, _ = await eh(env, "post", "-t", "node_metrics", "-r", "node-5", "--set", "cpu.usage=12.5")
    assert code == 0
    assert "stored" in out
    code, out, _ = await eh(env, "post", "-t", "node_metrics", "-r", "node-5", "--set", "cpu.usage=hot")
    assert code == 1
    assert "invalid" in out
    assert "cpu.usage" in out


@pytest.mark.nats
async def test_tail_follows_live_and_stops_cleanly_on_ctrl_c(env):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "eh_cli",
        "tail",
        "-t",
        "system_log",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    assert process.stdout is not None
    async with asyncio.timeout(15):
        while b"stream.caught_up" not in await process.stderr.readline():
            pass
    code, _out, _ = await eh(env, "post", "-", stdin=json.dumps(SEED_EXAMPLES["system_log"]).encode())
    assert code == 0
    line = await asyncio.wait_for(process.stdout.readline(), 10)
    assert b"system_log" in line
    assert b"Pipeline pipeline-001 started" in line
    process.send_signal(signal.SIGINT)
    rest = await asyncio.wait_for(process.stderr.read(), 10)
    assert await process.wait() == 0
    assert b"Traceback" not in rest
    assert b"resume with --last-event-id" in rest


@pytest.mark.nats
async def test_state_and_alerts(env):
    await eh(env, "post", "-t", "node_status", "-r", "node-9", "--set", "new_state=online")
    code, out, _ = await eh(env, "state", "node")
    assert code == 0
    assert "node-9" in out
    assert "online" in out
    code, out, _ = await eh(env, "state", "node", "node-404")
    assert code == 1
    code, out, _ = await eh(env, "alerts", "--json")
    assert code == 0
    assert json.loads(out) == []


def test_rules_check_reports_every_problem(tmp_path):
    result = CliRunner().invoke(cli, ["rules", "check", str(DEFAULT_RULES)])
    assert result.exit_code == 0
    assert "rule(s) OK" in result.output
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - name: hot\n    event: node_metrics\n    level: warning\n")
    result = CliRunner().invoke(cli, ["rules", "check", str(bad)])
    assert result.exit_code == 1
    assert "line 2, rule 'hot'" in result.output
    assert "condition" in result.output


@pytest.mark.parametrize(
    "command", [[], ["tail"], ["history"], ["post"], ["state"], ["alerts"], ["rules"], ["rules", "check"]]
)
def test_every_command_has_help(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output
