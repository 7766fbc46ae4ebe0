"""Snapshot benchmark for the SSE edge (issue 16): the latest metrics of every node, then live.

`GET /api/v1/events?type=node_metrics&snapshot=latest` on a stream of 1,000,000 `node_metrics`
events over 10,000 nodes: the latest event of each of the 10,000 nodes, then `stream.caught_up`.
Measured by a raw-socket client from opening the connection:

- to the first event frame (goal <= 100 ms),
- to `stream.caught_up`, all 10,000 frames counted (goal <= 1 s).

Baseline in the same run: a bare nats-py ordered push consumer with `DeliverPolicy.LAST_PER_SUBJECT`
on the same filter, from subscribing to its first and to its 10,000th message.

    .venv/bin/python bench/bench_snapshot.py            # 1,000,000 events (fills in about a minute)
    .venv/bin/python bench/bench_snapshot.py --quick    # 200,000 events, fewer rounds
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nats
from nats.js.api import DeliverPolicy

sys.path.insert(0, str(Path(__file__).parent))
from bench_replay import PAYLOAD, open_stream, start_edge

from eh_devtools.nats_server import NatsServer
from eh_runtime.settings import StreamSettings
from eh_runtime.stream import EVENTS_STREAM, ensure_events_stream

NODES = 10_000


async def fill(url: str, count: int) -> None:
    client = await nats.connect(url)
    js = client.jetstream(publish_async_max_pending=20_000)
    await ensure_events_stream(js, StreamSettings())
    started = time.perf_counter()
    batch = []
    for i in range(count):
        node = i % NODES
        batch.append(await js.publish_async(f"events.node_metrics.node-{node}", PAYLOAD % (b"e%d" % i, node)))
        if len(batch) == 10_000:
            await asyncio.gather(*batch)
            batch.clear()
    await asyncio.gather(*batch)
    info = await js.stream_info(EVENTS_STREAM)
    print(f"stored {info.state.messages:,} events in {time.perf_counter() - started:.1f} s", flush=True)
    await client.close()


def edge_snapshot(port: int) -> tuple[float, float]:
    """(seconds to the first event frame, seconds to stream.caught_up), counting NODES frames."""
    started = time.perf_counter()
    sock = open_stream(port, "/api/v1/events?type=node_metrics&snapshot=latest")
    first = 0.0
    count = 0
    tail = b""
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("stream closed during the snapshot")
        data = tail + chunk
        found = data.count(b"\nid: ") - tail.count(b"\nid: ")
        if found and not first:
            first = time.perf_counter() - started
        count += found
        tail = data[-20:]
        if b"stream.caught_up" in data:
            break
    done = time.perf_counter() - started
    sock.close()
    if count != NODES:
        raise RuntimeError(f"snapshot held {count} events, expected {NODES}")
    return first, done


async def bare_snapshot(url: str) -> tuple[float, float]:
    client = await nats.connect(url)
    js = client.jetstream()
    done = asyncio.Event()
    first = 0.0
    count = 0
    started = time.perf_counter()

    async def on_message(_msg: object) -> None:
        nonlocal count, first
        count += 1
        if count == 1:
            first = time.perf_counter() - started
        if count == NODES:
            done.set()

    subscription = await js.subscribe(
        "events.node_metrics.*",
        stream=EVENTS_STREAM,
        cb=on_message,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
    )
    await done.wait()
    elapsed = time.perf_counter() - started
    await subscription.unsubscribe()
    await client.close()
    return first, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200,000 events and fewer rounds")
    args = parser.parse_args()
    total = 200_000 if args.quick else 1_000_000
    rounds = 5 if args.quick else 10
    print(f"machine: {os.cpu_count()} cores; stream of {total:,} node_metrics events over {NODES:,} nodes")
    with tempfile.TemporaryDirectory() as directory, NatsServer(Path(directory) / "js") as server:
        asyncio.run(fill(server.url, total))
        edge, port = start_edge(server.url)
        try:
            edge_snapshot(port)  # warm-up
            edge_runs, bare_runs = [], []
            for _ in range(rounds):
                bare_runs.append(asyncio.run(bare_snapshot(server.url)))
                edge_runs.append(edge_snapshot(port))
            for name, runs in (("edge, SSE client", edge_runs), ("bare nats-py consumer", bare_runs)):
                firsts = [r[0] * 1000 for r in runs]
                dones = [r[1] * 1000 for r in runs]
                print(
                    f"{name}: first event p50 {statistics.median(firsts):.1f} ms (max {max(firsts):.1f}), "
                    f"all {NODES:,} p50 {statistics.median(dones):.0f} ms (max {max(dones):.0f})",
                    flush=True,
                )
            edge_done = statistics.median(r[1] for r in edge_runs)
            bare_done = statistics.median(r[1] for r in bare_runs)
            print(
                f"snapshot complete, edge / bare consumer: {edge_done / bare_done:.2f}x the time "
                f"(goals: first event <= 100 ms, complete <= 1000 ms)",
                flush=True,
            )
        finally:
            edge.terminate()
            edge.wait(10)


if __name__ == "__main__":
    main()
