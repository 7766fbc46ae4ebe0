import asyncio
import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.readiness import until_ready

pytestmark = pytest.mark.nats


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.add(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return found


def alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


async def test_two_workers_share_the_port_and_stop_together_on_sigterm(nats_url):
    port = free_port()
    env = os.environ | {
        "NATS_URL": nats_url,
        "COLLECTOR_HOST": "127.0.0.1",
        "COLLECTOR_PORT": str(port),
        "COLLECTOR_WORKERS": "2",
        "LOG_LEVEL": "warning",
    }
    parent = subprocess.Popen([sys.executable, "-m", "collector"], env=env)  # noqa: ASYNC220
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await until_ready(client)
            workers = children_of(parent.pid)
            assert len(workers) == 2
            batch = [SEED_EXAMPLES["system_log"] | {"id": f"w-{i}"} for i in range(20)]
            answers = await asyncio.gather(*(client.post("/api/v1/events", json=batch) for _ in range(4)))
        statuses = sorted(r.json()["events"][0]["status"] for r in answers)
        assert statuses == ["duplicate"] * 3 + ["stored"]  # one stream, whichever worker answered
        parent.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(parent.wait, 20) == 0
        assert not any(alive(pid) for pid in workers)
    finally:
        if parent.poll() is None:
            parent.kill()
