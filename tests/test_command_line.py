"""Every entry point behaves like a command-line program: `--help` with its environment variables,
`--version`, exit status 2 and the usage for what it does not know; none of them starts the service."""

import subprocess
import sys

import pytest

from alert_evaluator.settings import EvaluatorSettings
from collector.agent.settings import AgentSettings
from collector.settings import CollectorSettings
from eh_runtime.settings import settings_variables
from sse_edge.settings import EdgeSettings

BIN = f"{sys.prefix}/bin"
ENTRY_POINTS = {
    "sse-edge": ([f"{BIN}/sse-edge"], EdgeSettings),
    "alert-evaluator": ([f"{BIN}/alert-evaluator"], EvaluatorSettings),
    "collector": ([f"{BIN}/collector"], CollectorSettings),
    "python -m sse_edge": ([sys.executable, "-m", "sse_edge"], EdgeSettings),
    "python -m collector agent": ([sys.executable, "-m", "collector", "agent"], AgentSettings),
}


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    # A service that ignored the flag would start and wait for NATS: the timeout would fail the test.
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_help_lists_every_environment_variable(name):
    command, settings = ENTRY_POINTS[name]
    result = run([*command, "-h" if name == "sse-edge" else "--help"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ")
    for variable in settings_variables(settings):
        assert f"\n  {variable.name} " in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("name", ["sse-edge", "alert-evaluator", "collector"])
def test_version(name):
    command, _ = ENTRY_POINTS[name]
    result = run([*command, "--version"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{name} 0.1.0\n"


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_an_unknown_flag_exits_2_with_the_usage(name):
    command, _ = ENTRY_POINTS[name]
    result = run([*command, "--no-such-flag"])
    assert result.returncode == 2
    assert result.stderr.startswith("usage: ")
    assert "unrecognized arguments: --no-such-flag" in result.stderr


def test_collector_help_names_the_agent_command():
    result = run([f"{BIN}/collector", "--help"])
    assert "agent" in result.stdout
    result = run([f"{BIN}/collector", "nonsense"])
    assert result.returncode == 2
    assert "invalid choice: 'nonsense'" in result.stderr
