"""Soak: steady ingest for minutes with SSE clients connecting, resuming and leaving; resources of
each service over time.

    flock /tmp/bench.lock .venv/bin/python bench/bench_soak.py               # 10 minutes
    flock /tmp/bench.lock .venv/bin/python bench/bench_soak.py --minutes 1   # a quick look

A nats-server and the three services (`python -m collector`, `python -m sse_edge`,
`python -m alert_evaluator`) run as processes of their own. This process posts events to the
collector at a steady rate (metrics samples of 200 nodes, some of them hot so that alerts fire and
resolve, and node status changes) and runs SSE clients that each connect with a random filter,
read for a few seconds, leave, and half of the time come back with Last-Event-ID. Every
`--every` seconds it records each service's resident memory (RSS), open file descriptors
(psutil) and asyncio tasks (`eventhandler_asyncio_tasks` from its `/metrics`).

Printed: one row per sample and, per service, the ratio of the last sample to the one at the
end of the first minute (the baseline, once start-up allocations are done): flat is ~1.0.
The machine is shared: absolute numbers vary with the neighbours, growth is what this measures.
"""

import argparse
import asyncio
import contextlib
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from eh_devtools.nats_server import NatsServer
from eh_devtools.service_process import ServiceProcess
from eh_devtools.sse_client import read_sse

NODES = 200
HOT = 20
RATE = 400  # events/s posted
CLIENTS = 40
SERVICES = ("collector", "sse_edge", "alert_evaluator")
PREFIX = {"collector": "COLLECTOR_", "sse_edge": "SSE_EDGE_", "alert_evaluator": "ALERT_EVALUATOR_"}


def metrics_event(node: int, usage: float) -> dict[str, Any]:
    return {
        "event": "node_metrics",
        "resource_id": f"node-{node:03d}",
        "timestamp": datetime.now(UTC).isoformat(),
        "data": {"cpu": {"usage": usage, "cores": 8}, "memory": {"used": 1000.0, "total": 4000.0}},
    }


async def produce(collector: str, stop: asyncio.Event, counts: dict[str, int]) -> None:
    rng = random.Random(7)
    batch = RATE // 10
    async with httpx.AsyncClient(base_url=collector, timeout=10) as client:
        tick = 0
        while not stop.is_set():
            started = time.monotonic()
            events = []
            for _ in range(batch):
                node = rng.randrange(NODES)
                hot = node < HOT and (tick // 600) % 2 == 0  # hot for a minute, then cool
                events.append(metrics_event(node, 95.0 if hot else rng.uniform(10, 60)))
            if tick % 10 == 0:
                state = rng.choice(["online", "offline", "draining"])
                events.append(
                    {"event": "node_status", "resource_id": f"node-{rng.randrange(NODES):03d}",
                     "data": {"new_state": state}}
                )  # fmt: skip
            try:
                response = await client.post("/api/v1/events", json=events)
                counts["posted" if response.status_code == 202 else "refused"] += len(events)
            except httpx.HTTPError:
                counts["refused"] += len(events)
            tick += 1
            await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - started)))


async def sse_client(edge: str, seed: int, stop: asyncio.Event, counts: dict[str, int]) -> None:
    rng = random.Random(seed)
    last_id: str | None = None
    async with httpx.AsyncClient(base_url=edge, timeout=30) as client:
        while not stop.is_set():
            params = rng.choice([{}, {"type": "node_metrics"}, {"type": "node_status,system_alert"},
                                 {"resource_id": f"node-{rng.randrange(NODES):03d}"}])  # fmt: skip
            headers = {"Last-Event-ID": last_id} if last_id and rng.random() < 0.5 else {}
            counts["resumes" if headers else "connects"] += 1
            stay = rng.uniform(2, 10)
            try:
                async with client.stream("GET", "/api/v1/events", params=params, headers=headers) as response:
                    deadline = time.monotonic() + stay
                    async for message in read_sse(response):
                        if message.id is not None:
                            last_id = message.id
                            counts["received"] += 1
                        if time.monotonic() > deadline or stop.is_set():
                            break
            except httpx.HTTPError:
                counts["client_errors"] += 1
            await asyncio.sleep(rng.uniform(0, 1))


async def tasks_of(base_url: str) -> int | None:
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        with contextlib.suppress(httpx.HTTPError):
            for line in (await client.get("/metrics")).text.splitlines():
                if line.startswith("eventhandler_asyncio_tasks "):
                    return int(float(line.split()[1]))
    return None


async def sample(services: dict[str, ServiceProcess]) -> dict[str, tuple[float, int, int | None]]:
    row = {}
    for name, service in services.items():
        assert service.process is not None
        process = psutil.Process(service.process.pid)
        row[name] = (process.memory_info().rss / 2**20, process.num_fds(), await tasks_of(service.base_url))
    return row


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, NatsServer(store_dir=Path(tmp) / "js") as server:
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(
            "rules:\n  - name: hot\n    event: node_metrics\n    condition: cpu.usage > 90\n    for: 20s\n"
            "    level: warning\n    category: resource\n    title: Hot\n    message: '{resource_id} hot'\n",
            encoding="utf-8",
        )
        env = {
            "NATS_URL": server.url,
            "ALERT_EVALUATOR_RULES_FILE": str(rules),
            "LOG_LEVEL": "warning",
            "AUTH_MODE": "none",
        }
        services = {
            name: ServiceProcess(name, PREFIX[name], env, Path(tmp) / f"{name}.log").start()
            for name in SERVICES
        }
        try:
            for service in services.values():
                await service.ready(60)
            counts: dict[str, int] = dict.fromkeys(
                ("posted", "refused", "connects", "resumes", "received", "client_errors"), 0
            )
            stop = asyncio.Event()
            work = [asyncio.create_task(produce(services["collector"].base_url, stop, counts))]
            work += [
                asyncio.create_task(sse_client(services["sse_edge"].base_url, i, stop, counts))
                for i in range(CLIENTS)
            ]
            started = time.monotonic()
            rows: list[tuple[float, dict[str, tuple[float, int, int | None]]]] = []
            header = "  ".join(f"{n[:9]:>9} RSS MiB  fds tasks" for n in SERVICES)
            print(f"{'minute':>6}  {header}  events posted / received")
            while (elapsed := time.monotonic() - started) < args.minutes * 60:
                row = await sample(services)
                rows.append((elapsed, row))
                cells = "  ".join(f"{rss:17.1f} {fds:4d} {tasks or 0:5d}" for rss, fds, tasks in row.values())
                print(
                    f"{elapsed / 60:6.1f}  {cells}  {counts['posted']:,} / {counts['received']:,}", flush=True
                )
                await asyncio.sleep(args.every)
            rows.append((time.monotonic() - started, await sample(services)))
            stop.set()
            await asyncio.wait(work, timeout=15)
            baseline = next((row for elapsed, row in rows if elapsed >= 60), rows[0][1])
            last = rows[-1][1]
            print(f"\nafter {args.minutes:g} min: {counts}")
            for name in SERVICES:
                (rss0, fds0, tasks0), (rss1, fds1, tasks1) = baseline[name], last[name]
                print(
                    f"{name:16} RSS {rss0:6.1f} → {rss1:6.1f} MiB ({rss1 / rss0:.2f}x)  "
                    f"fds {fds0} → {fds1} ({fds1 / fds0:.2f}x)  tasks {tasks0} → {tasks1}"
                )
        finally:
            for service in services.values():
                service.stop()


if __name__ == "__main__":
    asyncio.run(main())
