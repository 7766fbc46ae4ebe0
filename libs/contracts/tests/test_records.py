"""Records validate exactly like the envelope models: same acceptance, same errors, same stored bytes."""

import copy
import json
from typing import Annotated

import pydantic_core
import pytest
from pydantic import TypeAdapter, ValidationError

from eh_contracts import records
from eh_contracts.envelope import EventParseError, parse_event, parse_events, validate_event_id
from eh_contracts.examples import SEED_EXAMPLES
from eh_contracts.records import EventRecord, parse_record, parse_records
from eh_contracts.subjects import validate_resource_id


def errors(parse, body: bytes):
    try:
        parse(body)
    except EventParseError as error:
        return [(e.loc, e.type, e.message) for e in error.errors]
    return None


def variants() -> list[dict]:
    """Every seed example, with extra keys, explicit nulls, offsets and missing optional sections."""
    result = []
    for event in SEED_EXAMPLES.values():
        event = copy.deepcopy(event) | {"id": "fixed-id"}
        result.append(event)
        result.append(event | {"timestamp": "2024-03-20T12:00:00.123456+02:00"})
        result.append(event | {"data": event["data"] | {"producer_extra": {"nested": [1, 2.5, None]}}})
        for key in event["data"]:  # every optional key left out (required ones are the error tests')
            fewer = event | {"data": {k: v for k, v in event["data"].items() if k != key}}
            if errors(parse_events, json.dumps(fewer).encode()) is None:
                result.append(fewer)
    result.append(SEED_EXAMPLES["node_metrics"] | {"id": "n", "data": {"cpu": {"usage": 1, "cores": 2}}})
    result.append(
        SEED_EXAMPLES["node_status"] | {"id": "s", "data": {"new_state": "online", "details": None}}
    )
    return result


INVALID = [
    {"event": "node_metrics", "resource_id": "n", "data": {}},
    {"event": "node_metrics", "resource_id": "n", "data": {"cpu": None}},
    {
        "event": "pipeline_progress",
        "resource_id": "p",
        "data": {"current_step": 6, "total_steps": 5, "progress": 1},
    },
    {"event": "node_metrics", "resource_id": "n.1", "data": {"cpu": {"usage": "x"}}},
    {"event": "node_metrics", "resource_id": "n", "data": {"cpu": {"usage": 101}}},
    {"event": "node_status", "resource_id": "n", "data": {"new_state": "online", "details": {"ip": "bad"}}},
    {"event": "node_status", "resource_id": "n", "data": {"new_state": "online"}, "extra": 1},
    {
        "event": "node_status",
        "resource_id": "n",
        "data": {"new_state": "online"},
        "timestamp": "2024-03-20T10:00",
    },
    {"event": "node_status", "resource_id": "n", "data": {"new_state": "online"}, "id": " padded"},
    {
        "event": "system_alert",
        "resource_id": "a",
        "data": {"level": "warning", "category": "", "title": "t", "message": "m"},
    },
    {"event": "container_metrics", "resource_id": "c", "data": {"cpu": {"usage": -1}}},
    {"event": "nope", "resource_id": "x", "data": {}},
    {"resource_id": "x", "data": {}},
    {"event": "system_log", "resource_id": "l", "data": {"level": "info", "component": "c", "message": 5}},
]


@pytest.mark.parametrize("event", variants(), ids=lambda e: e["event"])
def test_valid_events_are_stored_byte_for_byte_as_the_models_store_them(event):
    body = json.dumps(event).encode()
    assert parse_records(body)[0].to_json() == parse_events(body)[0].to_json()
    assert parse_record(body).to_json() == parse_event(body).to_json()


@pytest.mark.parametrize("event", INVALID, ids=lambda e: str(e.get("event")))
def test_invalid_events_get_the_same_errors(event):
    body = json.dumps(event).encode()
    assert errors(parse_records, body) == errors(parse_events, body) is not None
    assert errors(lambda b: parse_record(b, 4), body) == errors(lambda b: parse_event(b, 4), body)


def test_an_array_reports_the_same_paths():
    body = json.dumps([SEED_EXAMPLES["node_metrics"], *INVALID]).encode()
    assert errors(parse_records, body) == errors(parse_events, body)


def test_missing_id_and_timestamp_are_filled_in_envelope_order():
    record = parse_record(
        json.dumps(
            {"event": "system_log", "resource_id": "l", "data": SEED_EXAMPLES["system_log"]["data"]}
        ).encode()
    )
    assert list(record.fields) == ["id", "event", "timestamp", "resource_id", "data"]
    stored = json.loads(record.to_json())
    assert stored["id"] == record.id
    assert stored["timestamp"].endswith("Z")


def fast(body: bytes):
    """What the fast schema makes of one event: its record's stored bytes, or None when it refuses."""
    try:
        return pydantic_core.to_json(records._FAST_ONE.validate_json(body))
    except ValidationError:
        return None


@pytest.mark.parametrize("event", variants(), ids=lambda e: e["event"])
def test_the_fast_schema_stores_what_the_exact_one_stores_or_refuses(event):
    body = json.dumps(event).encode()
    exact = EventRecord(records._ONE.validate_json(body)).to_json()
    stored = fast(body)
    assert stored in (exact, None)
    if "+02:00" not in body.decode():
        assert stored == exact  # what producers send (times in UTC) takes the fast path


@pytest.mark.parametrize("event", INVALID, ids=lambda e: str(e.get("event")))
def test_the_fast_schema_refuses_what_the_exact_one_refuses(event):
    assert fast(json.dumps(event).encode()) is None


ODD_STRINGS = [
    "a",
    "node-001",
    "a:b_c-D9",
    "x" * 128,
    "x" * 129,
    "",
    " ",
    " a",
    "a ",
    "a b",
    "a.b",
    "a*",
    ">",
    "a\n",
    "\na",
    "a\tb",
    "a\x7f",
    "ü",
    "aü",
    "日本",
    "a\u2028b",
    "\uff41",
    "a\x00",
    "1" * 127 + "\n",
]


@pytest.mark.parametrize("value", ODD_STRINGS, ids=repr)
@pytest.mark.parametrize("check", [validate_resource_id, validate_event_id], ids=lambda f: f.__name__)
def test_native_stand_ins_accept_exactly_what_the_python_validators_accept(check, value):
    try:
        check(value)
    except ValueError:
        accepted = False
    else:
        accepted = True
    native = TypeAdapter(Annotated[str, records._NATIVE[check]])
    try:
        native.validate_python(value)
    except ValidationError:
        assert not accepted
    else:
        assert accepted


@pytest.mark.parametrize(
    "timestamp",
    [
        "2024-03-20T10:00:00Z",
        "2024-03-20T10:00:00.5+00:00",
        "2024-03-20T10:00:00-00:00",
        "2024-03-20T10:00:00z",
    ],
)
def test_times_in_utc_take_the_fast_path_and_are_stored_alike(timestamp):
    body = json.dumps(SEED_EXAMPLES["system_log"] | {"id": "t", "timestamp": timestamp}).encode()
    assert fast(body) == parse_event(body).to_json()


def test_a_batch_with_a_time_in_another_offset_is_still_accepted_and_converted():
    events = [SEED_EXAMPLES["system_log"] | {"id": str(i)} for i in range(3)]
    events[1] = events[1] | {"timestamp": "2024-03-20T12:00:00+02:00"}
    stored = [json.loads(r.to_json()) for r in parse_records(json.dumps(events).encode())]
    assert stored[1]["timestamp"] == "2024-03-20T10:00:00Z"
