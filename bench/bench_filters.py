"""Expression filters (issue 15): what `filter=` costs, each figure next to its baseline in the same run.

1. `engine`: nanoseconds per evaluation of the same expressions on the same decoded events, our
   compiled functions (eh_contracts.expressions) against the `common-expression-language` binding
   (`cel.compile(...).execute(dict)`), ours also on an event of the other type (the fields
   missing), and what decoding one stored envelope (json.loads) costs.
2. `edge`: 1,000 clients, each holding one of 100 distinct expressions
   (`resource_id == "node-<r>" && data.cpu.usage > 10`, r = 0..99, ten clients each), at 1,000
   events/s over 100 resources; against the same clients with subject-only filters selecting the
   same events (`resource_id=node-<r>`). Deliveries/s and edge CPU for both; the amortized cost of
   one evaluation is the edge CPU the expressions add divided by the evaluations per second (100
   per event: every expression group is offered every event; the payload is decoded once).

Processes as in bench_fanout.py: nats-server, the edge (`python -m sse_edge`), the publisher
(bench/nats_load.py) and raw-socket load clients (bench/sse_load.py).

    flock /tmp/bench.lock .venv/bin/python bench/bench_filters.py
    flock /tmp/bench.lock .venv/bin/python bench/bench_filters.py --only engine
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
import timeit
import urllib.parse
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fanout import RESOURCES, Children, Run, interrupted, provision
from nats_load import PAYLOAD

from eh_contracts.expressions import compile_expression, envelope_scope
from eh_devtools.nats_server import NatsServer

EXPRESSIONS = [
    'resource_id == "node-7" && data.cpu.usage > 10',
    'data.level in ["warning", "critical"] && data.category == "resource"',
    "data.cpu.usage > 90",
    "data.memory.used / data.memory.total * 100 >= 40",
    '!has(data.gpu) && resource_id.startsWith("node-")',
]
ALERT = (
    b'{"id":"a1","event":"system_alert","timestamp":"2026-11-29T06:00:00Z","resource_id":"alert-1",'
    b'"data":{"level":"warning","category":"resource","title":"High CPU","message":"above 80%"}}'
)


def per_call_ns(call: Any, argument: Any, number: int) -> float:
    """The best of three runs of `number` calls, per call."""
    return min(timeit.repeat(lambda: call(argument), number=number, repeat=3)) / number * 1e9


def engine(rows: list[dict[str, Any]], quick: bool) -> None:
    import cel  # the binding: a dev dependency, measured here only

    number = 20_000 if quick else 100_000
    scope = envelope_scope()
    metrics = json.loads(PAYLOAD % (1, 7))
    alert = json.loads(ALERT)
    decode_ns = timeit.timeit(lambda: json.loads(PAYLOAD % (1, 7)), number=number) / number * 1e9
    print(
        f"engine: {number:,} evaluations per expression; json.loads of one stored envelope {decode_ns:.0f} ns"
    )
    for text in EXPRESSIONS:
        ours = compile_expression(text, scope)
        theirs = cel.compile(text)
        event = alert if "level" in text else metrics
        expected = ours.evaluate(event)
        try:
            answer = theirs.execute(event)
        except Exception as error:
            answer = f"error: {str(error)[:40]}"
        ours_ns = per_call_ns(ours.evaluate, event, number)
        # The edge offers an event to every expression its subjects select: most lack the field.
        other = metrics if event is alert else alert
        other_ns = per_call_ns(ours.evaluate, other, number)
        cel_ns = per_call_ns(theirs.execute, event, number // 10)
        row = {
            "scenario": "engine",
            "expression": text,
            "compiled_ns": ours_ns,
            "compiled_other_type_ns": other_ns,
            "cel_binding_ns": cel_ns,
            "cel_over_compiled": cel_ns / ours_ns,
            "compiled_answer": expected,
            "cel_answer": answer,
            "json_loads_ns": decode_ns,
        }
        rows.append(row)
        print("  " + json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()}))


def edge_paths(kind: str, clients: int) -> list[str]:
    paths = []
    for i in range(clients):
        r = i % RESOURCES
        if kind == "subjects":
            paths.append(f"/api/v1/events?resource_id=node-{r}")
        else:
            expression = f'resource_id == "node-{r}" && data.cpu.usage > 10'
            paths.append("/api/v1/events?filter=" + urllib.parse.quote(expression, safe=""))
    return paths


def edge(run: Run, rows: list[dict[str, Any]], clients: int, rate: float) -> None:
    warmup, seconds = (1.0, 4.0) if run.quick else (3.0, 10.0)
    print(f"edge: {clients} clients, {RESOURCES} distinct filters, {rate:.0f} events/s, window {seconds} s")
    results = {}
    for kind in ("subjects", "expressions", "subjects", "expressions"):  # twice, interleaved
        with run.server("edge") as server:
            load = run.clients(server.port, edge_paths(kind, clients))
            with run.publisher(rate) as published:
                time.sleep(warmup)
                result = run.measure(load, seconds, watch=server.process.pid)
        offered = published.get("rate", rate)
        row = {
            "scenario": "edge",
            "filters": kind,
            "clients": clients,
            "events_per_s_in": offered,
            "deliveries_per_s": result["rate"],
            "expected_deliveries_per_s": offered * clients / RESOURCES,
            "edge_cpu": result["server_cpu"],
            "closed_by_server": result["closed"],
            "machine_busy": result["machine_busy"],
        }
        if kind == "expressions" and "subjects" in results:
            base = results["subjects"]
            row["deliveries_vs_subjects"] = result["rate"] / base["deliveries_per_s"]
            evaluations = offered * RESOURCES
            row["added_cpu_us_per_evaluation"] = (
                (result["server_cpu"] - base["edge_cpu"]) / evaluations * 1e6 if evaluations else None
            )
        results[kind] = row
        rows.append(row)
        print("  " + json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="engine,edge")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    only = args.only.split(",")
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}", flush=True)
    rows: list[dict[str, Any]] = []
    if "engine" in only:
        engine(rows, args.quick)
    if "edge" in only:
        signal.signal(signal.SIGINT, interrupted)
        signal.signal(signal.SIGTERM, interrupted)
        children = Children()
        try:
            with (
                tempfile.TemporaryDirectory() as directory,
                NatsServer(Path(directory) / "js") as nats_server,
            ):
                asyncio.run(provision(nats_server.url))
                run = Run(
                    nats_server.url,
                    children,
                    Path(directory),
                    args.quick,
                    edge_env={
                        "SSE_EDGE_MAX_CONNECTIONS": "20000",
                        "SSE_EDGE_MAX_CONNECTIONS_PER_ADDRESS": "20000",
                    },
                )
                assert nats_server.process is not None
                run.infra_pids.append(nats_server.process.pid)
                edge(run, rows, args.clients, args.rate)
        finally:
            children.stop_all()
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
