"""Reading bodies into events, each one judged on its own (pure logic, no NATS)."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from collector.intake import TooManyEvents, read_json, read_ndjson, reject_future
from eh_contracts.envelope import EventParseError
from eh_contracts.examples import SEED_EXAMPLES

METRICS = SEED_EXAMPLES["node_metrics"]
LIMIT = 100


def ndjson(*lines) -> bytes:
    return b"\n".join(line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines)


async def test_ndjson_with_a_bad_line_in_the_middle_keeps_the_others():
    body = ndjson(METRICS, METRICS, b'{"event": "node_metrics", ', METRICS, {"event": "nope"})
    intake = await read_ndjson(body, LIMIT)
    assert sorted(intake.events) == [0, 1, 3]
    assert sorted(intake.rejected) == [2, 4]
    (syntax,) = intake.rejected[2]
    assert syntax.type == "json_invalid"
    assert [e.field for e in intake.errors()][:1] == ["[2]"]
    assert any(e.field == "[4].event" for e in intake.errors())


async def test_ndjson_indexes_are_line_numbers_and_blank_lines_are_skipped():
    intake = await read_ndjson(ndjson(METRICS, b"", b"   ", METRICS) + b"\n", LIMIT)
    assert sorted(intake.events) == [0, 3]
    assert intake.rejected == {}


async def test_ndjson_without_events_is_an_error():
    with pytest.raises(EventParseError, match="no events"):
        await read_ndjson(b"\n \n", LIMIT)


async def test_a_json_array_is_validated_per_item_only_when_something_is_wrong():
    good = await read_json(json.dumps([METRICS, METRICS]).encode(), LIMIT)
    assert sorted(good.events) == [0, 1]
    mixed = await read_json(json.dumps([METRICS, "x", METRICS | {"resource_id": "a b"}]).encode(), LIMIT)
    assert sorted(mixed.events) == [0]
    assert [e.field for e in mixed.errors()] == ["[1]", "[2].resource_id"]


async def test_one_object_keeps_paths_without_an_index():
    intake = await read_json(json.dumps(METRICS | {"data": {"cpu": {"usage": "x"}}}).encode(), LIMIT)
    assert intake.single
    assert [e.field for e in intake.errors()] == ["data.cpu.usage"]


@pytest.mark.parametrize("body", [b"{", b"[1, ", b"\xff"])
async def test_malformed_json_rejects_the_body(body):
    with pytest.raises(EventParseError) as raised:
        await read_json(body, LIMIT)
    assert raised.value.malformed


async def test_timestamps_too_far_ahead_are_rejected():
    now = datetime(2024, 3, 20, 10, 0, tzinfo=UTC)
    events = [
        METRICS | {"timestamp": t}
        for t in ("2024-03-20T10:04:00Z", "2024-03-20T10:06:00Z", "2020-01-01T00:00:00Z")
    ]
    intake = await read_json(json.dumps(events).encode(), LIMIT)
    reject_future(intake, now=now, max_skew=timedelta(minutes=5))
    assert sorted(intake.events) == [0, 2]
    (error,) = intake.rejected[1]
    assert (error.loc, error.type) == (("timestamp",), "timestamp_in_future")
    assert "COLLECTOR_MAX_CLOCK_SKEW" in error.message


async def test_an_ndjson_line_is_one_json_document():
    line = json.dumps(METRICS).encode()
    intake = await read_ndjson(line + b", " + line + b"\n" + line, LIMIT)
    assert sorted(intake.events) == [1]
    assert [e.type for e in intake.rejected[0]] == ["json_invalid"]


async def test_a_string_does_not_run_on_into_the_next_ndjson_line():
    # Joined with commas, these two lines would be one valid event whose message holds a comma.
    text = json.dumps(
        METRICS | {"event": "system_log", "data": {"level": "info", "component": "c", "message": "ab"}}
    )
    first, second = text.encode().split(b'"ab"')[0] + b'"a', b'b"' + text.encode().split(b'"ab"')[1]
    intake = await read_ndjson(first + b"\n" + second, LIMIT)
    assert intake.events == {}
    assert sorted(intake.rejected) == [0, 1]


@pytest.mark.parametrize("count", [LIMIT + 1, 3 * LIMIT])
async def test_more_events_than_the_limit_are_refused_before_they_are_judged(count):
    with pytest.raises(TooManyEvents) as ndjson_raised:
        await read_ndjson(b"{}\n" * count, LIMIT)
    with pytest.raises(TooManyEvents) as json_raised:
        await read_json(json.dumps([{}] * count).encode(), LIMIT)
    with pytest.raises(TooManyEvents):
        await read_json(json.dumps([METRICS] * count).encode(), LIMIT)
    assert ndjson_raised.value.count == json_raised.value.count == count
    assert "COLLECTOR_MAX_EVENTS_PER_BODY" in str(json_raised.value)


async def test_the_limit_itself_is_accepted():
    assert len((await read_json(json.dumps([METRICS] * LIMIT).encode(), LIMIT)).events) == LIMIT
    assert len((await read_ndjson(ndjson(*[METRICS] * LIMIT), LIMIT)).rejected) == 0


async def test_what_only_the_exact_schema_accepts_is_accepted_too():
    """The fast schema takes only times already in UTC; an offset goes through the exact one."""
    offset = METRICS | {"timestamp": "2024-03-20T12:00:00+02:00"}
    single = await read_json(json.dumps(offset).encode(), LIMIT)
    batch = await read_json(json.dumps([METRICS, offset]).encode(), LIMIT)
    lines = await read_ndjson(ndjson(offset, METRICS), LIMIT)
    for intake in (single, batch, lines):
        assert intake.rejected == {}
        assert {e.timestamp.isoformat() for e in intake.events.values()} >= {"2024-03-20T10:00:00+00:00"}
