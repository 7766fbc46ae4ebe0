import asyncio
import copy
import json

import pytest

from collector.app import create_app
from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.pytest_plugin import serving
from eh_runtime.stream import EVENTS_STREAM

pytestmark = pytest.mark.nats

NODE_UP = SEED_EXAMPLES["node_status"]
METRICS = SEED_EXAMPLES["node_metrics"]


async def stored_messages(js, subject="events.>"):
    """Every message stored in EVENTS on `subject`, read back by sequence."""
    info = await js.stream_info(EVENTS_STREAM)
    if info.state.messages == 0:
        return []
    messages = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        message = await js.get_msg(EVENTS_STREAM, seq)
        if subject == "events.>" or message.subject == subject:
            messages.append(message)
    return messages


async def test_one_event_is_stored_on_its_subject_with_its_id_as_msg_id(collector, js):
    response = await collector.post("/api/v1/events", json=NODE_UP | {"id": "evt-1"})
    assert response.status_code == 202
    assert response.json() == {
        "stored": 1,
        "duplicates": 0,
        "unchanged": 0,
        "invalid": 0,
        "failed": 0,
        "events": [{"index": 0, "status": "stored", "id": "evt-1", "seq": 1}],
    }
    (message,) = await stored_messages(js)
    assert message.subject == "events.node_status.node-001"
    assert message.seq == 1
    assert message.headers["Nats-Msg-Id"] == "evt-1"
    assert json.loads(message.data) == NODE_UP | {"id": "evt-1"}


async def test_an_array_is_stored_in_order(collector, js):
    batch = [METRICS | {"resource_id": f"node-{i:03}"} for i in range(50)]
    response = await collector.post("/api/v1/events", json=batch)
    assert response.status_code == 202
    results = response.json()["events"]
    assert [r["index"] for r in results] == list(range(50))
    assert [r["seq"] for r in results] == list(range(1, 51))
    stored = await stored_messages(js)
    assert [m.subject for m in stored] == [f"events.node_metrics.node-{i:03}" for i in range(50)]
    assert [json.loads(m.data)["id"] for m in stored] == [r["id"] for r in results]


async def test_missing_id_and_timestamp_are_filled(collector, js):
    event = {k: v for k, v in NODE_UP.items() if k != "timestamp"}
    response = await collector.post("/api/v1/events", json=event)
    (result,) = response.json()["events"]
    (message,) = await stored_messages(js)
    stored = json.loads(message.data)
    assert stored["id"] == result["id"] == message.headers["Nats-Msg-Id"]
    assert stored["timestamp"].endswith("Z")


async def test_a_retried_post_with_the_same_id_is_stored_once(collector, js):
    batch = [NODE_UP | {"id": "retry-1"}, METRICS | {"id": "retry-2"}]
    first = await collector.post("/api/v1/events", json=batch)
    again = await collector.post("/api/v1/events", json=batch)
    assert first.json()["stored"] == 2
    assert again.status_code == 202
    assert again.json()["stored"] == 0
    assert again.json()["duplicates"] == 2
    assert [e["status"] for e in again.json()["events"]] == ["duplicate", "duplicate"]
    assert [e["seq"] for e in again.json()["events"]] == [e["seq"] for e in first.json()["events"]]
    assert len(await stored_messages(js)) == 2


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (NODE_UP | {"event": "node_reboot"}, "event", "unknown event type 'node_reboot'"),
        (NODE_UP | {"resource_id": "node.1"}, "resource_id", "contains '.'"),
        (NODE_UP | {"resource_id": "node-*"}, "resource_id", "contains '*'"),
        ({k: v for k, v in NODE_UP.items() if k != "data"}, "data", "Field required"),
        (NODE_UP | {"timestamp": "20 March 2024"}, "timestamp", "valid datetime"),
        (METRICS | {"data": {"cpu": {"usage": "high"}}}, "data.cpu.usage", "valid number"),
        ([NODE_UP | {"data": {"new_state": 1}}], "[0].data.new_state", "Input should be"),
        ([], "body", "no events"),
        ("just a string", "body", "expected an event object or an array of events"),
    ],
)
async def test_a_body_without_any_valid_event_gets_422_naming_the_field(collector, js, body, field, message):
    response = await collector.post("/api/v1/events", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [d["field"] for d in detail] == [field]
    assert message in detail[0]["msg"]
    assert await stored_messages(js) == []


async def test_one_bad_event_in_a_thousand_is_reported_and_the_others_are_stored(collector, js):
    batch = [METRICS | {"id": f"m-{i}", "resource_id": f"node-{i % 10}"} for i in range(1000)]
    batch[500] = METRICS | {"data": {"cpu": {"usage": 180.0}}}
    response = await collector.post("/api/v1/events", json=batch)
    assert response.status_code == 207
    body = response.json()
    assert (body["stored"], body["invalid"]) == (999, 1)
    assert [d["loc"] for d in body["detail"]] == [[500, "data", "cpu", "usage"]]
    bad = body["events"][500]
    assert bad["status"] == "invalid"
    assert bad["errors"][0]["field"] == "[500].data.cpu.usage"
    assert "id" not in bad
    assert "seq" not in bad
    assert [e["index"] for e in body["events"]] == list(range(1000))
    stored = await stored_messages(js)
    assert len(stored) == 999
    assert "m-500" not in {json.loads(m.data)["id"] for m in stored}


async def test_an_array_of_items_that_are_not_events_is_answered_per_item(collector, js):
    response = await collector.post("/api/v1/events", json=[METRICS, 7, {"event": "node_metrics"}])
    assert response.status_code == 207
    assert [e["status"] for e in response.json()["events"]] == ["stored", "invalid", "invalid"]
    assert [d["field"] for d in response.json()["detail"]] == ["[1]", "[2].resource_id", "[2].data"]


async def test_malformed_json_is_a_400(collector):
    response = await collector.post(
        "/api/v1/events", content=b'{"event": "node_status", ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    (detail,) = response.json()["detail"]
    assert detail["type"] == "json_invalid"
    assert "line 1 column" in detail["msg"]


async def test_other_content_types_are_a_415(collector):
    response = await collector.post(
        "/api/v1/events", content=b"event=node_status", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]


async def test_a_body_over_the_limit_is_a_413_and_nothing_is_stored(nats_url, js, collector_settings):
    async with serving(create_app(collector_settings(nats_url, max_body_bytes=2048))) as client:
        big = [METRICS] * 20
        declared = await client.post("/api/v1/events", json=big)
        assert declared.status_code == 413
        assert "COLLECTOR_MAX_BODY_BYTES" in declared.json()["detail"]

        async def chunks():
            for _ in range(10):
                yield b" " * 1000  # no Content-Length: the limit applies while reading

        streamed = await client.post(
            "/api/v1/events", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        small = await client.post("/api/v1/events", json=METRICS)
        assert small.status_code == 202
    assert len(await stored_messages(js)) == 1


async def test_nothing_a_client_sends_is_a_500(collector):
    for body in [b"\xff\xfe", b"[1, 2]", b'{"event": null}', b"[" * 5000, b'{"data": {"a": ' + b"[" * 300]:
        response = await collector.post(
            "/api/v1/events", content=body, headers={"content-type": "application/json"}
        )
        assert 400 <= response.status_code < 500, body[:40]


async def test_503_with_retry_after_while_nats_is_down(nats_server, collector_settings):
    async with serving(create_app(collector_settings(nats_server.url))) as client:
        nats_server.stop()
        event = copy.deepcopy(NODE_UP) | {"id": "while-down"}
        response = await client.post("/api/v1/events", json=event)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        body = response.json()
        assert "retry with the same event ids" in body["detail"]
        assert body["events"][0]["id"] == "while-down"
        assert body["events"][0]["status"] == "failed"
        assert (body["code"], body["request_id"]) == ("store_unavailable", response.headers["x-request-id"])
        assert "nats" not in response.text.lower()
        assert "jetstream" not in response.text.lower()
        metrics = await client.post("/api/v1/events", json=[METRICS | {"id": "m-down"}])
        assert metrics.status_code == 503
        assert metrics.json()["events"][0]["status"] == "failed"
        nats_server.start()
        deadline = asyncio.get_running_loop().time() + 15
        while (await client.get("/readyz")).status_code != 200:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)
        retried = await client.post("/api/v1/events", json=[event, METRICS | {"id": "m-down"}])
        assert retried.status_code == 202
        assert [e["status"] for e in retried.json()["events"]] == ["stored", "stored"]


async def test_ndjson_with_a_bad_line_in_the_middle(collector, js):
    lines = [json.dumps(METRICS | {"id": f"n-{i}"}).encode() for i in range(5)]
    lines[2] = b'{"event": "node_metrics", "resource_id": "node-1", "data": {'
    response = await collector.post(
        "/api/v1/events", content=b"\n".join(lines) + b"\n", headers={"content-type": "application/x-ndjson"}
    )
    assert response.status_code == 207
    body = response.json()
    assert [e["status"] for e in body["events"]] == ["stored", "stored", "invalid", "stored", "stored"]
    assert body["detail"][0]["loc"] == [2]
    assert body["detail"][0]["type"] == "json_invalid"
    assert [json.loads(m.data)["id"] for m in await stored_messages(js)] == ["n-0", "n-1", "n-3", "n-4"]


async def test_ndjson_with_only_bad_lines_is_a_422(collector, js):
    response = await collector.post(
        "/api/v1/events", content=b"[1]\n{}\n", headers={"content-type": "application/x-ndjson"}
    )
    assert response.status_code == 422
    assert [e["status"] for e in response.json()["events"]] == ["invalid", "invalid"]
    assert await stored_messages(js) == []


async def test_a_timestamp_far_in_the_future_is_rejected(collector, js):
    response = await collector.post(
        "/api/v1/events", json=[METRICS | {"timestamp": "2999-01-01T00:00:00Z"}, METRICS]
    )
    assert response.status_code == 207
    (detail,) = response.json()["detail"]
    assert (detail["field"], detail["type"]) == ("[0].timestamp", "timestamp_in_future")
    assert len(await stored_messages(js)) == 1


async def test_an_event_larger_than_a_nats_message_is_rejected_alone(collector, js):
    huge = SEED_EXAMPLES["system_log"] | {
        "data": SEED_EXAMPLES["system_log"]["data"] | {"message": "x" * 1_100_000}
    }
    response = await collector.post("/api/v1/events", json=[huge, METRICS])
    assert response.status_code == 207
    (detail,) = response.json()["detail"]
    assert detail["type"] == "too_large"
    assert detail["loc"] == [0]
    assert len(await stored_messages(js)) == 1
