"""Request/reply ingestion on ingest.<type>.<resource_id>: same validation, same per-event result."""

import json

import pytest

from eh_contracts.examples import SEED_EXAMPLES
from eh_runtime.stream import EVENTS_STREAM

pytestmark = pytest.mark.nats

LOG = SEED_EXAMPLES["system_log"]


async def test_an_event_requested_over_nats_is_stored_and_the_reply_says_where(collector, nc, js):
    body = {"id": "n-1", "data": LOG["data"]}  # type and resource come from the subject
    reply = await nc.request("ingest.system_log.log-001", json.dumps(body).encode(), timeout=5)
    result = json.loads(reply.data)
    assert result == {"index": 0, "status": "stored", "id": "n-1", "seq": 1}
    assert reply.headers is None or "Nats-Service-Error-Code" not in reply.headers
    message = await js.get_msg(EVENTS_STREAM, 1)
    assert message.subject == "events.system_log.log-001"
    assert json.loads(message.data)["event"] == "system_log"
    again = await nc.request("ingest.system_log.log-001", json.dumps(body).encode(), timeout=5)
    assert json.loads(again.data)["status"] == "duplicate"


async def test_status_events_over_nats_are_transitions_too(collector, nc):
    event = json.dumps({"data": {"new_state": "online"}}).encode()
    first = json.loads((await nc.request("ingest.node_status.node-3", event, timeout=5)).data)
    second = json.loads((await nc.request("ingest.node_status.node-3", event, timeout=5)).data)
    assert (first["status"], second["status"]) == ("stored", "unchanged")


@pytest.mark.parametrize(
    ("subject", "body", "field"),
    [
        (
            "ingest.system_log.log-1",
            {"data": {"level": "loud", "component": "x", "message": "m"}},
            "data.level",
        ),
        ("ingest.system_log.log-1", LOG | {"resource_id": "log-2"}, "resource_id"),
        ("ingest.system_log.log-1", LOG | {"event": "node_status"}, "event"),
        ("ingest.reboot.log-1", LOG, "body"),
        ("ingest.system_log.log-1.extra", LOG, "body"),
        ("ingest.system_log.log-1", "not an object", "body"),
    ],
)
async def test_bad_requests_get_an_error_reply_naming_the_field(collector, nc, js, subject, body, field):
    reply = await nc.request(subject, json.dumps(body).encode(), timeout=5)
    result = json.loads(reply.data)
    assert result["status"] == "invalid"
    assert result["errors"][0]["field"] == field
    assert reply.headers["Nats-Service-Error-Code"] == "422"
    assert (await js.stream_info(EVENTS_STREAM)).state.messages == 0


async def test_malformed_json_gets_an_error_reply(collector, nc):
    reply = await nc.request("ingest.system_log.log-1", b'{"data": ', timeout=5)
    result = json.loads(reply.data)
    assert result["status"] == "invalid"
    assert result["errors"][0]["type"] == "json_invalid"


async def test_an_unavailable_store_gets_a_503_error_reply(collector, nc, js):
    await js.delete_stream(EVENTS_STREAM)
    reply = await nc.request("ingest.system_log.log-001", json.dumps(LOG).encode(), timeout=10)
    assert json.loads(reply.data)["status"] == "failed", reply.data
    assert reply.headers["Nats-Service-Error-Code"] == "503"
