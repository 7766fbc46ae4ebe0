"""The CPU one resume from memory costs the edge, end to end (issue 15, reconnection storms).

One edge with its window of recent events filled (publisher at 1,000 events/s over 100 resources
for a few seconds, then stopped), then N resumes, a few at a time: each a new connection asking
`resource_id=node-<i % 100>` with a Last-Event-ID 5,000 events back (~50 events to send, as in
`bench_storm.py`), read until `stream.caught_up`, then closed. The figure is the edge's CPU time
over the resumes divided by N: the accept, the request through uvicorn and FastAPI, the window's
selection, the one write, and the close.

Baselines in the same run, on the same edge process: `GET /healthz` (a trivial FastAPI route
through the same middleware, also a new connection each) — and, with `--old DIR`, the same resumes
against the edge of another checkout (e.g. `git worktree add DIR <commit>`), run from its sources.

    .venv/bin/python bench/bench_resume.py                        # 3,000 resumes
    .venv/bin/python bench/bench_resume.py --old /tmp/edge-before --profile /tmp/resume-profile
"""

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fanout import CLK_TCK, Children, Run, Server, child_setup, provision
from bench_storm import edge_server, stream_state

from eh_devtools.nats_server import NatsServer

CAUGHT_UP = b"event: stream.caught_up"


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


SOURCES = ("services/sse-edge/src", "libs/runtime/src", "libs/contracts/src")


async def one_request(port: int, request: bytes, until: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    seen = b""
    try:
        while until not in seen:
            chunk = await reader.read(1 << 16)
            if not chunk:
                raise ConnectionError(f"closed before {until!r}: {seen[:80]!r}")
            seen = seen[-64:] + chunk if seen.startswith(b"HTTP/1.1 200") else seen + chunk
            if seen.startswith(b"HTTP/1.1 ") and not seen.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(seen[:200].decode(errors="replace"))
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def requests(port: int, make: Any, count: int, concurrency: int, until: bytes) -> None:
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            await one_request(port, make(i), until)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def measure(
    server: Server, make: Any, count: int, concurrency: int, until: bytes, profile: Path | None
) -> float:
    """Edge CPU microseconds per request."""
    asyncio.run(requests(server.port, make, min(200, count), concurrency, until))  # warm up
    profiler = None
    if profile is not None:
        profiler = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                *("record", "--pid", str(server.process.pid), "--rate", "1000", "--nonblocking"),
                *("--format", "raw", "-o", str(profile)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=child_setup,
        )
        time.sleep(1)
    user, system = cpu_times(server.process.pid)
    asyncio.run(requests(server.port, make, count, concurrency, until))
    user_after, system_after = cpu_times(server.process.pid)
    cpu = user_after - user + system_after - system
    print(f"    {(system_after - system) / count * 1e6:.0f} us of it in the kernel", flush=True)
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(30)
    return cpu / count * 1e6


@contextlib.contextmanager
def edge_from(run: Run, source: Path | None) -> Iterator[Server]:
    env = {"SSE_EDGE_RECENT_EVENTS_BYTES": "64MiB"}
    if source is not None:
        # Ahead of the virtualenv's editable installs: the other checkout's packages win.
        env["PYTHONPATH"] = os.pathsep.join(str(source / part) for part in SOURCES)
    with edge_server(run, env) as server:
        yield server


def resume_request(last_event_id: int) -> Any:
    def make(i: int) -> bytes:
        return (
            f"GET /api/v1/events?resource_id=node-{i % 100} HTTP/1.1\r\nHost: bench\r\n"
            f"Accept: text/event-stream\r\nLast-Event-ID: {last_event_id}\r\n\r\n"
        ).encode()

    return make


def health_request(_i: int) -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resumes", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--behind", type=int, default=5000, help="events behind the stream's end")
    parser.add_argument("--rounds", type=int, default=2, help="alternating edges, for the spread")
    parser.add_argument("--old", type=Path, help="another checkout whose edge to measure alongside")
    parser.add_argument("--profile", type=Path, help="py-spy raw profiles of each edge's resumes here")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}", flush=True)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    children = Children()
    edges: list[tuple[str, Path | None]] = [("edge", None)]
    if args.old:
        edges.append(("old", args.old.resolve()))
    results: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as directory, NatsServer(Path(directory) / "js") as nats_server:
            asyncio.run(provision(nats_server.url))
            run = Run(
                nats_server.url,
                children,
                Path(directory),
                False,
                edge_env={
                    "SSE_EDGE_RECENT_EVENTS_PREFILL": "600s",
                    # Closed streams are released as the edge notices: no limit on the way.
                    "SSE_EDGE_MAX_CONNECTIONS": "100000",
                    "SSE_EDGE_MAX_CONNECTIONS_PER_ADDRESS": "100000",
                },
            )
            with run.publisher(1000.0):
                time.sleep(args.behind / 1000.0 + 2)
            last_seq, _ = asyncio.run(stream_state(run.nats_url))
            resume = resume_request(max(0, last_seq - args.behind))
            for round_number in range(args.rounds):
                for name, source in edges:
                    with edge_from(run, source) as server:
                        time.sleep(1)  # the prefill
                        profile = None
                        if args.profile and round_number == 0:
                            profile = args.profile / f"resume-{name}.txt"
                        per_resume = measure(
                            server, resume, args.resumes, args.concurrency, CAUGHT_UP, profile
                        )
                        per_health = measure(
                            server, health_request, args.resumes, args.concurrency, b"\r\n\r\n", None
                        )
                    results.setdefault(f"{name} resume", []).append(per_resume)
                    results.setdefault(f"{name} healthz", []).append(per_health)
                    print(
                        f"  round {round_number} {name}: {per_resume:.0f} us per resume, "
                        f"{per_health:.0f} us per /healthz ({per_resume / per_health:.2f}x)",
                        flush=True,
                    )
    finally:
        children.stop_all()
    best = {key: min(values) for key, values in results.items()}
    print(json.dumps({key: round(value, 1) for key, value in best.items()}))
    edge, health = best["edge resume"], best["edge healthz"]
    print(f"edge: {edge:.0f} us per resume, {edge / health:.2f}x /healthz, {edge - health:.0f} us more")
    if args.old:
        print(
            f"old:  {best['old resume']:.0f} us per resume; edge / old: "
            f"{best['edge resume'] / best['old resume']:.2f}x"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
