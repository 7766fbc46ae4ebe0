"""NATS sides of bench_fanout.py, each run as its own process.

`publish '<spec>'`: core-publishes ~300-byte `node_metrics` envelopes at a fixed rate, spread
round-robin over `resources` resource ids, on `<prefix>.node_metrics.node-<n>`: prefix `events`
lands them in the JetStream stream EVENTS (the server stores each message before any consumer
sees it; core publish keeps the publisher's own cost per event at a few microseconds, so that it
takes as little CPU as possible from the processes being measured), prefix `bare` goes to plain
core subscribers. Each envelope's `id` is `t<CLOCK_MONOTONIC ns>` taken just before the publish,
so that a receiver in another process can compute publish → receive. Paced in 2 ms ticks; runs
until `stop` (or EOF) on stdin, then prints `{"published": n, "seconds": s}`.

`subscribe '<spec>'`: the bare NATS baselines for latency, publish → receive per message, the
same start/stop protocol as sse_load.py: mode `core`, one connection with one core subscription
per resource (`bare.node_metrics.node-<n>`); mode `jetstream`, one nats-py ordered push consumer
on `events.>` of the stream, new events only, as the edge's live feed has (the edge's figure
minus this one is what the edge itself adds).
"""

import asyncio
import json
import re
import sys
import time
from array import array
from typing import Any

import nats
import uvloop
from nats.js.api import DeliverPolicy

PAYLOAD = (
    b'{"id":"t%d","event":"node_metrics","timestamp":"2026-11-29T06:00:00Z","resource_id":"node-%d",'
    b'"data":{"cpu":{"usage":45.5,"cores":8,"temperature":65},"memory":{"total":32768,"used":16384,'
    b'"free":16384},"disk":{"total":512000,"used":256000,"free":256000},"network":{"in_bytes":1024000,'
    b'"out_bytes":512000,"connections":100}}}'
)
# The mark our writers put on what they store (eh_contracts.stored_events): without it the edge
# checks each message in full, and skips these (they have no Nats-Msg-Id) as not events.
MARK = {"Eh-Envelope": "1"}
STAMP_RE = re.compile(rb'"id":"t(\d+)"')
TICK = 0.002


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def stdin_lines() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    return reader


async def publish(spec: dict[str, Any]) -> None:
    client = await nats.connect(spec["url"], pending_size=64 * 2**20)
    rate = float(spec["rate"])
    resources = int(spec["resources"])
    subjects = [f"{spec['prefix']}.node_metrics.node-{r}" for r in range(resources)]
    reader = await stdin_lines()
    stop = asyncio.ensure_future(reader.readline())
    emit({"publishing": rate})
    sent = 0
    started = time.monotonic()
    while not stop.done():
        due = int(rate * (time.monotonic() - started)) - sent
        if due > 0:
            stamp = time.monotonic_ns()
            for i in range(sent, sent + due):
                r = i % resources
                await client.publish(subjects[r], PAYLOAD % (stamp, r), headers=MARK)
            sent += due
        await asyncio.sleep(TICK)
    seconds = time.monotonic() - started
    await client.flush()
    await client.close()
    emit({"published": sent, "seconds": seconds})


def save_latencies(path: str, values: array) -> None:
    with open(path, "wb") as out:
        values.tofile(out)


async def subscribe(spec: dict[str, Any]) -> None:
    client = await nats.connect(spec["url"], pending_size=64 * 2**20)
    latencies = array("q")
    counted = 0

    async def on_message(msg: Any) -> None:
        nonlocal counted
        now = time.monotonic_ns()
        counted += 1
        found = STAMP_RE.search(msg.data)
        if found:
            latencies.append(now - int(found.group(1)))

    if spec.get("mode") == "jetstream":
        # What the edge's live feed is, without the edge: one ordered push consumer, new events.
        await client.jetstream().subscribe(
            "events.>",
            stream="EVENTS",
            cb=on_message,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
            idle_heartbeat=2.0,
        )
    else:
        for r in range(int(spec["resources"])):
            await client.subscribe(f"bare.node_metrics.node-{r}", cb=on_message)
    await client.flush()
    emit({"connected": int(spec["resources"]), "failed": 0, "errors": {}})
    reader = await stdin_lines()
    started = time.monotonic()
    while True:
        line = (await reader.readline()).strip()
        if line == b"start":
            latencies = array("q")
            counted = 0
            started = time.monotonic()
        elif line in (b"stop", b""):
            seconds = time.monotonic() - started
            save_latencies(spec["latency_file"], latencies)
            emit({"seconds": seconds, "events": counted, "samples": len(latencies)})
            break
    await client.close()


if __name__ == "__main__":
    command, raw = sys.argv[1], json.loads(sys.argv[2])
    uvloop.run(publish(raw) if command == "publish" else subscribe(raw))
