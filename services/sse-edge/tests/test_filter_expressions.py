"""`filter=`: expression filters on the live stream, its replays and the history endpoint."""

import asyncio
import dataclasses
import json
import random

import pytest

from eh_contracts.examples import SEED_EXAMPLES
from eh_contracts.expressions import compile_expression, envelope_scope
from eh_contracts.subjects import SubjectFilter
from eh_devtools.pytest_plugin import store_event
from eh_devtools.sse_client import next_event, read_sse
from sse_edge.live import fanout
from sse_edge.live.fanout import FanoutIndex
from sse_edge.live.filter_group import FramedEvent
from sse_edge.live.subscriber import Subscriber

CRITICAL = 'data.level in ["error", "critical"] && data.category == "resource"'
HOT = "data.cpu.usage > 90"


def alert(n: int, level: str, category: str) -> dict:
    return SEED_EXAMPLES["system_alert"] | {
        "id": f"alert-{n}",
        "resource_id": f"alert-{n % 5}",
        "data": SEED_EXAMPLES["system_alert"]["data"] | {"level": level, "category": category},
    }


def metrics(n: int, usage: float) -> dict:
    return SEED_EXAMPLES["node_metrics"] | {
        "id": f"metrics-{n}",
        "resource_id": f"node-{n % 3}",
        "data": {"cpu": {"usage": usage, "cores": 8}},
    }


def mixed_events(rng: random.Random, count: int) -> list[dict]:
    events = []
    for n in range(count):
        if rng.random() < 0.5:
            level = rng.choice(["info", "warning", "error", "critical"])
            events.append(alert(n, level, rng.choice(["resource", "pipeline"])))
        else:
            events.append(metrics(n, rng.choice([10.0, 50.5, 90.0, 95.5, 99.0])))
    return events


def is_critical(e: dict) -> bool:
    return (
        e["event"] == "system_alert"
        and e["data"]["level"] in ("error", "critical")
        and e["data"]["category"] == "resource"
    )


def is_hot(e: dict) -> bool:
    return e["event"] == "node_metrics" and e["data"]["cpu"]["usage"] > 90


async def collect_events(messages, count: int, timeout: float = 10.0) -> list:
    got = []
    async with asyncio.timeout(timeout):
        while len(got) < count:
            message = await next_event(messages)
            if not message.event.startswith("stream."):
                got.append(message)
    return got


# --- live ------------------------------------------------------------------------------------


@pytest.mark.nats
async def test_live_streams_get_exactly_the_events_their_expression_selects(edge, js):
    events = mixed_events(random.Random(1), 120)
    wanted = {
        name: [e["id"] for e in events if test(e)] for name, test in (("c", is_critical), ("h", is_hot))
    }
    async with (
        edge.stream("GET", "/api/v1/events", params={"filter": CRITICAL}) as critical,
        edge.stream("GET", "/api/v1/events", params={"filter": HOT, "type": "node_metrics"}) as hot,
    ):
        critical_messages, hot_messages = read_sse(critical), read_sse(hot)
        for messages in (critical_messages, hot_messages):
            ready = await next_event(messages)
            assert ready.event == "stream.ready"
        assert ready.json()["filter"] == HOT
        for e in events:
            await store_event(js, e)
        await store_event(js, alert(999, "critical", "resource"))  # a last one for both to wait on
        await store_event(js, metrics(999, 99.0))
        got_critical = await collect_events(critical_messages, len(wanted["c"]) + 1)
        got_hot = await collect_events(hot_messages, len(wanted["h"]) + 1)
    assert [json.loads(m.data)["id"] for m in got_critical] == [*wanted["c"], "alert-999"]
    assert [json.loads(m.data)["id"] for m in got_hot] == [*wanted["h"], "metrics-999"]


def test_one_evaluation_per_event_per_distinct_expression_and_a_parse_only_when_needed(monkeypatch):
    calls = {"evaluate": 0, "parse": 0}
    scope = envelope_scope()

    def counted(text: str):
        compiled = compile_expression(text, scope)
        original = compiled.evaluate

        def evaluate(root):
            calls["evaluate"] += 1
            return original(root)

        return dataclasses.replace(compiled, evaluate=evaluate)

    original_parse = fanout.parse_envelope

    def parse(payload: bytes):
        calls["parse"] += 1
        return original_parse(payload)

    monkeypatch.setattr(fanout, "parse_envelope", parse)
    index = FanoutIndex(1 << 20)
    # 3 distinct expressions, each held by clients with different subject filters (other groups).
    subject_filters = [
        SubjectFilter(),
        SubjectFilter.of(["node_metrics"], []),
        SubjectFilter.of([], ["node-1"]),
    ]
    expressions = [counted(HOT), counted("data.cpu.usage < 20"), counted('resource_id == "node-1"')]
    clients = []
    for expression in expressions:
        for subject_filter in subject_filters:
            for _ in range(4):
                client = Subscriber(subject_filter, 1 << 20, "test", None, expression)
                index.add(client)
                clients.append(client)
    plain = Subscriber(SubjectFilter(), 1 << 20, "test")
    index.add(plain)
    assert index.group_count == 10
    payload = json.dumps(metrics(1, 95.5) | {"resource_id": "node-1"}).encode()
    index.publish("node_metrics", "node-1", FramedEvent(1, b"frame", None, 0.0), payload)
    assert calls == {"evaluate": 3, "parse": 1}
    # An event no expression group is offered is never parsed.
    index.publish("system_log", "log-1", FramedEvent(2, b"frame2", None, 0.0), b"{}")
    assert calls["parse"] == 2  # the groups without subject filters are offered everything
    only_typed = FanoutIndex(1 << 20)
    only_typed.add(Subscriber(SubjectFilter.of(["node_metrics"], []), 1 << 20, "t", None, expressions[0]))
    only_typed.add(Subscriber(SubjectFilter(), 1 << 20, "t"))
    only_typed.publish("system_log", "log-1", FramedEvent(3, b"frame3", None, 0.0), b"{}")
    assert calls["parse"] == 2
    for client in clients:
        client.release(0)
    delivered = {id(c): c.take()[1] for c in clients}
    hot_clients = [c for c in clients if c.expression is not None and c.expression.text == HOT]
    assert all(delivered[id(c)] == 1 for c in hot_clients)


# --- history -------------------------------------------------------------------------------


@pytest.mark.nats
async def test_replays_keep_only_what_the_expression_selects(edge, js):
    events = mixed_events(random.Random(2), 150)
    stored = [await store_event(js, e) for e in events]
    critical = [seq for seq, e in zip(stored, events, strict=True) if is_critical(e)]
    # limit: the last N *matching* events, found past any number of events that do not match.
    async with edge.stream("GET", "/api/v1/events", params={"filter": CRITICAL, "limit": 5}) as response:
        got = await collect_events(read_sse(response), 5)
    assert [int(m.id) for m in got] == critical[-5:]
    # resume: everything matching after the id.
    resume_from = critical[3]
    headers = {"Last-Event-ID": str(resume_from)}
    async with edge.stream("GET", "/api/v1/events", params={"filter": CRITICAL}, headers=headers) as response:
        got = await collect_events(read_sse(response), len(critical) - 4)
    assert [int(m.id) for m in got] == critical[4:]
    # snapshot: the latest event of each subject, if it matches.
    latest: dict[tuple[str, str], tuple[int, dict]] = {}
    for seq, e in zip(stored, events, strict=True):
        latest[(e["event"], e["resource_id"])] = (seq, e)
    snapshot = sorted(seq for seq, e in latest.values() if is_critical(e))
    async with edge.stream(
        "GET", "/api/v1/events", params={"filter": CRITICAL, "snapshot": "latest"}
    ) as response:
        messages = read_sse(response)
        got = []
        async with asyncio.timeout(10):
            while (message := await next_event(messages)).event != "stream.caught_up":
                if not message.event.startswith("stream."):
                    got.append(int(message.id))
    assert got == snapshot


@pytest.mark.nats
async def test_the_history_endpoint_pages_through_matching_events(edge, js):
    events = mixed_events(random.Random(3), 100)
    stored = [await store_event(js, e) for e in events]
    hot = [seq for seq, e in zip(stored, events, strict=True) if is_hot(e)]
    for order, expected in (("asc", hot), ("desc", hot[::-1])):
        seen: list[int] = []
        params = {"filter": HOT, "type": "node_metrics", "limit": 7, "order": order}
        while True:
            page = (await edge.get("/api/v1/events/history", params=params)).json()
            seen += [e["seq"] for e in page["events"]]
            if page["next"] is None:
                break
            params["cursor"] = page["next"]
        assert seen == expected
    # A cursor belongs to its filter.
    first = (await edge.get("/api/v1/events/history", params={"filter": HOT, "limit": 1})).json()
    other = await edge.get(
        "/api/v1/events/history", params={"filter": "data.cpu.usage > 1", "cursor": first["next"]}
    )
    assert other.status_code == 400


# --- errors --------------------------------------------------------------------------------


@pytest.mark.nats
@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/events/history"])
@pytest.mark.parametrize(
    ("params", "kind", "column", "message"),
    [
        ({"filter": "data.cpu.usage >"}, "filter_syntax", 17, "expected a field, a number"),
        ({"filter": "data.level = 1"}, "filter_syntax", 12, "unexpected character '='"),
        (
            {"filter": "data.cpu.usage > 1", "type": "node_status"},
            "filter_unknown_field",
            1,
            "has no field 'cpu'",
        ),
        ({"filter": 'data.new_state == "ofline"'}, "filter_type", 19, "not a possible value"),
        ({"filter": "x" * 2001}, "filter_too_long", 2001, "at most 2000"),
        ({"filter": "(" * 30 + "true" + ")" * 30}, "filter_too_deep", 25, "at most 24 levels"),
        (
            {"filter": "id in [" + ",".join('"a"' for _ in range(101)) + "]"},
            "filter_too_many_values",
            None,
            "",
        ),
    ],
)
async def test_a_bad_filter_is_a_422_naming_the_parameter_and_the_column(
    edge, path, params, kind, column, message
):
    response = await edge.get(path, params=params)
    assert response.status_code == 422
    (detail,) = response.json()["detail"]
    assert (detail["loc"][-1], detail["type"]) == ("filter", kind)
    if column is not None:
        assert detail["column"] == column
    assert message in detail["msg"]
