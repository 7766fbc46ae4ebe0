"""Fan-out benchmarks for the SSE edge (issue 4), each figure next to its baselines in the same run.

Processes, each on its own (2 cores are shared by all of them, so a figure's baselines are always
measured in the same run, one after the other, with the same load client):
- nats-server with JetStream (eh_devtools), the EVENTS stream provisioned as the services do;
- the server under test: the edge (`python -m sse_edge`), the baseline (bench/fanout_baseline.py:
  one nats-py ordered consumer per client behind sse-starlette, one write per event) or the
  ceiling (bench/fanout_ceiling.py: no NATS, in-process producer, one batched write per client
  per wake-up);
- a publisher (bench/nats_load.py publish) at a fixed rate of ~300-byte node_metrics events over
  100 resources, core-published into the stream (the ceiling makes its own events);
- load clients (bench/sse_load.py): raw-socket SSE connections that count frames in raw bytes.

Scenarios (`--only` picks some, comma-separated):
- fanout: deliveries/s to 100 and 1,000 clients, (a) all subscribed to everything, (b) spread over
  100 resources with a resource_id filter; edge vs baseline vs ceiling.
- latency: publish → client receive, p50/p99, 10,000 events/s, 100 clients, next to bare NATS core
  publish → subscribe in the same run.
- idle: 15,000 connections on one edge with heartbeats; the edge's RSS per connection.
- slow: one stalled client (never reads, small SO_RCVBUF) among 1,000; the others' p99 latency vs
  the same load without it.

    .venv/bin/python bench/bench_fanout.py                        # everything (~6 minutes)
    .venv/bin/python bench/bench_fanout.py --quick                # a short smoke run
    .venv/bin/python bench/bench_fanout.py --only fanout --servers edge,ceiling
"""

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats

from eh_devtools.nats_server import NatsServer, die_with_parent
from eh_runtime.settings import StreamSettings
from eh_runtime.stream import EVENTS_STREAM, ensure_events_stream

BENCH = Path(__file__).resolve().parent
RESOURCES = 100
SCENARIOS = ("fanout", "latency", "idle", "slow")
SERVERS = ("edge", "baseline", "ceiling")
WRITE_COUNTERS = (b"eventhandler_edge_writes_total", b"eventhandler_edge_writes_direct_total")
# The edge with one of its tricks off, for what the trick buys, next to `edge` in the same run:
# `edge-asgi-send` writes through uvicorn's ASGI send only (bench/edge_asgi_send.py).
EDGE_VARIANTS = ("edge-asgi-send",)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_setup() -> None:
    """Before exec in every child: die with this process, and take every file descriptor allowed."""
    die_with_parent()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Children:
    """Every process this run starts; all are stopped on the way out, also on Ctrl-C."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(
        self,
        args: list[str],
        env: dict[str, str] | None = None,
        stderr: Path | None = None,
        stdout: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        with contextlib.ExitStack() as files:
            process = subprocess.Popen(
                [sys.executable, *args],
                env={**os.environ, **(env or {})},
                stdin=subprocess.PIPE,
                # A server's log goes to a file: a pipe nobody reads stops the server once it is full.
                stdout=files.enter_context(stdout.open("ab")) if stdout else subprocess.PIPE,
                stderr=files.enter_context(stderr.open("ab")) if stderr else None,
                preexec_fn=child_setup,
            )
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], grace: float = 15) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        if process in self.processes:
            self.processes.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self.processes)):
            self.stop(process, grace=5)


def read_json(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{process.args[1:2]} exited ({process.wait()}) without an answer")
    return dict(json.loads(line))


def tell(process: subprocess.Popen[bytes], command: str) -> None:
    assert process.stdin is not None
    process.stdin.write(command.encode() + b"\n")
    process.stdin.flush()


def wait_ready(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            if sock.recv(64).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not become ready")


def wait_for_feed(port: int, timeout: float = 60) -> None:
    """Until the edge's live feed has read what it fills its window of recent events with at start
    (`SSE_EDGE_RECENT_EVENTS_PREFILL`: the last 60 s, here what the cells before stored, up to
    300,000 events): a cell timed while the feed still catches up measures the start-up (a latency
    round measured seconds of backlog, p50 0.9-3.7 s). Its lag metric reads 0 twice, 0.2 s apart:
    the first time may come before the first message."""
    started = time.monotonic()
    lag = re.compile(rb"^eventhandler_edge_feed_lag_events (\S+)$", re.MULTILINE)
    zeros = 0
    while zeros < 2:
        if time.monotonic() - started > timeout:
            raise RuntimeError("the edge's live feed did not catch up")
        found = lag.search(edge_metrics(port))
        zeros = zeros + 1 if found is not None and float(found[1]) == 0 else 0
        time.sleep(0.2)
    if time.monotonic() - started > 1:
        print(f"  (the edge's live feed caught up {time.monotonic() - started:.1f} s after it was ready)")


def edge_metrics(port: int) -> bytes:
    """The edge's Prometheus /metrics page."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        body = b""
        while chunk := sock.recv(1 << 16):
            body += chunk
    return body


def closed_by_reason(port: int) -> dict[str, int]:
    """The edge's own count of ended streams by reason, from its Prometheus /metrics."""
    found = re.findall(
        rb'eventhandler_edge_connections_closed_total\{reason="([^"]+)"\} ([0-9.e+]+)', edge_metrics(port)
    )
    return {reason.decode(): int(float(value)) for reason, value in found}


def edge_writes(port: int) -> tuple[int, int]:
    """The edge's writes to clients so far, and how many of them went straight to the transport."""
    body = edge_metrics(port)
    counts = [re.search(rb"\n%s ([0-9.e+]+)" % name, body) for name in WRITE_COUNTERS]
    return (int(float(counts[0][1])) if counts[0] else 0, int(float(counts[1][1])) if counts[1] else 0)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def machine_busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    return (after[0] - before[0]) / max(1, after[1] - before[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def percentile(values: list[int], fraction: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(len(values) * fraction))] / 1e6  # ns -> ms


@dataclass
class Server:
    kind: str
    process: subprocess.Popen[bytes]
    port: int


@dataclass
class Run:
    """One run: the nats-server, the processes, and every figure measured."""

    nats_url: str
    children: Children
    workdir: Path
    quick: bool
    edge_env: dict[str, str]
    all_offered: tuple[float, ...] = (1e6, 3e6)
    spread_rate: float = 20_000
    profile_dir: Path | None = None
    infra_pids: list[int] = field(default_factory=list)
    memory_dir: Path | None = None

    @property
    def edge_log(self) -> Path:
        return self.workdir / "edge.log"

    @property
    def baseline_log(self) -> Path:
        return self.workdir / "baseline.log"

    def baseline_errors(self) -> dict[str, int]:
        """What the baseline's NATS client complained about since the last call (then forgotten)."""
        if not self.baseline_log.exists():
            return {}
        text = self.baseline_log.read_text(errors="replace")
        self.baseline_log.unlink()
        kinds = {
            "consumer limit reached": "maximum consumers limit reached",
            "nats timeouts": "nats.errors.TimeoutError",
            "slow consumer": "SlowConsumerError",
        }
        found = {name: text.count(needle) for name, needle in kinds.items()}
        return {name: count for name, count in found.items() if count}

    rows: list[dict[str, Any]] = field(default_factory=list)

    # -- servers ----------------------------------------------------------------------------

    def start_server(self, kind: str, rate: float = 0, extra_env: dict[str, str] | None = None) -> Server:
        port = free_port()
        if kind == "edge" or kind in EDGE_VARIANTS:
            env = {
                "NATS_URL": self.nats_url,
                "SSE_EDGE_HOST": "127.0.0.1",
                "SSE_EDGE_PORT": str(port),
                "LOG_LEVEL": "warning",
                "AUTH_MODE": "none",  # the data path is measured, not token checks
                **self.edge_env,
                **(extra_env or {}),
            }
            if self.memory_dir is not None:
                # The edge under tracemalloc (bench/edge_tracemalloc.py): snapshots on SIGUSR1.
                self.memory_dir.mkdir(parents=True, exist_ok=True)
                env["EDGE_TRACEMALLOC_DIR"] = str(self.memory_dir)
                process = self.children.spawn([str(BENCH / "edge_tracemalloc.py")], env, stdout=self.edge_log)
            elif kind == "edge-asgi-send":
                process = self.children.spawn([str(BENCH / "edge_asgi_send.py")], env, stdout=self.edge_log)
            else:
                process = self.children.spawn(["-m", "sse_edge"], env, stdout=self.edge_log)
        elif kind == "baseline":
            # Consumers of a previous baseline linger for their inactive threshold (5 s), and
            # nats-server 2.15 allows 1,000 per stream: start with none.
            asyncio.run(wait_for_no_consumers(self.nats_url))
            # Its stalled consumers fill stderr with nats-py tracebacks: kept in a file, counted.
            process = self.children.spawn(
                [str(BENCH / "fanout_baseline.py"), "--port", str(port), "--nats-url", self.nats_url],
                stderr=self.baseline_log,
            )
        elif kind == "ceiling":
            process = self.children.spawn(
                [
                    str(BENCH / "fanout_ceiling.py"),
                    *("--port", str(port), "--rate", str(rate), "--resources", str(RESOURCES)),
                ]
            )
        else:
            raise ValueError(kind)
        wait_ready(port, process, kind)
        if kind == "edge" or kind in EDGE_VARIANTS:
            wait_for_feed(port)
        return Server(kind, process, port)

    @contextlib.contextmanager
    def server(self, kind: str, rate: float = 0, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
        server = self.start_server(kind, rate, extra_env)
        try:
            yield server
        finally:
            self.children.stop(server.process)

    @contextlib.contextmanager
    def publisher(self, rate: float, prefix: str = "events") -> Iterator[dict[str, Any]]:
        """Publishes while the block runs; the dict gets the published count and rate afterwards."""
        spec = {"url": self.nats_url, "rate": rate, "resources": RESOURCES, "prefix": prefix}
        process = self.children.spawn([str(BENCH / "nats_load.py"), "publish", json.dumps(spec)])
        read_json(process)
        outcome: dict[str, Any] = {}
        self.infra_pids.append(process.pid)
        try:
            yield outcome
        finally:
            self.infra_pids.remove(process.pid)
            with contextlib.suppress(OSError, RuntimeError):
                tell(process, "stop")
                result = read_json(process)
                outcome.update(result, rate=result["published"] / result["seconds"])
            self.children.stop(process)

    # -- load clients -----------------------------------------------------------------------

    def clients(
        self,
        port: int,
        paths: list[str],
        *,
        processes: int = 1,
        latency: bool = False,
        stall_paths: list[str] | None = None,
    ) -> list[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
        started = []
        for p in range(processes):
            spec = {
                "host": "127.0.0.1",
                "port": port,
                "paths": paths[p::processes],
                "latency": latency,
                "latency_file": str(self.workdir / f"latency-{p}.bin"),
                "stall_paths": (stall_paths or []) if p == 0 else [],
            }
            spec_file = self.workdir / f"load-{p}.json"
            spec_file.write_text(json.dumps(spec))
            started.append((self.children.spawn([str(BENCH / "sse_load.py"), str(spec_file)]), spec))
        failed: dict[str, int] = {}
        for process, _spec in started:
            hello = read_json(process)
            for error, count in hello["errors"].items():
                failed[error] = failed.get(error, 0) + count
        if failed:
            for process, _ in started:
                self.children.stop(process)
            raise RuntimeError(f"connections failed: {failed}")
        return started

    def measure(
        self,
        clients: list[tuple[subprocess.Popen[bytes], dict[str, Any]]],
        seconds: float,
        watch: int | None = None,
        probe: Callable[[], Any] | None = None,
        profile: str | None = None,
    ) -> dict[str, Any]:
        """Zero the counters, wait, and collect: events, bytes, closes, latencies, server CPU;
        `probe` runs at the end of the window, while the connections are still open."""
        for process, _ in clients:
            tell(process, "start")
        profiler = None
        if self.profile_dir is not None and profile:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            profiler = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    *("record", "--pid", str(watch), "--rate", "200", "--duration", str(int(seconds))),
                    *("--nonblocking", "--format", "raw", "-o", str(self.profile_dir / f"{profile}.txt")),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        cpu_before = cpu_seconds(watch) if watch else 0.0
        infra = [pid for pid in self.infra_pids if Path(f"/proc/{pid}").exists()]
        infra_cpu_before = sum(cpu_seconds(pid) for pid in infra)
        machine_before = machine_ticks()
        client_cpu_before = sum(cpu_seconds(process.pid) for process, _ in clients)
        time.sleep(seconds)
        cpu = (cpu_seconds(watch) - cpu_before) / seconds if watch else None
        infra_cpu = (sum(cpu_seconds(pid) for pid in infra) - infra_cpu_before) / seconds
        machine_busy = machine_busy_share(machine_before, machine_ticks())
        client_cpu = (sum(cpu_seconds(process.pid) for process, _ in clients) - client_cpu_before) / seconds
        totals: dict[str, Any] = {"events": 0, "bytes": 0, "heartbeats": 0, "closed": 0, "stalled": []}
        totals["probe"] = probe() if probe else None
        if profiler is not None:
            try:
                profiler.wait(30)
            except subprocess.TimeoutExpired:
                profiler.kill()
                profiler.wait()
        latencies = array("q")
        window = 0.0
        for process, spec in clients:
            tell(process, "stop")
            result = read_json(process)
            window = max(window, result["seconds"])
            for key in ("events", "bytes", "heartbeats", "closed"):
                totals[key] += result.get(key, 0)
            totals["stalled"] += result.get("stalled", [])
            path = Path(spec["latency_file"])
            if path.exists():
                latencies.frombytes(path.read_bytes())
                path.unlink()
            self.children.stop(process, grace=10)
        ordered = sorted(latencies)
        totals.update(
            seconds=window,
            rate=totals["events"] / window,
            samples=len(ordered),
            p50=percentile(ordered, 0.50),
            p99=percentile(ordered, 0.99),
            max=ordered[-1] / 1e6 if ordered else float("nan"),
            server_cpu=cpu,
            client_cpu=client_cpu,
            nats_and_publisher_cpu=infra_cpu,
            machine_busy=machine_busy,
        )
        return totals

    def bare_latency(self, rate: float, warmup: float, seconds: float, mode: str) -> dict[str, Any]:
        spec = {
            "url": self.nats_url,
            "resources": RESOURCES,
            "latency_file": str(self.workdir / "bare.bin"),
            "mode": mode,
        }
        subscriber = self.children.spawn([str(BENCH / "nats_load.py"), "subscribe", json.dumps(spec)])
        read_json(subscriber)
        with self.publisher(rate, prefix="bare" if mode == "core" else "events") as published:
            time.sleep(warmup)
            result = self.measure([(subscriber, spec)], seconds)
        result["offered"] = published.get("rate", rate)
        return result

    def record(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        shown = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}
        print("  " + json.dumps(shown), flush=True)


def paths_for(pattern: str, count: int) -> list[str]:
    if pattern == "all":
        return ["/api/v1/events"] * count
    return [f"/api/v1/events?resource_id=node-{i % RESOURCES}" for i in range(count)]


# -- scenarios ------------------------------------------------------------------------------


def fanout(run: Run, servers: list[str]) -> None:
    warmup, seconds = (1.0, 3.0) if run.quick else (2.0, 6.0)
    # Offered rates: all-subscribed, the same deliveries/s at both sizes, beyond what this machine
    # can write; spread, bounded by what one publisher and nats-server take in.
    cells = [("all", count, offered / count) for offered in run.all_offered for count in (100, 1000)]
    cells += [("spread", 100, run.spread_rate), ("spread", 1000, run.spread_rate)]
    print(f"fan-out: warm-up {warmup} s, window {seconds} s, cells (pattern, clients, events/s): {cells}")
    for pattern, count, rate in cells:
        per_event = count if pattern == "all" else count / RESOURCES
        for kind in servers:
            with run.server(kind, rate) as server:
                clients = run.clients(server.port, paths_for(pattern, count))
                if kind == "ceiling":
                    time.sleep(warmup)
                    result = run.measure(clients, seconds, watch=server.process.pid)
                    offered = rate
                else:
                    with run.publisher(rate) as published:
                        time.sleep(warmup)
                        edge = kind == "edge" or kind in EDGE_VARIANTS
                        writes_before = edge_writes(server.port) if edge else (0, 0)
                        result = run.measure(
                            clients,
                            seconds,
                            watch=server.process.pid,
                            profile=f"fanout-{pattern}-{count}-{rate:.0f}" if kind == "edge" else None,
                            probe=(lambda port=server.port: edge_writes(port)) if edge else None,
                        )
                    offered = published.get("rate", rate)
            run.record(
                {
                    "scenario": "fanout",
                    "pattern": pattern,
                    "clients": count,
                    "server": kind,
                    "nominal_rate": rate,
                    "events_per_s_in": offered,
                    "offered_deliveries_per_s": offered * per_event,
                    "deliveries_per_s": result["rate"],
                    # The edge's own count: writes to clients, and those straight to the transport.
                    "writes": result["probe"][0] - writes_before[0] if result["probe"] else None,
                    "window_s": seconds,
                    "server_cpu_per_write_us": (
                        1e6 * result["server_cpu"] * seconds / (result["probe"][0] - writes_before[0])
                        if result["probe"] and result["probe"][0] > writes_before[0]
                        else None
                    ),
                    "direct_writes": result["probe"][1] - writes_before[1] if result["probe"] else None,
                    "baseline_errors": run.baseline_errors() if kind == "baseline" else None,
                    "closed_by_server": result["closed"],
                    "server_cpu": result["server_cpu"],
                    "client_cpu": result["client_cpu"],
                    "nats_and_publisher_cpu": result["nats_and_publisher_cpu"],
                    "machine_busy": result["machine_busy"],
                }
            )


def latency(run: Run, servers: list[str]) -> None:
    warmup, seconds, rounds = (1.0, 3.0, 1) if run.quick else (2.0, 8.0, 2)
    rate, count = 10_000.0, 100
    print(
        f"latency: {rate:.0f} events/s over {RESOURCES} resources, {count} clients, window {seconds} s, "
        f"{rounds} round(s), each round: bare NATS, bare JetStream feed, then the servers"
    )
    for round_no in range(rounds):
        bare = run.bare_latency(rate, warmup, seconds, "core")
        feed = run.bare_latency(rate, warmup, seconds, "jetstream")
        for name, pattern, result in (
            ("bare NATS", f"{RESOURCES} core subscriptions, one per resource", bare),
            ("bare JetStream feed", "one nats-py ordered consumer on events.> (the live feed alone)", feed),
        ):
            run.record(
                {
                    "scenario": "latency",
                    "round": round_no,
                    "pattern": pattern,
                    "server": name,
                    "events_per_s_in": result["offered"],
                    "received_per_s": result["rate"],
                    "p50_ms": result["p50"],
                    "p99_ms": result["p99"],
                    "max_ms": result["max"],
                    "samples": result["samples"],
                    "machine_busy": result["machine_busy"],
                }
            )
        # All subscribed at 10,000 events/s is 1M deliveries/s: beyond this machine; once, last.
        patterns = ["spread", "all"] if round_no == rounds - 1 and not run.quick else ["spread"]
        for pattern in patterns:
            for kind in [s for s in servers if s != "ceiling"]:
                if kind == "baseline" and pattern == "all":
                    continue  # its consumers stall at 1M deliveries/s (issue 4): no latency to read
                with run.server(kind) as server:
                    clients = run.clients(server.port, paths_for(pattern, count), latency=True)
                    with run.publisher(rate) as published:
                        time.sleep(warmup)
                        result = run.measure(
                            clients,
                            seconds,
                            watch=server.process.pid,
                            profile=f"latency-{pattern}-{round_no}" if kind == "edge" else None,
                        )
                run.record(
                    {
                        "scenario": "latency",
                        "round": round_no,
                        "pattern": pattern,
                        "clients": count,
                        "server": kind,
                        "events_per_s_in": published.get("rate", rate),
                        "received_per_s": result["rate"],
                        "p50_ms": result["p50"],
                        "p99_ms": result["p99"],
                        "max_ms": result["max"],
                        "samples": result["samples"],
                        "p99_vs_bare": result["p99"] / bare["p99"],
                        "baseline_errors": run.baseline_errors() if kind == "baseline" else None,
                        "closed_by_server": result["closed"],
                        "server_cpu": result["server_cpu"],
                        "client_cpu": result["client_cpu"],
                        "nats_and_publisher_cpu": result["nats_and_publisher_cpu"],
                        "machine_busy": result["machine_busy"],
                    }
                )


def idle(run: Run, connections: int) -> None:
    hold = 6.0 if run.quick else 12.0
    heartbeat = 5
    print(f"idle: {connections:,} connections to one edge, heartbeat every {heartbeat} s, held {hold} s")
    with run.server("edge", extra_env={"SSE_EDGE_HEARTBEAT_INTERVAL": f"{heartbeat}s"}) as server:
        pid = server.process.pid
        # One connection first, so that what the first request imports and caches is not counted.
        run.measure(run.clients(server.port, paths_for("spread", 1)), 0.2)
        time.sleep(1)
        before = rss_kib(pid)
        snapshot(run, server, 0)
        started = time.monotonic()
        clients = run.clients(
            server.port, paths_for("spread", connections), processes=max(1, -(-connections // 5000))
        )
        opened_in = time.monotonic() - started
        result = run.measure(
            clients, hold, watch=pid, probe=lambda: (rss_kib(pid), snapshot(run, server, 1))[0]
        )
    after = result["probe"]
    if run.memory_dir is not None:
        print_memory_growth(run.memory_dir, connections)
    run.record(
        {
            "scenario": "idle",
            "server": "edge",
            "connections": connections,
            "opened_in_s": opened_in,
            "rss_before_kib": before,
            "rss_after_kib": after,
            "kib_per_connection": (after - before) / connections,
            "heartbeats_per_connection": result["heartbeats"] / connections,
            "closed_by_server": result["closed"],
            "server_cpu": result["server_cpu"],
            "client_cpu": result["client_cpu"],
            "nats_and_publisher_cpu": result["nats_and_publisher_cpu"],
            "machine_busy": result["machine_busy"],
        }
    )


def snapshot(run: Run, server: Server, number: int) -> None:
    """Under --memory: have the edge dump tracemalloc snapshot `number`, and wait for the file."""
    if run.memory_dir is None:
        return
    server.process.send_signal(signal.SIGUSR1)
    target = run.memory_dir / f"{number}.snapshot"
    deadline = time.monotonic() + 120
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.2)


def code_owner(filename: str) -> str:
    """The package an allocation's file belongs to (site-packages name, project package, stdlib file)."""
    parts = Path(filename).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1]
    for package in ("sse_edge", "eh_runtime", "eh_contracts"):
        if package in parts:
            return package
    return f"stdlib {Path(filename).parent.name}/{Path(filename).name}"


def print_memory_growth(folder: Path, connections: int, top: int = 15) -> None:
    """What the idle connections allocated (tracemalloc), per connection: by package, then by line."""
    first = tracemalloc.Snapshot.load(str(folder / "0.snapshot"))
    second = tracemalloc.Snapshot.load(str(folder / "1.snapshot"))
    by_line = second.compare_to(first, "lineno")
    total = sum(stat.size_diff for stat in by_line)
    print(f"tracemalloc: Python allocations grew {total / connections:,.0f} bytes per connection")
    by_package: dict[str, int] = {}
    for stat in second.compare_to(first, "filename"):
        owner = code_owner(stat.traceback[0].filename)
        by_package[owner] = by_package.get(owner, 0) + stat.size_diff
    for owner, size in sorted(by_package.items(), key=lambda item: -item[1])[:top]:
        print(f"  {size / connections:8,.0f} B/conn  {owner}")
    print("  by line:")
    for stat in by_line[:top]:
        frame = stat.traceback[0]
        where = f"{Path(frame.filename).parent.name}/{Path(frame.filename).name}:{frame.lineno}"
        per_connection = stat.size_diff / connections
        print(f"  {per_connection:8,.0f} B/conn  {stat.count_diff / connections:6.2f} blocks/conn  {where}")


def slow(run: Run) -> None:
    # The stalled socket first fills the kernel's buffers (the send buffer grows to 4 MiB here),
    # then the edge's own: the window must be long enough to hold the stall and its cut-off.
    warmup, seconds, rounds = (1.0, 8.0, 1) if run.quick else (2.0, 25.0, 2)
    rate, count = 1_000.0, 1000
    print(
        f"slow client: {count} clients spread over {RESOURCES} resources, {rate:.0f} events/s, window "
        f"{seconds} s, without and with one more client (all events) that never reads; {rounds} rounds "
        "alternating, a fresh edge for each"
    )
    for round_no in range(rounds):
        for stalled in (False, True):
            with run.server("edge") as server:
                clients = run.clients(
                    server.port,
                    paths_for("spread", count),
                    latency=True,
                    stall_paths=["/api/v1/events"] if stalled else None,
                )
                with run.publisher(rate) as published:
                    time.sleep(warmup)
                    result = run.measure(
                        clients,
                        seconds,
                        watch=server.process.pid,
                        profile=f"slow-{'stalled' if stalled else 'calm'}-{round_no}",
                        probe=lambda port=server.port: closed_by_reason(port),
                    )
            run.record(
                {
                    "scenario": "slow",
                    "round": round_no,
                    "server": "edge",
                    "clients": count,
                    "stalled_client": stalled,
                    "events_per_s_in": published.get("rate", rate),
                    "received_per_s": result["rate"],
                    "p50_ms": result["p50"],
                    "p99_ms": result["p99"],
                    "max_ms": result["max"],
                    "samples": result["samples"],
                    "stalled_state": result["stalled"],
                    "edge_closed_by_reason": result["probe"],
                    "closed_by_server": result["closed"],
                    "server_cpu": result["server_cpu"],
                    "client_cpu": result["client_cpu"],
                    "nats_and_publisher_cpu": result["nats_and_publisher_cpu"],
                    "machine_busy": result["machine_busy"],
                }
            )


def seconds_of(row: dict[str, Any]) -> float:
    return float(row.get("window_s") or 1.0)


def report(rows: list[dict[str, Any]]) -> None:
    """The table: each figure, its baselines from this run, the ratio and the goal."""
    lines = [
        "",
        "| figure | edge | baseline | ceiling / bare | ratios | goal |",
        "| --- | --- | --- | --- | --- | --- |",
    ]

    def find(**match: Any) -> dict[str, Any] | None:
        for row in rows:
            if all(row.get(k) == v for k, v in match.items()):
                return row
        return None

    def cost_line(label: str, found: dict[str, dict[str, Any] | None]) -> str:
        """Server CPU per delivery: steadier than deliveries/s when other work shares the cores."""
        cost = {
            k: (1e6 * v["server_cpu"] / v["deliveries_per_s"] if v and v["deliveries_per_s"] else None)
            for k, v in found.items()
        }
        shown = " | ".join("-" if c is None else f"{c:.2f} µs" for c in cost.values())
        ratio = (
            f"edge {cost['edge'] / cost['ceiling']:.1f}x the ceiling's"
            if cost["edge"] and cost["ceiling"]
            else ""
        )
        return f"| {label}: server CPU per delivery | {shown} | {ratio} | - |"

    def fanout_line(
        label: str, rate: dict[str, float | None], count: int, variant: float | None = None
    ) -> str:
        ratios = []
        if rate["edge"] and variant:
            ratios.append(f"{rate['edge'] / variant:.2f}x edge-asgi-send")
        if rate["edge"] and rate["baseline"]:
            ratios.append(f"{rate['edge'] / rate['baseline']:.1f}x baseline")
        elif rate["edge"] and rate["baseline"] == 0:
            ratios.append("baseline delivered nothing")
        if rate["edge"] and rate["ceiling"]:
            ratios.append(f"{rate['edge'] / rate['ceiling']:.2f}x ceiling")
        goal = ">= 10x baseline, >= 0.7x ceiling" if count == 1000 else "-"
        shown = " | ".join("-" if r is None else f"{r:,.0f}" for r in rate.values())
        return f"| {label} | {shown} | {', '.join(ratios)} | {goal} |"

    fanout_rows = [row for row in rows if row["scenario"] == "fanout"]
    cells = list(dict.fromkeys((r["pattern"], r["clients"], r["nominal_rate"]) for r in fanout_rows))
    for pattern, count, nominal in cells:
        found = {
            k: find(scenario="fanout", pattern=pattern, clients=count, nominal_rate=nominal, server=k)
            for k in SERVERS
        }
        some = next(v for v in found.values() if v)
        label = (
            f"fan-out deliveries/s, {count} clients, {pattern}, {some['events_per_s_in']:,.0f} ev/s in "
            f"({some['offered_deliveries_per_s']:,.0f}/s offered)"
        )
        variant = find(
            scenario="fanout", pattern=pattern, clients=count, nominal_rate=nominal, server="edge-asgi-send"
        )
        lines.append(
            fanout_line(
                label,
                {k: v["deliveries_per_s"] if v else None for k, v in found.items()},
                count,
                variant["deliveries_per_s"] if variant else None,
            )
        )
        lines.append(cost_line(f"... {count} clients, {pattern}, {some['events_per_s_in']:,.0f} ev/s", found))
        if variant and found["edge"] and variant["deliveries_per_s"] and found["edge"]["deliveries_per_s"]:
            edge_cost = found["edge"]["server_cpu"] / found["edge"]["deliveries_per_s"]
            variant_cost = variant["server_cpu"] / variant["deliveries_per_s"]
            lines.append(
                f"| ... edge-asgi-send (no direct transport writes): {variant['deliveries_per_s']:,.0f}/s, "
                f"{1e6 * variant_cost:.2f} µs server CPU per delivery | - | - | - | "
                f"edge's CPU per delivery {edge_cost / variant_cost:.2f}x | - |"
            )
        writers = [(k, r) for k, r in (("edge", found["edge"]), ("edge-asgi-send", variant)) if r]
        per_write = {k: r["server_cpu_per_write_us"] for k, r in writers if r.get("server_cpu_per_write_us")}
        if per_write:
            shown_writes = ", ".join(
                f"{k} {per_write[k]:.2f} µs ({r['direct_writes'] / r['writes']:.0%} direct, "
                f"{r['writes'] / seconds_of(r):,.0f} writes/s)"
                for k, r in writers
                if k in per_write
            )
            ratio = (
                f"edge {per_write['edge'] / per_write['edge-asgi-send']:.2f}x edge-asgi-send"
                if len(per_write) == 2
                else "-"
            )
            lines.append(f"| ... server CPU per write: {shown_writes} | - | - | - | {ratio} | - |")
    for pattern, count in dict.fromkeys((p, c) for p, c, _ in cells):
        levels = [r for r in fanout_rows if r["pattern"] == pattern and r["clients"] == count]
        if len({r["nominal_rate"] for r in levels}) < 2:
            continue
        best: dict[str, float | None] = {
            k: max((r["deliveries_per_s"] for r in levels if r["server"] == k), default=None) for k in SERVERS
        }
        lines.append(fanout_line(f"**best of the offered rates**, {count} clients, {pattern}", best, count))

    def latency_of(server: str, pattern: str | None = None) -> tuple[float, float, int] | None:
        """Median p50 and p99 over the rounds, and how many rounds."""
        found = [
            r
            for r in rows
            if r["scenario"] == "latency"
            and r["server"] == server
            and (pattern is None or r["pattern"] == pattern)
        ]
        if not found:
            return None
        return (
            statistics.median(r["p50_ms"] for r in found),
            statistics.median(r["p99_ms"] for r in found),
            len(found),
        )

    def shown(value: tuple[float, float, int] | None) -> str:
        return "-" if value is None else f"{value[0]:.2f} / {value[1]:.2f}"

    bare, feed = latency_of("bare NATS"), latency_of("bare JetStream feed")
    if feed:
        lines.append(
            f"| latency p50 / p99 ms (median of {feed[2]}), one ordered consumer, no edge (its live feed "
            f"alone) | - | - | {shown(feed)} | - | - |"
        )
    for pattern in ("spread", "all"):
        edge, base = latency_of("edge", pattern), latency_of("baseline", pattern)
        if not edge:
            continue
        per_round = [
            f"{r['p99_vs_bare']:.1f}x"
            for r in rows
            if r["scenario"] == "latency" and r["server"] == "edge" and r["pattern"] == pattern
        ]
        ratio = f"p99 {edge[1] / bare[1]:.1f}x bare (rounds: {', '.join(per_round)})" if bare else "-"
        lines.append(
            f"| latency p50 / p99 ms (median of {edge[2]}), 100 clients, {pattern}, 10,000 ev/s | "
            f"{shown(edge)} | {shown(base)} | {shown(bare)} | {ratio} | p99 <= 15 ms and <= 3x bare |"
        )
        variant = latency_of("edge-asgi-send", pattern)
        if variant:
            lines.append(
                f"| ... edge-asgi-send (no direct transport writes), {pattern} | {shown(variant)} | - | - | "
                f"edge's p99 {edge[1] / variant[1]:.2f}x | - |"
            )
    row = find(scenario="idle")
    if row:
        lines.append(
            f"| idle RSS per connection, {row['connections']:,} connections | "
            f"{row['kib_per_connection']:.1f} KiB | - | - | - | <= 12 KiB |"
        )
    slow_rows = [r for r in rows if r["scenario"] == "slow"]
    pairs = [
        (calm["p99_ms"], stalled["p99_ms"])
        for calm in slow_rows
        for stalled in slow_rows
        if calm["round"] == stalled["round"] and not calm["stalled_client"] and stalled["stalled_client"]
    ]
    if pairs:
        ratios = sorted(with_it / without for without, with_it in pairs)
        stalled_p99 = ", ".join(f"{w:.1f}" for _, w in pairs)
        calm_p99 = ", ".join(f"{c:.1f}" for c, _ in pairs)
        each = ", ".join(f"{r:.2f}" for r in ratios)
        lines.append(
            f"| others' p99 ms with one stalled client among 1,000 ({len(pairs)} paired rounds) | "
            f"{stalled_p99} | without: {calm_p99} | - | "
            f"median ratio {statistics.median(ratios):.2f}x (rounds: {each}) | <= 1.2x |"
        )
    print("\n".join(lines), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows and fewer idle connections")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"some of {','.join(SCENARIOS)}")
    parser.add_argument(
        "--servers", default=",".join(SERVERS), help=f"some of {','.join(SERVERS + EDGE_VARIANTS)}"
    )
    parser.add_argument("--idle-connections", type=int, default=None, help="default 15,000 (quick: 2,000)")
    parser.add_argument(
        "--all-offered",
        default="1e6,3e6",
        help="fan-out, all subscribed: deliveries/s offered, one cell per value (default 1e6,3e6)",
    )
    parser.add_argument("--spread-rate", type=float, default=20_000, help="fan-out, spread: events/s in")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record py-spy (raw collapsed stacks) of the edge in every measured window into this folder; "
        "the profiler takes CPU from the same 2 cores, so read such a run's figures as a profile only",
    )
    parser.add_argument(
        "--memory",
        type=Path,
        help="run the idle scenario's edge under tracemalloc, snapshots into this folder, and print what "
        "the connections allocated by line (its RSS figures are then inflated by tracemalloc)",
    )
    parser.add_argument(
        "--report", type=Path, help="print the table of a --json file of an earlier run; run nothing"
    )
    parser.add_argument("--json", type=Path, help="also write every row to this file")
    args = parser.parse_args()
    only = [s for s in args.only.split(",") if s]
    servers = [s for s in args.servers.split(",") if s]
    for name in only:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}")
    for name in servers:
        if name not in SERVERS + EDGE_VARIANTS:
            parser.error(f"unknown server {name!r}")
    if args.report:
        report(json.loads(args.report.read_text()))
        return
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}", flush=True)
    # asyncio.run turns Ctrl-C into a cancellation of its task, which nats-py can swallow; raising
    # KeyboardInterrupt from our own handler always reaches the `finally` that stops every child.
    # SIGTERM takes the same way out.
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    children = Children()
    try:
        with tempfile.TemporaryDirectory() as directory, NatsServer(Path(directory) / "js") as nats_server:
            asyncio.run(provision(nats_server.url))
            run = Run(
                nats_server.url,
                children,
                Path(directory),
                args.quick,
                edge_env={
                    # Every connection comes from 127.0.0.1: the limits must allow the whole load.
                    "SSE_EDGE_MAX_CONNECTIONS": "20000",
                    "SSE_EDGE_MAX_CONNECTIONS_PER_ADDRESS": "20000",
                },
                all_offered=tuple(float(v) for v in args.all_offered.split(",")),
                spread_rate=args.spread_rate,
                profile_dir=args.profile,
                memory_dir=args.memory,
            )
            assert nats_server.process is not None
            run.infra_pids.append(nats_server.process.pid)
            if "fanout" in only:
                fanout(run, servers)
            if "latency" in only:
                latency(run, servers)
            if "idle" in only:
                idle(run, args.idle_connections or (2000 if args.quick else 15_000))
            if "slow" in only:
                slow(run)
            report(run.rows)
            print(f"load average at the end: {os.getloadavg()[0]:.1f}")
            if args.json:
                args.json.write_text(json.dumps(run.rows, indent=1))
    finally:
        children.stop_all()


def interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


async def provision(url: str) -> None:
    client = await nats.connect(url)
    await ensure_events_stream(client.jetstream(), StreamSettings())
    await client.close()


async def wait_for_no_consumers(url: str, timeout: float = 30) -> None:
    client = await nats.connect(url)
    js = client.jetstream()
    for _ in range(int(timeout / 0.5)):
        if not (await js.stream_info(EVENTS_STREAM)).state.consumer_count:
            break
        await asyncio.sleep(0.5)
    await client.close()


if __name__ == "__main__":
    main()
