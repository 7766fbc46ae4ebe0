"""Reconnection storm (issue 15): 10,000 clients come back within one second, 5 s behind, at 1,000
events/s; the edge with its window of recent events against the same edge with the window off.

Processes: nats-server, the edge (`python -m sse_edge`; `--edges N` starts N replicas, each on its
own port with its own live feed and window, on the same NATS, as several pods behind one Service),
the publisher (bench/nats_load.py, ~300-byte node_metrics over 100 resources) and storm clients
(this file, `--client`), several processes of raw-socket connections. Client i resumes
`resource_id=node-<i % 100>` on edge `i % N` (round robin, as a load balancer spreads new
connections) with a Last-Event-ID 5,000 events (5 s) behind the stream's end when the storm
starts; connections open evenly spread over one second. Figures per run, summed over the edges:

- time from the storm's start until every client has its `stream.caught_up` (p50, p99, max, all);
- JetStream consumers: the most seen at once during the storm (polled), and the edges' own count
  of resumes by source (`eventhandler_edge_resumes_total{source="memory"|"jetstream"}`);
- CPU seconds over the storm of every process (each edge, nats-server, the publisher, the storm
  clients) and the machine's busy share: on a small machine they all share the cores;
- whether the live feeds kept their connections (the edges' NATS disconnect counters).

    flock /tmp/bench.lock .venv/bin/python bench/bench_storm.py
    flock /tmp/bench.lock .venv/bin/python bench/bench_storm.py --clients 2000 --windows on
    flock /tmp/bench.lock .venv/bin/python bench/bench_storm.py --windows on --edges 2
"""

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nats
from bench_fanout import (
    Children,
    Run,
    Server,
    child_setup,
    cpu_seconds,
    free_port,
    machine_busy_share,
    machine_ticks,
    provision,
    read_json,
    tell,
    wait_ready,
)

from eh_devtools.nats_server import NatsServer
from eh_runtime.stream import EVENTS_STREAM

CAUGHT_UP = b"event: stream.caught_up"


# --- the storm client (runs as its own process) ----------------------------------------------


class StormConnection(asyncio.Protocol):
    def __init__(self, request: bytes, started: float, done: "asyncio.Future[float]") -> None:
        self.request = request
        self.started = started
        self.done = done
        self.seen = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]  # uvloop's TCPTransport

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        self.seen = self.seen[-32:] + data
        if not self.seen.startswith(b"HTTP/1.1 200") and self.seen.startswith(b"HTTP/1.1 "):
            self.done.set_exception(RuntimeError(self.seen[:12].decode()))
            return
        if CAUGHT_UP in self.seen:
            self.done.set_result(time.monotonic() - self.started)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError("closed before caught up"))


async def storm_client(spec: dict[str, Any]) -> None:
    cpu_started = time.process_time()  # after the interpreter's start and imports: the storm's own CPU
    loop = asyncio.get_running_loop()
    count = len(spec["targets"])
    start = time.monotonic() + max(0.0, spec["start_at"] - time.time())  # the storm's start
    connections = []
    futures: list[asyncio.Future[float]] = []

    async def open_one(i: int, port: int, path: str) -> None:
        await asyncio.sleep(max(0.0, start + spec["spread"] * i / count - time.monotonic()))
        request = (
            f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n"
            f"Last-Event-ID: {spec['last_event_id']}\r\n\r\n"
        ).encode()
        done: asyncio.Future[float] = loop.create_future()
        futures.append(done)
        try:
            transport, _ = await loop.create_connection(
                lambda: StormConnection(request, start, done), spec["host"], port
            )
            connections.append(transport)
        except OSError as error:
            done.set_exception(error)

    await asyncio.gather(*(open_one(i, port, path) for i, (port, path) in enumerate(spec["targets"])))
    times: list[float] = []
    errors: dict[str, int] = {}
    # One deadline for all: waiting `timeout` for each in turn would add up.
    await asyncio.wait(futures, timeout=max(0.0, start + spec["timeout"] - time.monotonic()))
    for future in futures:
        if not future.done():
            errors["TimeoutError"] = errors.get("TimeoutError", 0) + 1
            continue
        error = future.exception()
        if error is None:
            times.append(future.result())
        else:
            kind = type(error).__name__ + (f": {error}" if str(error) else "")
            errors[kind[:60]] = errors.get(kind[:60], 0) + 1
    cpu = time.process_time() - cpu_started
    sys.stdout.write(json.dumps({"times": times, "errors": errors, "cpu_s": cpu}) + "\n")
    sys.stdout.flush()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # hold until told
    for transport in connections:
        transport.close()


# --- the run -----------------------------------------------------------------------------------


def metric(port: int, name: str) -> dict[str, float]:
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:  # a busy edge answers late
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        body = b""
        while chunk := sock.recv(1 << 16):
            body += chunk
    found = re.findall(rb"^" + name.encode() + rb"(\{[^}]*\})? ([0-9.e+]+)$", body, re.MULTILINE)
    return {labels.decode(): float(value) for labels, value in found}


def metric_summed(ports: list[int], name: str) -> dict[str, float]:
    """One metric of every edge, each label set summed over the edges."""
    total: dict[str, float] = {}
    for port in ports:
        for labels, value in metric(port, name).items():
            total[labels] = total.get(labels, 0.0) + value
    return total


async def stream_state(url: str) -> tuple[int, int]:
    client = await nats.connect(url)
    info = await client.jetstream().stream_info(EVENTS_STREAM)
    await client.close()
    return info.state.last_seq, info.state.consumer_count


async def watch_consumers(url: str, stop: asyncio.Event, seen: list[int]) -> None:
    client = await nats.connect(url)
    js = client.jetstream()
    while not stop.is_set():
        with contextlib.suppress(Exception):
            seen.append((await js.stream_info(EVENTS_STREAM)).state.consumer_count)
        await asyncio.sleep(0.1)
    await client.close()


@contextlib.contextmanager
def edge_server(run: Run, extra_env: dict[str, str], name: str = "edge") -> Iterator[Server]:
    """The edge with its output in a file: a pipe nobody reads would stop it once its logs fill it."""
    port = free_port()
    env = {
        **os.environ,
        "NATS_URL": run.nats_url,
        "SSE_EDGE_HOST": "127.0.0.1",
        "SSE_EDGE_PORT": str(port),
        "LOG_LEVEL": "warning",
        "AUTH_MODE": "none",  # the data path is measured, not token checks
        **run.edge_env,
        **extra_env,
    }
    with (run.workdir / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sse_edge"], env=env, stdout=log, stderr=log, preexec_fn=child_setup
        )
    run.children.processes.append(process)
    try:
        wait_ready(port, process, "edge")
        yield Server(name, process, port)
    finally:
        run.children.stop(process)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else float("nan")


def storm(
    run: Run,
    window: str,
    clients: int,
    processes: int,
    behind: int,
    rate: float,
    edges: int = 1,
    nats_pid: int | None = None,
    profile: Path | None = None,
) -> dict[str, Any]:
    env = {"SSE_EDGE_RECENT_EVENTS_BYTES": "64MiB" if window == "on" else "0"}
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(edge_server(run, env, f"edge-{e}")) for e in range(edges)]
        ports = [server.port for server in servers]
        stack.enter_context(run.publisher(rate))
        publisher_pid = run.infra_pids[-1]
        time.sleep(behind / rate + 2)  # the windows fill with more than the storm asks for
        last_seq, consumers_before = asyncio.run(stream_state(run.nats_url))
        counters = (
            "eventhandler_edge_resumes_total",
            "eventhandler_nats_disconnects_total",
            "eventhandler_edge_writes_total",
            "eventhandler_edge_history_consumers_total",
        )
        before = {name: metric_summed(ports, name) for name in counters}
        start_at = time.time() + 1.0
        # Client i on edge i % edges: a load balancer's round robin over the replicas.
        targets = [(ports[i % edges], f"/api/v1/events?resource_id=node-{i % 100}") for i in range(clients)]
        loads = []
        for p in range(processes):
            spec = {
                "host": "127.0.0.1",
                "targets": targets[p::processes],
                "last_event_id": max(0, last_seq - behind),
                "start_at": start_at,
                "spread": 1.0,
                "timeout": 60.0,
            }
            loads.append(run.children.spawn([__file__, "--client", json.dumps(spec)]))
        seen: list[int] = []
        stop = asyncio.Event()

        async def watch_while_waiting() -> list[dict[str, Any]]:
            watcher = asyncio.create_task(watch_consumers(run.nats_url, stop, seen))
            results = [await asyncio.to_thread(read_json, load) for load in loads]
            stop.set()
            await watcher
            return results

        profilers = []
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            for server in servers:
                profilers.append(
                    subprocess.Popen(
                        [
                            str(Path(sys.executable).parent / "py-spy"),
                            *("record", "--pid", str(server.process.pid), "--rate", "100", "--nonblocking"),
                            *("--format", "raw", "-o", str(profile / f"storm-{window}-{server.kind}.txt")),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        preexec_fn=child_setup,
                    )
                )
        # Every process on the machine's cores, for where the CPU went.
        pids = {server.kind: server.process.pid for server in servers}
        pids["publisher"] = publisher_pid
        if nats_pid is not None:
            pids["nats-server"] = nats_pid
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        ticks_before = machine_ticks()
        wall_before = time.monotonic()
        results = asyncio.run(watch_while_waiting())
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        busy = machine_busy_share(ticks_before, machine_ticks())
        wall = time.monotonic() - wall_before
        for profiler in profilers:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            profiler.wait(30)
        # The clients go before the metrics are read: an edge writing to 10,000 live streams may
        # not get to a scrape for minutes.
        for load in loads:
            tell(load, "stop")
            run.children.stop(load)
        after = {name: metric_summed(ports, name) for name in counters}

    def grown(name: str) -> dict[str, float]:
        return {key: value - before[name].get(key, 0) for key, value in after[name].items()}

    times = [t for result in results for t in result["times"]]
    errors: dict[str, int] = {}
    for result in results:
        for kind, count in result["errors"].items():
            errors[kind] = errors.get(kind, 0) + count
    edge_cpu = [cpu[server.kind] for server in servers]
    return {
        "window": window,
        "edges": edges,
        "clients": clients,
        "behind_events": behind,
        "caught_up": len(times),
        "errors": errors,
        "p50_s": percentile(times, 0.5),
        "p99_s": percentile(times, 0.99),
        "all_live_s": max(times) if len(times) == clients else None,
        "consumers_max_during_storm": max(seen, default=0) - consumers_before,
        "resumes": grown("eventhandler_edge_resumes_total"),
        "consumers_created": grown("eventhandler_edge_history_consumers_total"),
        "nats_disconnects": sum(grown("eventhandler_nats_disconnects_total").values()),
        "edge_cpu_s": sum(edge_cpu),
        "storm_wall_s": wall,
        # Every write to a client (the storm's and the live events' after it): what the CPU went to.
        "edge_writes": sum(grown("eventhandler_edge_writes_total").values()),
        "cpu_s": {
            "edges": [round(seconds, 1) for seconds in edge_cpu],
            "nats_server": round(cpu.get("nats-server", float("nan")), 1),
            "publisher": round(cpu["publisher"], 1),
            "storm_clients": round(sum(result["cpu_s"] for result in results), 1),
            "machine_busy_share": round(busy, 2),
        },
    }


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--client":
        import uvloop

        uvloop.run(storm_client(json.loads(sys.argv[2])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--behind", type=int, default=5000, help="events behind the stream's end")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--windows", default="on,off")
    parser.add_argument(
        "--edges",
        type=int,
        default=1,
        help="edge replicas on the same NATS, each its own port, live feed and window; "
        "client i connects to edge i %% N",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--profile",
        type=Path,
        help="record py-spy (raw collapsed stacks) of the edge during each storm into this folder; "
        "the profiler takes CPU from the same cores, so read such a run's figures as a profile only",
    )
    args = parser.parse_args()
    if args.edges < 1:
        parser.error("--edges: at least 1")
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}", flush=True)
    children = Children()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as directory, NatsServer(Path(directory) / "js") as nats_server:
            asyncio.run(provision(nats_server.url))
            run = Run(
                nats_server.url,
                children,
                Path(directory),
                False,
                edge_env={
                    "SSE_EDGE_MAX_CONNECTIONS": "20000",
                    "SSE_EDGE_MAX_CONNECTIONS_PER_ADDRESS": "20000",
                },
            )
            for window in args.windows.split(","):
                row = storm(
                    run,
                    window,
                    args.clients,
                    args.processes,
                    args.behind,
                    args.rate,
                    edges=args.edges,
                    nats_pid=nats_server.process.pid if nats_server.process is not None else None,
                    profile=args.profile,
                )
                rows.append(row)
                print("  " + json.dumps(row), flush=True)
    finally:
        children.stop_all()
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
