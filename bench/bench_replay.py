"""Replay benchmarks for the SSE edge (issue 3), each figure next to its baseline in the same run.

1. Time to first event for `limit=100&resource_id=<one of 100>` on a stream of 1,000,000 events:
   from opening the connection to the first event frame, measured by a raw-socket client. Goal
   <= 50 ms. Shown beside the time of the bare JetStream round trip (a `stream_info` request) so
   the figure can be read against this machine's latency.
2. Resume throughput: a client reconnects with Last-Event-ID 100,000 events behind (no filter)
   and reads until `stream.caught_up`; events/s compared with a bare nats-py ordered push consumer
   reading the same 100,000 events in the same run. Goal >= 0.8x.

The edge runs as its own process (`python -m sse_edge`), as in production; the client counts
frames in raw bytes, parsing nothing per event.

    .venv/bin/python bench/bench_replay.py            # 1,000,000 events (fills in about a minute)
    .venv/bin/python bench/bench_replay.py --quick    # 200,000 events, fewer rounds
"""

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nats
from nats.js.api import ConsumerConfig, DeliverPolicy

from eh_contracts.stored_events import ENVELOPE_HEADER
from eh_devtools.nats_server import NatsServer, die_with_parent
from eh_runtime.settings import StreamSettings
from eh_runtime.stream import EVENTS_STREAM, ensure_events_stream

RESOURCES = 100
PAYLOAD = (
    b'{"id":"%s","event":"node_metrics","timestamp":"2026-11-28T12:00:00Z","resource_id":"node-%d",'
    b'"data":{"cpu":{"usage":45.5,"cores":8,"temperature":65},"memory":{"total":32768,"used":16384,'
    b'"free":16384},"disk":{"total":512000,"used":256000,"free":256000},"network":{"in_bytes":1024000,'
    b'"out_bytes":512000,"connections":100}}}'
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def fill(url: str, count: int) -> None:
    client = await nats.connect(url)
    js = client.jetstream(publish_async_max_pending=20_000)
    await ensure_events_stream(js, StreamSettings())
    started = time.perf_counter()
    batch = []
    for i in range(count):
        resource = i % RESOURCES
        batch.append(
            await js.publish_async(
                f"events.node_metrics.node-{resource}",
                PAYLOAD % (b"e%d" % i, resource),
                headers={"Nats-Msg-Id": f"e{i}", ENVELOPE_HEADER: "1"},  # stored as the collector does
            )
        )
        if len(batch) == 10_000:
            await asyncio.gather(*batch)
            batch.clear()
    await asyncio.gather(*batch)
    info = await js.stream_info(EVENTS_STREAM)
    print(f"stored {info.state.messages:,} events in {time.perf_counter() - started:.1f} s", flush=True)
    await client.close()


def open_stream(port: int, path: str, headers: str = "") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{headers}\r\n".encode())
    return sock


def time_to_first_event(port: int, path: str) -> float:
    started = time.perf_counter()
    sock = open_stream(port, path)
    received = b""
    while b"\nid: " not in received:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"stream closed before an event: {received[-300:]!r}")
        received += chunk
    elapsed = time.perf_counter() - started
    sock.close()
    return elapsed


def resume_rate(port: int, after_seq: int, expected: int) -> float:
    started = time.perf_counter()
    sock = open_stream(port, "/api/v1/events", f"Last-Event-ID: {after_seq}\r\n")
    count = 0
    tail = b""
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("stream closed during the replay")
        # A frame starts with "id: " at a line start; the tail keeps a split marker countable.
        data = tail + chunk
        count += data.count(b"\nid: ") - tail.count(b"\nid: ")
        tail = data[-8:]
        if b"stream.caught_up" in data:
            break
    elapsed = time.perf_counter() - started
    sock.close()
    if count != expected:
        raise RuntimeError(f"resumed {count} events, expected {expected}")
    return expected / elapsed


async def bare_consumer_rate(url: str, start_seq: int, expected: int) -> float:
    client = await nats.connect(url)
    js = client.jetstream()
    done = asyncio.Event()
    count = 0

    async def on_message(_msg: object) -> None:
        nonlocal count
        count += 1
        if count == expected:
            done.set()

    started = time.perf_counter()
    subscription = await js.subscribe(
        "events.>",
        stream=EVENTS_STREAM,
        cb=on_message,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        config=ConsumerConfig(opt_start_seq=start_seq),
    )
    await done.wait()
    elapsed = time.perf_counter() - started
    await subscription.unsubscribe()
    await client.close()
    return expected / elapsed


async def jetstream_round_trip(url: str, rounds: int = 50) -> float:
    client = await nats.connect(url)
    js = client.jetstream()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await js.stream_info(EVENTS_STREAM)
        times.append(time.perf_counter() - started)
    await client.close()
    return statistics.median(times)


def start_edge(nats_url: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "SSE_EDGE_PORT": str(port),
        "LOG_LEVEL": "warning",
        "AUTH_MODE": "none",
    }
    process = subprocess.Popen([sys.executable, "-m", "sse_edge"], env=env, preexec_fn=die_with_parent)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                wait_for_prefill(port, deadline)
                return process, port
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the edge did not become ready")


def wait_for_prefill(port: int, deadline: float) -> float:
    """Until the live feed has read what the edge fills its window of recent events with at start
    (`SSE_EDGE_RECENT_EVENTS_PREFILL`: the last 60 s, here the events just stored). The figures
    below are the steady state; the prefill's own time is returned and printed."""
    started = time.monotonic()
    lag = re.compile(r"^eventhandler_edge_feed_lag_events (\S+)$", re.MULTILINE)
    while time.monotonic() < deadline:
        found = lag.search(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
        if found is not None and float(found[1]) == 0:
            seconds = time.monotonic() - started
            print(f"edge ready; its window of recent events prefilled {seconds:.1f} s later")
            return seconds
        time.sleep(0.1)
    raise RuntimeError("the edge's live feed did not catch up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200,000 events and fewer rounds")
    args = parser.parse_args()
    total = 200_000 if args.quick else 1_000_000
    missed = 100_000
    rounds = 10 if args.quick else 30
    print(
        f"machine: {os.cpu_count()} cores; stream of {total:,} events over {RESOURCES} resources", flush=True
    )
    with tempfile.TemporaryDirectory() as directory, NatsServer(Path(directory) / "js") as server:
        asyncio.run(fill(server.url, total))
        edge, port = start_edge(server.url)
        try:
            rtt = asyncio.run(jetstream_round_trip(server.url))
            time_to_first_event(port, "/api/v1/events?limit=100&resource_id=node-7")  # warm-up
            firsts = [
                time_to_first_event(port, f"/api/v1/events?limit=100&resource_id=node-{r}")
                for r in range(rounds)
            ]
            p50, p95 = statistics.median(firsts), sorted(firsts)[int(len(firsts) * 0.95) - 1]
            print(
                f"time to first event, limit=100, one resource of {RESOURCES}: "
                f"p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms (goal <= 50 ms); "
                f"a bare JetStream API round trip: {rtt * 1000:.2f} ms ({p50 / rtt:.0f} round trips)",
                flush=True,
            )
            edge_rates, bare_rates = [], []
            for _ in range(3):
                bare_rates.append(asyncio.run(bare_consumer_rate(server.url, total - missed + 1, missed)))
                edge_rates.append(resume_rate(port, total - missed, missed))
            edge_rate, bare_rate = statistics.median(edge_rates), statistics.median(bare_rates)
            print(
                f"resume {missed:,} missed events: edge to an SSE client {edge_rate:,.0f} events/s, "
                f"bare nats-py ordered consumer {bare_rate:,.0f} events/s: "
                f"ratio {edge_rate / bare_rate:.2f}x (goal >= 0.8x)",
                flush=True,
            )
        finally:
            edge.terminate()
            edge.wait(10)


if __name__ == "__main__":
    main()
