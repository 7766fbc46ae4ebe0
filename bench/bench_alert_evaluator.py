"""How many node_metrics events per second the alert-evaluator keeps up with: 100 rules, 1,000 nodes.

    .venv/bin/python bench/bench_alert_evaluator.py            # 200,000 events
    .venv/bin/python bench/bench_alert_evaluator.py --quick    # 50,000 events

A nats-server of its own is started; the events are stored first, then the evaluator (the real
`ReplicaSupervisor` and `EvaluationStep`: lease, durable consumer, evaluation, alert publishing,
atomic state commits, acks) works through the backlog from the start of the stream. The rate is
events / time until the committed position reaches the last event.

Baseline, same process and same stream: a bare durable pull consumer with the same filter
subjects, fetch size and explicit acks, doing nothing with the events: the ceiling of reading
events with nats-py. The ratio evaluator / baseline says what the evaluation itself costs. The
engine alone (decoded events, no NATS) is reported too.
"""

import argparse
import asyncio
import json
import random
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from alert_evaluator.consumer import EVALUATED_SUBJECTS
from alert_evaluator.engine import AlertEngine
from alert_evaluator.evaluator_status import EvaluatorStatus
from alert_evaluator.replica import ReplicaSupervisor
from alert_evaluator.rule_index import TypeRules
from alert_evaluator.rules import RuleSet
from alert_evaluator.rules_file import parse_rules
from alert_evaluator.settings import EvaluatorSettings
from eh_devtools.nats_server import NatsServer
from eh_runtime.connection import NatsConnection
from eh_runtime.settings import AuthSettings, NatsSettings, StreamSettings
from eh_runtime.stream import EVENTS_STREAM, ensure_events_stream

NODES = 1000
RULES = 100
BATCH = 500
SAMPLE_INTERVAL_S = 10

# Five kinds of rule, twenty thresholds each: 100 rules that all read node_metrics.
RULE_KINDS = [
    ("cpu", "cpu.usage > {t}", lambda i: 60 + i),
    ("mem", "memory.used / memory.total * 100 > {t}", lambda i: 70 + i),
    ("disk", "disk.used / disk.total * 100 > {t}", lambda i: 70 + i),
    ("gputemp", "gpu.temperature > {t}", lambda i: 70 + i),
    ("gpu", "gpu.usage > {t} and cpu.usage > 50", lambda i: 60 + i),
]


def rules_yaml() -> bytes:
    lines = ["rules:"]
    for kind, condition, threshold in RULE_KINDS:
        for i in range(RULES // len(RULE_KINDS)):
            lines += [
                f"  - name: {kind}_{i}",
                "    event: node_metrics",
                f"    condition: {condition.format(t=threshold(i))}",
                "    for: 2m",
                "    level: warning",
                "    category: resource",
                f"    title: {kind} {i}",
                "    message: Node {resource_id} at {value} (threshold {threshold})",
            ]
    return "\n".join(lines).encode()


def events(count: int) -> list[tuple[str, bytes]]:
    """Samples of 1,000 nodes every 10 s of event time; 5 % of the nodes run hot, so that rules
    go pending, fire and resolve along the way."""
    rng = random.Random(42)
    start = datetime.now(UTC) - timedelta(seconds=SAMPLE_INTERVAL_S * (count // NODES + 1))
    hot = set(rng.sample(range(NODES), NODES // 20))
    out = []
    for n in range(count):
        node = n % NODES
        at = start + timedelta(seconds=SAMPLE_INTERVAL_S * (n // NODES))
        base = 85.0 if node in hot and (n // NODES) % 30 < 20 else 30.0
        data = {
            "cpu": {"usage": min(100.0, base + rng.random() * 10), "cores": 16, "temperature": 60.0},
            "memory": {"total": 65536.0, "used": 65536.0 * (base + rng.random() * 5) / 100},
            "disk": {"total": 1024000.0, "used": 512000.0},
            "gpu": {"usage": min(100.0, base + rng.random() * 5), "temperature": base},
        }
        envelope = {
            "id": f"m-{n}",
            "event": "node_metrics",
            "timestamp": at.isoformat().replace("+00:00", "Z"),
            "resource_id": f"node-{node:04d}",
            "data": data,
        }
        out.append((f"events.node_metrics.node-{node:04d}", json.dumps(envelope).encode()))
    return out


async def store(url: str, batch: list[tuple[str, bytes]]) -> int:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_events_stream(js, StreamSettings(duplicate_window=timedelta(seconds=1)))
    last = 0
    for start in range(0, len(batch), 5000):
        # As the collector stores them: under their own id (the evaluator skips other messages).
        futures = [
            await js.publish_async(s, p, stream=EVENTS_STREAM, headers={"Nats-Msg-Id": json.loads(p)["id"]})
            for s, p in batch[start : start + 5000]
        ]
        acks = await asyncio.gather(*futures)
        last = acks[-1].seq
    await nc.close()
    return last


async def bare_consumer(url: str, last_seq: int) -> float:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_consumer(
        EVENTS_STREAM,
        ConsumerConfig(
            durable_name="bench-baseline",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            filter_subjects=EVALUATED_SUBJECTS,
            max_ack_pending=2 * BATCH,
        ),
    )
    sub = await js.pull_subscribe_bind(durable="bench-baseline", stream=EVENTS_STREAM)
    started = time.perf_counter()
    seen = 0
    while seen < last_seq:
        for msg in await sub.fetch(BATCH, timeout=5):
            seen = msg.metadata.sequence.stream
            await msg.ack()
    elapsed = time.perf_counter() - started
    await nc.close()
    return elapsed


async def evaluator(url: str, last_seq: int) -> tuple[float, dict[str, object]]:
    settings = EvaluatorSettings(
        nats=NatsSettings(url=url),
        start_from="all",
        batch_size=BATCH,
        replica_id="bench",
        max_clock_skew=timedelta(hours=1),
        auth=AuthSettings(mode="none"),  # the evaluation path is measured, not token checks
    )
    connection = NatsConnection(settings.nats, "bench-evaluator")
    connection.start()
    await connection.wait_ready(10)
    supervisor = ReplicaSupervisor(settings, connection, parse_rules(rules_yaml()))
    view = EvaluatorStatus(supervisor)
    started = time.perf_counter()
    supervisor.start()
    while True:
        if view.status()["committed"] >= last_seq:
            break
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    status = view.status()
    await supervisor.stop(10)
    await connection.close()
    return elapsed, status


class OneByOneEngine(AlertEngine):
    """The baseline of the grouping: every rule evaluated on its own."""

    def index(self, rules: RuleSet) -> Mapping[str, TypeRules]:
        return {event_type: TypeRules((), type_rules) for event_type, type_rules in rules.by_type.items()}


def engine_only(batch: list[tuple[str, bytes]], engine_class: type[AlertEngine] = AlertEngine) -> float:
    engine = engine_class(parse_rules(rules_yaml()))
    decoded = []
    for subject, payload in batch:
        envelope = json.loads(payload)
        at = datetime.fromisoformat(envelope["timestamp"]).timestamp()
        decoded.append((subject.split(".")[2], at, envelope["data"]))
    started = time.perf_counter()
    for i, (resource, at, data) in enumerate(decoded):
        engine.observe("node_metrics", resource, at, data)
        if i % BATCH == BATCH - 1:
            engine.advance(engine.stream_time)
            engine.take_changes()
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 events instead of 200,000")
    parser.add_argument("--events", type=int, default=None)
    args = parser.parse_args()
    count = args.events or (50_000 if args.quick else 200_000)
    batch = events(count)
    with tempfile.TemporaryDirectory() as tmp, NatsServer(store_dir=Path(tmp) / "js") as server:
        last_seq = await store(server.url, batch)
        base_s = await bare_consumer(server.url, last_seq)
        eval_s, status = await evaluator(server.url, last_seq)
        # The evaluator's alerts went into the stream too; count them for the record.
        nc = await nats.connect(server.url)
        info = await nc.jetstream().stream_info(EVENTS_STREAM, subjects_filter="events.system_alert.>")
        await nc.close()
    engine_s = engine_only(batch)
    naive_s = engine_only(batch, OneByOneEngine)
    base_rate, eval_rate, engine_rate = count / base_s, count / eval_s, count / engine_s
    alerts = (info.state.messages or 0) - count
    print(f"events: {count} node_metrics over {NODES} nodes, {RULES} rules, fetch/commit batch {BATCH}")
    print(f"baseline  bare durable pull consumer + acks : {base_rate:10,.0f} events/s ({base_s:.2f} s)")
    print(f"evaluator supervisor+step, end to end     : {eval_rate:10,.0f} events/s ({eval_s:.2f} s)")
    print(f"engine    AlertEngine.observe, decoded input: {engine_rate:10,.0f} events/s ({engine_s:.2f} s)")
    naive_rate = count / naive_s
    print(f"engine    every rule evaluated one by one   : {naive_rate:10,.0f} events/s ({naive_s:.2f} s)")
    print(f"ratio evaluator / bare consumer: {eval_rate / base_rate:.2f}")
    print(f"ratio grouped engine / one-by-one engine: {engine_rate / naive_rate:.2f}")
    print(f"alert events published: {alerts}; under way at the end: {status['alerts']}")
    print(f"per event, end to end: {eval_s / count * 1e6:.0f} µs for {RULES} rules")


if __name__ == "__main__":
    asyncio.run(main())
