"""Reading bodies into events, each one judged on its own (pure logic, no NATS)."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from collector.intake import read_json, read_ndjson, reject_future
from eh_contracts.envelope import EventParseError
from eh_contracts.examples import SEED_EXAMPLES

METRICS = SEED_EXAMPLES["node_metrics"]


def ndjson(*lines) -> bytes:
    return b"\n".join(line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines)


def test_ndjson_with_a_bad_line_in_the_middle_keeps_the_others():
    body = ndjson(METRICS, METRICS, b'{"event": "node_metrics", ', METRICS, {"event": "nope"})
    intake = read_ndjson(body)
    assert sorted(intake.events) == [0, 1, 3]
    assert sorted(intake.rejected) == [2, 4]
    (syntax,) = intake.rejected[2]
    assert syntax.type == "json_invalid"
    assert [e.field for e in intake.errors()][:1] == ["[2]"]
    assert any(e.field == "[4].event" for e in intake.errors())


def test_ndjson_indexes_are_line_numbers_and_blank_lines_are_skipped():
    intake = read_ndjson(ndjson(METRICS, b"", b"   ", METRICS) + b"\n")
    assert sorted(intake.events) == [0, 3]
    assert intake.rejected == {}


def test_ndjson_without_events_is_an_error():
    with pytest.raises(EventParseError, match="no events"):
        read_ndjson(b"\n \n")


def test_a_json_array_is_validated_per_item_only_when_something_is_wrong():
    good = read_json(json.dumps([METRICS, METRICS]).encode())
    assert sorted(good.events) == [0, 1]
    mixed = read_json(json.dumps([METRICS, "x", METRICS | {"resource_id": "a b"}]).encode())
    assert sorted(mixed.events) == [0]
    assert [e.field for e in mixed.errors()] == ["[1]", "[2].resource_id"]


def test_one_object_keeps_paths_without_an_index():
    intake = read_json(json.dumps(METRICS | {"data": {"cpu": {"usage": "x"}}}).encode())
    assert intake.single
    assert [e.field for e in intake.errors()] == ["data.cpu.usage"]


@pytest.mark.parametrize("body", [b"{", b"[1, ", b"\xff"])
def test_malformed_json_rejects_the_body(body):
    with pytest.raises(EventParseError) as raised:
        read_json(body)
    assert raised.value.malformed


def test_timestamps_too_far_ahead_are_rejected():
    now = datetime(2024, 3, 20, 10, 0, tzinfo=UTC)
    events = [
        METRICS | {"timestamp": t}
        for t in ("2024-03-20T10:04:00Z", "2024-03-20T10:06:00Z", "2020-01-01T00:00:00Z")
    ]
    intake = read_json(json.dumps(events).encode())
    reject_future(intake, now=now, max_skew=timedelta(minutes=5))
    assert sorted(intake.events) == [0, 2]
    (error,) = intake.rejected[1]
    assert (error.loc, error.type) == (("timestamp",), "timestamp_in_future")
    assert "COLLECTOR_MAX_CLOCK_SKEW" in error.message
