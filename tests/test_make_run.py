"""`make run`'s supervisor: everything up and wired, then everything gone on SIGTERM."""

import asyncio
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from eh_devtools.stack import AGENT_TOKEN_TTL, Stack, sign_agent_token
from eh_runtime.auth.settings import AuthSettings
from eh_runtime.auth.token import scope_of, sign_token
from eh_runtime.auth.tokens import TokenVerifier

pytestmark = [pytest.mark.slow, pytest.mark.own_server]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def start_stack(tmp_path, **variables: str):
    """`python -m eh_devtools.stack` on free ports; the process, its log and its ports, once it is up."""
    edge, collector, evaluator, nats_port, monitor = free_ports(5)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("NATS_", "SSE_EDGE_", "COLLECTOR_", "AUTH_", "AGENT"))
    } | {
        "DATA_DIR": str(tmp_path / "data"),
        "SSE_EDGE_PORT": str(edge),
        "COLLECTOR_PORT": str(collector),
        "ALERT_EVALUATOR_PORT": str(evaluator),
        "NATS_PORT": str(nats_port),
        "NATS_MONITOR_PORT": str(monitor),
        "LOG_FORMAT": "json",
        **variables,
    }
    log = tmp_path / "stack.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "eh_devtools.stack"], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    ports = {"edge": edge, "collector": collector, "nats": nats_port, "monitor": monitor}
    deadline = time.monotonic() + 90
    try:
        while "Event Handler is up" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    except BaseException:
        stop(process)
        raise
    return process, log, ports


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture
def stack(tmp_path, request):
    if request.config.getoption("--nats-url"):
        pytest.skip("starts its own nats-server")
    # The agent's own node_status events would interleave with the ones checked here.
    process, log, ports = start_stack(tmp_path, AGENT="0", AUTH_MODE="none")
    try:
        yield process, log, ports
    finally:
        stop(process)


def test_make_run_serves_the_skeleton_path_and_stops_cleanly(stack):
    process, log, ports = stack
    text = log.read_text()
    assert f"http://localhost:{ports['edge']}/api/v1/events" in text
    assert f"http://localhost:{ports['collector']}/api/v1/events" in text
    assert f"nats://127.0.0.1:{ports['nats']}" in text
    child_pids = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", text)]
    assert len(child_pids) == 3

    with httpx.Client(timeout=10) as client:
        assert client.get(f"http://127.0.0.1:{ports['monitor']}/healthz").status_code == 200
        with client.stream(
            "GET", f"http://127.0.0.1:{ports['edge']}/api/v1/events?type=node_status"
        ) as stream:
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith("event:")) == "event: stream.ready"
            posted = client.post(
                f"http://127.0.0.1:{ports['collector']}/api/v1/events",
                json={"event": "node_status", "resource_id": "node-001", "data": {"new_state": "online"}},
            )
            seq = posted.json()["events"][0]["seq"]
            assert next(line for line in lines if line.startswith("id:")) == f"id: {seq}"
            assert next(lines) == "event: node_status"

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, log.read_text()
    assert "stopped" in log.read_text()
    assert [pid for pid in child_pids if alive(pid)] == []
    port_probe = socket.socket()
    port_probe.bind(("127.0.0.1", ports["nats"]))  # NATS is gone too: its port is free again
    port_probe.close()


SECRET = "make-run-test-secret-0123456789abcdef"


def test_the_host_agent_token_publishes_what_the_agent_sends_and_nothing_else():
    token = sign_agent_token({"AUTH_SECRET": SECRET, "AGENT_NODE_ID": "build-7", "AUTH_ISSUER": "farm"})
    principal = asyncio.run(
        TokenVerifier(AuthSettings(mode="jwt", secret=SECRET, issuer="farm")).verify(token)
    )
    assert principal.subject == "host-agent:build-7"
    assert principal.subscribe is None
    assert not principal.admin
    assert principal.publish is not None
    for event_type in ("node_status", "node_metrics"):
        assert principal.publish.permits(event_type, "build-7")
        assert not principal.publish.permits(event_type, "build-8")
    assert not principal.publish.permits("pipeline_status", "build-7")
    assert principal.expires_at == pytest.approx(time.time() + AGENT_TOKEN_TTL.total_seconds(), abs=60)
    with pytest.raises(ValueError, match="AUTH_SECRET"):
        sign_agent_token({"AGENT_NODE_ID": "build-7"})


def test_with_docker_the_host_agent_token_also_publishes_container_events(tmp_path):
    socket_path = tmp_path / "docker.sock"
    socket_path.touch()
    token = sign_agent_token(
        {"AUTH_SECRET": SECRET, "AGENT_NODE_ID": "b", "AGENT_DOCKER_SOCKET": str(socket_path)}
    )
    principal = asyncio.run(TokenVerifier(AuthSettings(mode="jwt", secret=SECRET)).verify(token))
    assert principal.publish is not None
    assert principal.publish.permits("container_status", "any-container-name")
    assert principal.publish.permits("container_metrics", "build-42")
    assert not principal.publish.permits("pipeline_status", "b")
    assert not principal.publish.permits("system_alert", "b")


def test_under_jwt_make_run_gives_the_host_agent_a_working_token(tmp_path, request):
    if request.config.getoption("--nats-url"):
        pytest.skip("starts its own nats-server")
    process, log, ports = start_stack(
        tmp_path,
        AUTH_MODE="jwt",
        AUTH_SECRET=SECRET,
        AGENT="1",
        AGENT_NODE_ID="stack-host",
        AGENT_INTERVAL="200ms",
    )
    try:
        token_file = tmp_path / "data" / "agent" / "token"
        assert f"agent token      {token_file}" in log.read_text()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        operator = {
            "Authorization": f"Bearer {sign_token(SECRET, 'ops', scope_of(subscribe=['*'], admin=True))}"
        }
        deadline = time.monotonic() + 180  # the agent starts after the services: slow when loaded
        with httpx.Client(timeout=30, headers=operator) as client:
            url = f"http://127.0.0.1:{ports['collector']}/api/v1/resources/node"
            while not [r for r in client.get(url).json()["resources"] if r["id"] == "stack-host"]:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            (node,) = client.get(url).json()["resources"]
        assert node["state"] == "online"
        assert "refused" not in log.read_text()
        assert "unreachable" not in log.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()


def test_the_stack_writes_the_agent_token_file_and_renews_it(tmp_path):
    environ = {"AUTH_MODE": "jwt", "AUTH_SECRET": SECRET, "AGENT_NODE_ID": "n-1", "DATA_DIR": str(tmp_path)}
    stack = Stack(environ)
    token_file = Path(stack.agent_credentials()["AGENT_TOKEN_FILE"])
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    first = token_file.stat().st_ino
    verifier = TokenVerifier(AuthSettings(mode="jwt", secret=SECRET))
    assert asyncio.run(verifier.verify(token_file.read_text().strip())).subject == "host-agent:n-1"
    stack.renew_agent_token()
    assert token_file.stat().st_ino != first  # replaced whole: the agent never reads half a token
    assert asyncio.run(verifier.verify(token_file.read_text().strip())).subject == "host-agent:n-1"
    assert list(token_file.parent.iterdir()) == [token_file]
    # Nothing to sign: auth off, or a token of the operator's own.
    assert Stack(environ | {"AUTH_MODE": "none"}).agent_credentials() == {}
    assert Stack(environ | {"AGENT_TOKEN_FILE": "/run/secrets/agent"}).agent_credentials() == {}
