"""`make run`'s supervisor: everything up and wired, then everything gone on SIGTERM."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

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


@pytest.fixture
def stack(tmp_path, request):
    if request.config.getoption("--nats-url"):
        pytest.skip("starts its own nats-server")
    edge, collector, evaluator, nats_port, monitor = free_ports(5)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("NATS_", "SSE_EDGE_", "COLLECTOR_"))
    } | {
        "DATA_DIR": str(tmp_path / "data"),
        "SSE_EDGE_PORT": str(edge),
        "COLLECTOR_PORT": str(collector),
        "ALERT_EVALUATOR_PORT": str(evaluator),
        "NATS_PORT": str(nats_port),
        "NATS_MONITOR_PORT": str(monitor),
        "LOG_FORMAT": "json",
        "AGENT": "0",  # its own node_status events would interleave with the ones checked here
    }
    log = tmp_path / "stack.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "eh_devtools.stack"], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 60
    while "Event Handler is up" not in log.read_text():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    try:
        yield process, log, {"edge": edge, "collector": collector, "nats": nats_port, "monitor": monitor}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


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
