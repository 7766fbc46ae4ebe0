"""Collector ingestion throughput: validated events/s over HTTP in batches of 1,000, next to a bare
nats-py `publish_async` loop storing the same bytes, in the same run against the same nats-server.

    .venv/bin/python bench/bench_collector.py            # full run (~1 min)
    .venv/bin/python bench/bench_collector.py --quick    # a few seconds
    .venv/bin/python bench/bench_collector.py --quick --profile /tmp/prof  # py-spy of the collector

The bare loop is the obvious client: `publish_async` every event (with `Nats-Msg-Id`), then await
the acks of the batch. It does no validation. The collector runs as its own process
(`python -m collector`, uvicorn) and the HTTP load comes from this process with pre-built bodies, so
the collector's number includes HTTP parsing, validation, serialization and JetStream acks.
Each phase gets a fresh stream. The machine is shared: compare the ratio, not absolute numbers.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import nats

from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.nats_server import NatsServer
from eh_devtools.readiness import until_ready
from eh_runtime.connection import NatsConnection
from eh_runtime.event_publisher import EventPublisher
from eh_runtime.settings import NatsSettings, StreamSettings
from eh_runtime.stream import EVENTS_STREAM, ensure_events_stream

BATCH = 1000
# Producers' everyday traffic: metrics, progress and logs (status events are transitions, measured apart).
MIX = ("node_metrics", "container_metrics", "pipeline_progress", "system_log")


def make_events(count: int) -> list[dict]:
    events = []
    for i in range(count):
        kind = MIX[i % len(MIX)]
        event = json.loads(json.dumps(SEED_EXAMPLES[kind]))
        event["id"] = str(uuid.uuid4())
        event["resource_id"] = f"{event['resource_id']}-{i % 200}"
        events.append(event)
    return events


async def fresh_stream(url: str) -> None:
    client = await nats.connect(url)
    js = client.jetstream()
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_stream(EVENTS_STREAM)
    await ensure_events_stream(js, StreamSettings())
    await client.close()


async def bare_publish_async(url: str, events: list[dict]) -> float:
    """The obvious nats-py client: publish_async each event of a batch, then await its acks."""
    await fresh_stream(url)
    client = await nats.connect(url)
    js = client.jetstream()
    prepared = [
        (f"events.{e['event']}.{e['resource_id']}", json.dumps(e, separators=(",", ":")).encode(), e["id"])
        for e in events
    ]
    started = time.perf_counter()
    for start in range(0, len(prepared), BATCH):
        futures = [
            await js.publish_async(subject, payload, stream=EVENTS_STREAM, headers={"Nats-Msg-Id": msg_id})
            for subject, payload, msg_id in prepared[start : start + BATCH]
        ]
        await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    stored = (await js.stream_info(EVENTS_STREAM)).state.messages
    await client.close()
    assert stored == len(events), f"bare loop stored {stored} of {len(events)}"
    return len(events) / elapsed


async def event_publisher_loop(url: str, events: list[dict]) -> float:
    """The collector's store path alone (EventPublisher: atomic batches), same bytes, same loop shape."""
    await fresh_stream(url)
    connection = NatsConnection(NatsSettings(url=url), "bench")
    connection.start()
    await connection.wait_ready(10)
    publisher = EventPublisher(connection)
    messages = [
        publisher.outgoing(
            e["event"], e["resource_id"], e["id"], json.dumps(e, separators=(",", ":")).encode()
        )
        for e in events
    ]
    started = time.perf_counter()
    for start in range(0, len(messages), BATCH):
        results = await publisher.publish_messages(messages[start : start + BATCH])
        assert all(r.stored for r in results)
    elapsed = time.perf_counter() - started
    await connection.close()
    return len(events) / elapsed


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def processes_cpu_seconds(pids: list[int]) -> float:
    return sum(process_cpu_seconds(pid) for pid in pids)


def children(pid: int) -> list[int]:
    """The process and its children (uvicorn's worker processes), read from /proc."""
    found = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def start_profiler(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """py-spy recording `pid` (raw collapsed stacks, for `profile_summary.py`) until interrupted."""
    output.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            *("record", "--pid", str(pid), "--rate", "250", "--nonblocking"),
            *("--format", "raw", "-o", str(output)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_profiler(profiler: subprocess.Popen[bytes]) -> None:
    profiler.send_signal(signal.SIGINT)
    try:
        profiler.wait(30)
    except subprocess.TimeoutExpired:
        profiler.kill()
        profiler.wait()


async def collector_http(
    url: str,
    events: list[dict],
    concurrency: int,
    port: int,
    server_pid: int,
    workers: int,
    profile: Path | None = None,
) -> tuple[float, dict[str, float]]:
    """Events/s through the collector, and CPU microseconds per event of the collector (all its
    processes), of nats-server and of this load client."""
    await fresh_stream(url)
    env = os.environ | {
        "NATS_URL": url,
        "COLLECTOR_PORT": str(port),
        "COLLECTOR_HOST": "127.0.0.1",
        "LOG_LEVEL": "warning",
        "AUTH_MODE": "none",  # the data path is measured, not token checks
        "COLLECTOR_WORKERS": str(workers),
    }
    process = subprocess.Popen([sys.executable, "-m", "collector"], env=env)  # noqa: ASYNC220
    bodies = [json.dumps(events[i : i + BATCH]).encode() for i in range(0, len(events), BATCH)]
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(
            base_url=base, timeout=60, limits=httpx.Limits(max_connections=concurrency)
        ) as client:
            await until_ready(client)
            warmup = json.dumps(make_events(BATCH)).encode()
            await client.post("/api/v1/events", content=warmup, headers={"content-type": "application/json"})
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            for body in bodies:
                queue.put_nowait(body)

            async def worker() -> int:
                stored = 0
                while not queue.empty():
                    body = queue.get_nowait()
                    response = await client.post(
                        "/api/v1/events", content=body, headers={"content-type": "application/json"}
                    )
                    assert response.status_code == 202, response.text[:500]
                    stored += response.json()["stored"]
                return stored

            pids = children(process.pid)
            assert len(pids) == (1 if workers == 1 else workers + 1), f"collector processes: {pids}"
            profiler = start_profiler(pids[-1], profile) if profile else None
            cpu_before = processes_cpu_seconds(pids)
            server_before = process_cpu_seconds(server_pid)
            client_before = time.process_time()
            started = time.perf_counter()
            stored = sum(await asyncio.gather(*(worker() for _ in range(concurrency))))
            elapsed = time.perf_counter() - started
            cpu = {
                "collector": processes_cpu_seconds(pids) - cpu_before,
                "nats-server": process_cpu_seconds(server_pid) - server_before,
                "load client": time.process_time() - client_before,
            }
            if profiler is not None:
                stop_profiler(profiler)
        assert stored == len(events), f"collector stored {stored} of {len(events)}"
        return len(events) / elapsed, {name: seconds / len(events) * 1e6 for name, seconds in cpu.items()}
    finally:
        process.terminate()
        process.wait(20)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 events per phase instead of 100,000")
    parser.add_argument("--concurrency", type=int, default=4, help="HTTP requests in flight")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of each phase")
    parser.add_argument("--workers", type=int, default=1, help="collector processes (COLLECTOR_WORKERS)")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record py-spy (raw collapsed stacks) of a collector process in every HTTP round into this "
        "folder; the profiler takes CPU from the same cores, so read such a run's figures as a profile only",
    )
    args = parser.parse_args()
    count = 20_000 if args.quick else 100_000
    events = make_events(count)
    with tempfile.TemporaryDirectory() as store, NatsServer(store_dir=Path(store) / "jetstream") as server:
        bare, store, http, cpu = [], [], [], []
        for _ in range(args.rounds):
            bare.append(await bare_publish_async(server.url, events))
            store.append(await event_publisher_loop(server.url, events))
            assert server.process is not None
            profile = args.profile / f"collector-{len(http) + 1}.txt" if args.profile else None
            rate, us = await collector_http(
                server.url, events, args.concurrency, free_port(), server.process.pid, args.workers, profile
            )
            http.append(rate)
            cpu.append(us)
    best_bare, best_store, best_http = max(bare), max(store), max(http)

    def line(label: str, best: float, rounds: list[float]) -> None:
        print(f"{label:<32}: {best:>9,.0f} events/s  (rounds: {', '.join(f'{r:,.0f}' for r in rounds)})")

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, shared"
    )
    print(f"events per phase: {count}, batches of {BATCH}, mix {'/'.join(MIX)}")
    print(f"HTTP requests in flight: {args.concurrency}, collector processes: {args.workers}")
    line("bare nats-py publish_async loop", best_bare, bare)
    line("EventPublisher loop (no HTTP)", best_store, store)
    line("collector, HTTP, validated", best_http, http)
    best = cpu[http.index(best_http)]
    for name in best:
        rounds = ", ".join(f"{c[name]:.1f}" for c in cpu)
        print(f"{name + ' CPU per event':<32}: {best[name]:>9.1f} us  (rounds: {rounds})")
    print(f"{'ratio EventPublisher / bare loop':<32}: {best_store / best_bare:>9.2f}x")
    print(f"{'ratio collector / bare loop':<32}: {best_http / best_bare:>9.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
