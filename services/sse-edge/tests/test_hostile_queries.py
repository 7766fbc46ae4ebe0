"""Whatever a client asks and whatever is stored, the edge answers: a 4xx naming the parameter, a
page, or a stream that says why it ends; never a 500, never a silent close."""

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.pytest_plugin import store_event
from eh_devtools.sse_client import SseMessage, next_event, read_sse
from eh_runtime.stream import EVENTS_STREAM
from sse_edge.history.jetstream_history import JetStreamHistory

pytestmark = pytest.mark.nats

LOG = SEED_EXAMPLES["system_log"]
HISTORY = "/api/v1/events/history"
EVENTS = "/api/v1/events"

SETTLED = ("stream.caught_up", "stream.end")
EDGE_DATES = ["0001-01-01T00:00:00", "0001-01-01T12:00:00", "9999-12-31T23:59:59", "9999-12-31T12:00:00"]
OFFSETS = ["Z", "+23:59", "-23:59", "+00:01", "-00:01"]


async def stream_until_settled(
    edge: httpx.AsyncClient, params=None, headers=None, count: int = 3
) -> list[SseMessage]:
    """The messages of a stream up to `stream.caught_up` or `stream.end` (at most `count`)."""
    messages: list[SseMessage] = []
    async with edge.stream("GET", EVENTS, params=params, headers=headers) as response:
        assert response.status_code == 200, (params, await response.aread())
        reader = read_sse(response)
        try:
            while len(messages) < count and (not messages or messages[-1].event not in SETTLED):
                messages.append(await asyncio.wait_for(next_event(reader), 10))
        except EOFError:
            pass
    return messages


@pytest.mark.parametrize(("date", "offset"), list(itertools.product(EDGE_DATES, OFFSETS)))
async def test_any_edge_time_with_any_offset_is_a_page_or_a_422_naming_it(edge, js, date, offset):
    await store_event(js, LOG)
    for parameter in ("start_time", "end_time"):
        response = await edge.get(HISTORY, params={parameter: date + offset})
        assert response.status_code in (200, 422), response.text
        if response.status_code == 422:
            assert response.json()["detail"][0]["field"] == parameter
            continue
        for params in [{parameter: date + offset}, {parameter: date + offset, "limit": 1}]:
            messages = await stream_until_settled(edge, params=params)
            assert messages[0].event == "stream.ready"
            assert messages[-1].event in SETTLED, [m.event for m in messages]


@pytest.mark.parametrize(
    "value", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "٢٠٢٤-03-20T10:00:00Z"]
)
async def test_times_out_of_range_are_a_422_before_the_stream_opens(edge, value):
    for path in (EVENTS, HISTORY):
        response = await edge.get(path, params={"start_time": value})
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["field"] == "start_time"


async def test_history_up_to_the_end_of_the_calendar_is_a_page(edge, js):
    await store_event(js, LOG)
    response = await edge.get(HISTORY, params={"end_time": "9999-12-31T23:59:59Z"})
    assert response.status_code == 200, response.text
    assert len(response.json()["events"]) == 1
    since_always = await edge.get(HISTORY, params={"start_time": "0001-01-01T00:00:00Z"})
    assert len(since_always.json()["events"]) == 1


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"Last-Event-ID": b"\xb2"}, None),
        ({"Last-Event-ID": "9" * 5000}, None),
        ({"Last-Event-ID": "18446744073709551616"}, None),
        ({"Last-Event-ID": "-1"}, None),
        (None, {"last_event_id": "٣"}),
        (None, {"last_event_id": "²"}),
        (None, {"last_event_id": "9" * 5000}),
    ],
)
async def test_an_event_id_is_ascii_digits_of_a_sequence(edge, headers, params):
    response = await edge.get(EVENTS, headers=headers, params=params)
    assert response.status_code in (400, 422), response.text
    assert "Last-Event-ID" in response.text or "last_event_id" in response.text


async def test_a_stream_from_the_start_of_the_calendar_replays_and_goes_live(edge, js):
    await store_event(js, LOG)
    messages = await stream_until_settled(edge, params={"start_time": "0001-01-01T00:00:00Z"})
    assert [m.event for m in messages] == ["stream.ready", "system_log", "stream.caught_up"]


async def test_a_stream_from_the_end_of_the_calendar_is_caught_up_at_once(edge, js):
    await store_event(js, LOG)
    messages = await stream_until_settled(
        edge, params={"start_time": "9999-12-31T23:59:59Z", "limit": 1}, count=2
    )
    assert [m.event for m in messages] == ["stream.ready", "stream.caught_up"]


async def test_a_stream_until_the_end_of_the_calendar_stays_live(edge, js):
    messages = await stream_until_settled(edge, params={"end_time": "9999-12-31T23:59:59Z"}, count=2)
    assert [m.event for m in messages] == ["stream.ready", "stream.caught_up"]


@pytest.mark.parametrize(
    "timestamp",
    [
        "2024-03-20T10:00:00",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "not a time",
        "2024-03-20",
    ],
)
async def test_whatever_timestamp_is_stored_a_time_ranged_query_answers(edge, js, timestamp):
    """Stored without the collector: the edge does not trust what it reads."""
    raw = LOG | {"id": "raw", "timestamp": timestamp}
    await js.publish("events.system_log.log-1", json.dumps(raw).encode(), stream=EVENTS_STREAM)
    now = datetime.now(UTC)
    good = await store_event(js, LOG | {"timestamp": rfc3339(now - timedelta(minutes=1))})
    start, end = rfc3339(now - timedelta(hours=1)), rfc3339(now + timedelta(hours=1))
    for params in [{"start_time": start}, {"end_time": end}, {"start_time": start, "limit": 5}]:
        response = await edge.get(HISTORY, params=params)
        assert response.status_code == 200, response.text
        assert [e["seq"] for e in response.json()["events"]] == [good]
        messages = await stream_until_settled(edge, params=params | {"end_time": end}, count=10)
        if "start_time" not in params:  # a future end alone: live only
            assert [m.event for m in messages] == ["stream.ready", "stream.caught_up"]
            continue
        assert [m.event for m in messages] == ["stream.ready", "system_log", "stream.caught_up"]
        assert messages[1].id == str(good)


def rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_a_replay_that_fails_says_so_before_the_stream_closes(edge, js, monkeypatch):
    async def broken(*_args: object) -> None:
        raise RuntimeError("the store went away mid-replay")

    monkeypatch.setattr(JetStreamHistory, "seq_range", broken)
    messages = await stream_until_settled(edge, params={"start_time": "2024-01-01T00:00:00Z"})
    assert [m.event for m in messages] == ["stream.ready", "stream.end"]
    assert "Last-Event-ID" in messages[-1].json()["reason"]
