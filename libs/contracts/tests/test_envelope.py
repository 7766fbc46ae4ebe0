import copy
import json
from datetime import UTC, datetime

import pytest

from eh_contracts.envelope import EVENT_MODELS, EventParseError, parse_events
from eh_contracts.event_types import EventType
from eh_contracts.examples import SEED_EXAMPLES


def body(document: object) -> bytes:
    return json.dumps(document).encode()


def errors_of(document: object) -> list[tuple[str, str]]:
    with pytest.raises(EventParseError) as caught:
        parse_events(body(document))
    return [(e.field, e.message) for e in caught.value.errors]


def test_every_event_type_has_a_model_and_a_seed_example():
    assert set(EVENT_MODELS) == set(EventType)
    assert set(SEED_EXAMPLES) == {t.value for t in EventType}


def test_seed_example_is_valid_and_stored_field_for_field(seed_example):
    (event,) = parse_events(body(seed_example))
    stored = json.loads(event.to_json())
    assert stored.pop("id")  # filled in: the seed examples carry none
    assert stored == seed_example
    assert event.subject == f"events.{seed_example['event']}.{seed_example['resource_id']}"


def test_stored_form_is_one_line_of_compact_json(seed_example):
    (event,) = parse_events(body(seed_example))
    assert b"\n" not in event.to_json()


def test_id_and_timestamp_are_filled_when_absent():
    document = copy.deepcopy(SEED_EXAMPLES["node_status"])
    del document["timestamp"]
    before = datetime.now(UTC)
    first, second = parse_events(body([document, document]))
    assert first.id != second.id
    assert before <= first.timestamp <= datetime.now(UTC)
    stored = json.loads(first.to_json())
    assert stored["id"] == first.id
    assert stored["timestamp"].endswith("Z")


def test_producer_id_and_timestamp_are_kept_and_time_normalized_to_utc():
    document = copy.deepcopy(SEED_EXAMPLES["node_status"]) | {
        "id": "evt-42",
        "timestamp": "2024-03-20T18:00:00+08:00",
    }
    (event,) = parse_events(body(document))
    stored = json.loads(event.to_json())
    assert stored["id"] == "evt-42"
    assert stored["timestamp"] == "2024-03-20T10:00:00Z"


def test_unknown_keys_in_data_are_kept_at_every_depth():
    document = copy.deepcopy(SEED_EXAMPLES["node_metrics"])
    document["data"]["fan_rpm"] = 1200
    document["data"]["cpu"]["steal"] = 0.5
    (event,) = parse_events(body(document))
    stored = json.loads(event.to_json())
    assert stored["data"]["fan_rpm"] == 1200
    assert stored["data"]["cpu"]["steal"] == 0.5


def test_unknown_keys_in_the_envelope_are_rejected():
    document = SEED_EXAMPLES["system_log"] | {"severity": "high"}
    assert errors_of(document) == [("severity", "Extra inputs are not permitted")]


@pytest.mark.parametrize(
    ("event_type", "path", "value", "field"),
    [
        ("node_metrics", ["cpu", "usage"], "45.5", "data.cpu.usage"),
        ("node_metrics", ["cpu", "cores"], 8.5, "data.cpu.cores"),
        ("node_metrics", ["memory", "total"], True, "data.memory.total"),
        ("pipeline_status", ["new_status"], 3, "data.new_status"),
        ("pipeline_progress", ["step_status", "name"], None, "data.step_status.name"),
        ("container_status", ["exit_code"], "0", "data.container_status.exit_code"),
        ("system_alert", ["actions"], {"type": "scale_up"}, "data.actions"),
        ("system_log", ["context"], ["not", "an", "object"], "data.context"),
    ],
)
def test_wrong_types_are_rejected_with_the_field_path(event_type, path, value, field):
    document = copy.deepcopy(SEED_EXAMPLES[event_type])
    target = document["data"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    fields = [f for f, _ in errors_of(document)]
    assert fields == [field.replace("data.container_status.", "data.")]


def test_missing_required_keys_are_named():
    document = copy.deepcopy(SEED_EXAMPLES["node_status"])
    del document["data"]["new_state"]
    del document["resource_id"]
    assert sorted(errors_of(document)) == [
        ("data.new_state", "Field required"),
        ("resource_id", "Field required"),
    ]


def test_values_outside_their_range_or_vocabulary_are_rejected():
    document = copy.deepcopy(SEED_EXAMPLES["node_metrics"])
    document["data"]["cpu"]["usage"] = 130
    document["data"]["memory"]["used"] = -1
    assert [f for f, _ in errors_of(document)] == ["data.cpu.usage", "data.memory.used"]
    document = copy.deepcopy(SEED_EXAMPLES["node_status"])
    document["data"]["new_state"] = "sleeping"
    assert errors_of(document)[0][0] == "data.new_state"


def test_a_metrics_sample_without_any_section_is_rejected():
    document = SEED_EXAMPLES["container_metrics"] | {"data": {}}
    ((field, message),) = errors_of(document)
    assert field == "data"
    assert "at least one of: cpu, memory, network, block_io" in message


def test_progress_cannot_be_past_the_last_step():
    document = copy.deepcopy(SEED_EXAMPLES["pipeline_progress"])
    document["data"]["current_step"] = 6
    assert errors_of(document) == [("data", "current_step (6) is larger than total_steps (5)")]


def test_unknown_or_missing_event_type_is_named_as_the_event_field():
    ((field, message),) = errors_of(SEED_EXAMPLES["node_status"] | {"event": "node_reboot"})
    assert field == "event"
    assert "unknown event type 'node_reboot'" in message
    assert "system_log" in message
    missing = {k: v for k, v in SEED_EXAMPLES["node_status"].items() if k != "event"}
    assert errors_of(missing)[0][0] == "event"


def test_batch_errors_name_the_index_of_each_bad_event():
    good = SEED_EXAMPLES["system_log"]
    bad_type = good | {"event": "nope"}
    bad_id = good | {"resource_id": "node 1"}
    fields = [f for f, _ in errors_of([good, bad_type, good, bad_id])]
    assert fields == ["[1].event", "[3].resource_id"]


@pytest.mark.parametrize(
    ("timestamp", "fragment"),
    [
        ("2024-03-20T10:00:00", "timezone"),
        ("2024-03-20", "datetime"),
        ("yesterday", "datetime"),
        (1710928800, "datetime"),
    ],
)
def test_timestamps_must_be_rfc3339_with_an_offset(timestamp, fragment):
    ((field, message),) = errors_of(SEED_EXAMPLES["system_log"] | {"timestamp": timestamp})
    assert field == "timestamp"
    assert fragment in message


@pytest.mark.parametrize("resource_id", ["node.1", "node*", "node>", "node 1", "", "n" * 129, "nöde"])
def test_resource_id_must_be_a_subject_token(resource_id):
    ((field, _message),) = errors_of(SEED_EXAMPLES["system_log"] | {"resource_id": resource_id})
    assert field == "resource_id"


@pytest.mark.parametrize("event_id", ["", " padded", "x" * 129, "line\nbreak", "tab\tinside"])
def test_event_id_must_be_a_safe_header_value(event_id):
    ((field, _message),) = errors_of(SEED_EXAMPLES["system_log"] | {"id": event_id})
    assert field == "id"


def test_event_id_may_be_any_printable_text_up_to_128_characters():
    for event_id in ["a", "évé-nement 1/2", "x" * 128]:
        (event,) = parse_events(body(SEED_EXAMPLES["system_log"] | {"id": event_id}))
        assert event.id == event_id


@pytest.mark.parametrize(
    ("raw", "malformed", "message"),
    [
        (b'{"event": "node_status",', True, "Invalid JSON"),
        (b"not json", True, "Invalid JSON"),
        (b"", True, "Invalid JSON"),
        (b'"a string"', False, "expected an event object or an array of events"),
        (b"42", False, "expected an event object or an array of events"),
        (b"[]", False, "the array holds no events"),
    ],
)
def test_bodies_that_are_not_events(raw, malformed, message):
    with pytest.raises(EventParseError) as caught:
        parse_events(raw)
    assert caught.value.malformed is malformed
    (error,) = caught.value.errors
    assert error.field == "body"
    assert message in error.message
