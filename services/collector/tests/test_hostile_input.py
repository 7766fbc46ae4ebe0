"""What a hostile or careless client sends gets a 4xx naming the field, a bounded answer, never a 500.

Every path an event enters by is tried: one object, an array, NDJSON, a NATS request.
"""

import asyncio
import json

import pytest

from collector import nats_ingest
from collector.app import create_app
from collector.intake import read_ndjson
from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.pytest_plugin import serving
from eh_runtime.stream import EVENTS_STREAM

pytestmark = pytest.mark.nats

LOG = SEED_EXAMPLES["system_log"]
NDJSON = {"content-type": "application/x-ndjson"}
JSON = {"content-type": "application/json"}


def with_raw(document: dict, key: str, raw: str) -> bytes:
    """`document` as JSON with `data[key]` set to `raw` JSON text (which json.dumps would refuse)."""
    marker = "__raw__"
    return (
        json.dumps(document | {"data": document["data"] | {key: marker}}).replace(f'"{marker}"', raw).encode()
    )


def log_at(timestamp: str) -> dict:
    return LOG | {"timestamp": timestamp}


# (body of one event, field named in the error)
HOSTILE_EVENTS = [
    (json.dumps(log_at("9999-12-31T23:59:59-23:59")).encode(), "timestamp"),
    (json.dumps(log_at("0001-01-01T00:00:00+23:59")).encode(), "timestamp"),
    (json.dumps(log_at("1710929100")).encode(), "timestamp"),
    (with_raw(LOG, "temperature", "Infinity"), "data.temperature"),
    (with_raw(LOG, "x", "NaN"), "data.x"),
    (with_raw(LOG, "x", "1e400"), "data.x"),
    (with_raw(LOG, "x", "9" * 401), "data.x"),
    (with_raw(LOG, "context", '{"inner": [1, -Infinity]}'), "data.context.inner[1]"),
    (
        json.dumps(
            SEED_EXAMPLES["node_status"] | {"data": {"new_state": "online", "details": {"ip": False}}}
        ).encode(),
        "data.details.ip",
    ),
]


async def count_stored(js) -> int:
    return (await js.stream_info(EVENTS_STREAM)).state.messages


@pytest.mark.parametrize(("event", "field"), HOSTILE_EVENTS)
async def test_each_ingest_path_answers_a_hostile_event_with_a_4xx_naming_the_field(
    collector, nc, js, event, field
):
    good = json.dumps(LOG).encode()
    single = await collector.post("/api/v1/events", content=event, headers=JSON)
    assert single.status_code == 422, single.text
    assert [d["field"] for d in single.json()["detail"]] == [field]

    batch = await collector.post("/api/v1/events", content=b"[" + good + b"," + event + b"]", headers=JSON)
    assert batch.status_code == 207, batch.text
    assert [d["field"] for d in batch.json()["detail"]] == [f"[1].{field}"]

    lines = await collector.post("/api/v1/events", content=event + b"\n" + good, headers=NDJSON)
    assert lines.status_code == 207, lines.text
    assert [d["field"] for d in lines.json()["detail"]] == [f"[0].{field}"]

    document = json.loads(event.decode().replace("Infinity", "0").replace("NaN", "0"))  # for the subject only
    reply = await nc.request(f"ingest.{document['event']}.{document['resource_id']}", event, timeout=5)
    assert reply.headers["Nats-Service-Error-Code"] == "422"
    assert [e["field"] for e in json.loads(reply.data)["errors"]] == [field]
    assert await count_stored(js) == 2  # the two good events, nothing else


async def test_an_ndjson_line_holding_two_objects_is_one_invalid_line(collector, js):
    good = json.dumps(LOG).encode()
    response = await collector.post(
        "/api/v1/events", content=good + b", " + good + b"\n" + good, headers=NDJSON
    )
    assert response.status_code == 207
    assert [e["status"] for e in response.json()["events"]] == ["invalid", "stored"]
    assert response.json()["detail"][0]["type"] == "json_invalid"


async def test_a_string_spanning_two_ndjson_lines_stores_nothing(collector, js):
    text = json.dumps(LOG | {"data": LOG["data"] | {"message": "a,b"}})
    head, tail = text.split(",b", 1)
    response = await collector.post("/api/v1/events", content=f"{head}\nb{tail}".encode(), headers=NDJSON)
    assert response.status_code in (400, 422)
    assert await count_stored(js) == 0


async def test_a_body_without_content_type_is_not_taken_for_json(collector, js):
    response = await collector.post("/api/v1/events", content=json.dumps(LOG).encode())
    assert response.status_code == 415
    assert "Content-Type" in response.json()["detail"]
    beat = await collector.post("/api/v1/nodes/node-1/heartbeat", content=b'{"ip": "10.0.0.1"}')
    assert beat.status_code == 415
    # No body and no Content-Type is what a cross-site page can send blindly: refused too (issue 14).
    assert (await collector.post("/api/v1/nodes/node-1/heartbeat")).status_code == 415
    assert (await collector.post("/api/v1/nodes/node-1/heartbeat", json={})).status_code == 202
    assert await count_stored(js) == 1


async def test_a_heartbeat_ip_must_be_text(collector):
    response = await collector.post("/api/v1/nodes/node-1/heartbeat", json={"ip": False})
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["detail"]] == ["ip"]


async def test_more_events_than_the_limit_is_a_413_naming_the_setting(nats_url, js, collector_settings):
    async with serving(create_app(collector_settings(nats_url, max_events_per_body=50))) as client:
        for body, headers in [
            (json.dumps([LOG] * 51).encode(), JSON),
            (b"\n".join([json.dumps(LOG).encode()] * 51), NDJSON),
            (json.dumps([{}] * 51).encode(), JSON),
        ]:
            response = await client.post("/api/v1/events", content=body, headers=headers)
            assert response.status_code == 413
            assert "COLLECTOR_MAX_EVENTS_PER_BODY" in response.json()["detail"]
        accepted = await client.post("/api/v1/events", json=[LOG] * 50)
        assert accepted.status_code == 202
    assert await count_stored(js) == 50


async def test_a_flood_of_empty_objects_gets_a_small_answer(collector):
    """100,000 `{}` (0.3 MB) once got a 54.5 MB answer; now the body is refused by count."""
    flood = await collector.post(
        "/api/v1/events", content=b"[" + b",".join([b"{}"] * 100_000) + b"]", headers=JSON
    )
    assert flood.status_code == 413
    lines = await collector.post("/api/v1/events", content=b"{}\n" * 1_000_000, headers=NDJSON)
    assert lines.status_code == 413
    assert len(flood.content) < 1000
    assert len(lines.content) < 1000


async def test_the_error_answer_lists_the_first_errors_and_counts_the_rest(nats_url, collector_settings):
    settings = collector_settings(nats_url, max_errors_listed=10)
    async with serving(create_app(settings)) as client:
        response = await client.post("/api/v1/events", json=[{}] * 5000)
        assert response.status_code == 422
        answer = response.json()
        assert len(answer["detail"]) == 10
        assert answer["errors_total"] == 5000
        assert answer["errors_omitted"] == 4990
        assert len(answer["events"]) == 5000
        assert sum(len(e.get("errors", [])) for e in answer["events"]) == 10
        assert len(response.content) < 400_000


async def test_judging_a_long_body_lets_other_work_run():
    """Validation yields to the event loop between slices: /healthz is not held up by one body."""
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    intake = await read_ndjson(b"{}\n" * 5000, 10_000)
    done.set()
    await task
    assert len(intake.rejected) == 5000
    assert ticks >= 5000 // 256  # the ticker ran between the slices, not only after the body


async def test_a_nats_request_that_breaks_ingestion_still_gets_a_reply(collector, nc, monkeypatch):
    def broken(_data: bytes) -> None:
        raise RuntimeError("a bug in validation")

    monkeypatch.setattr(nats_ingest, "parse_record", broken)
    reply = await nc.request(f"ingest.system_log.{LOG['resource_id']}", json.dumps(LOG).encode(), timeout=5)
    assert reply.headers["Nats-Service-Error-Code"] == "500", reply.data
    answer = json.loads(reply.data)
    assert (answer["status"], answer["code"]) == ("failed", "internal_error")
    assert "bug" not in reply.data.decode()
