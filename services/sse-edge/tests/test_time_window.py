"""Stored timestamps are untrusted: whatever they hold, a window answers (pure logic)."""

from datetime import UTC, datetime, timedelta

import pytest

from sse_edge.time_window import EARLIEST, LATEST, TimeWindow, event_timestamp, shifted

WINDOW = TimeWindow(start=datetime(2024, 1, 1, tzinfo=UTC), end=datetime(2025, 1, 1, tzinfo=UTC))


def stored(timestamp: str) -> bytes:
    return b'{"id":"x","event":"system_log","timestamp":"' + timestamp.encode() + b'","resource_id":"r"}'


@pytest.mark.parametrize(
    "timestamp",
    [
        "2024-03-20T10:00:00",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "nope",
        "",
        "2024-03-20",
    ],
)
def test_a_timestamp_without_a_utc_time_matches_no_range(timestamp):
    assert event_timestamp(stored(timestamp)) is None
    assert not WINDOW.contains(stored(timestamp))
    assert TimeWindow().contains(stored(timestamp))


def test_offsets_are_compared_in_utc():
    assert WINDOW.contains(stored("2024-06-01T23:00:00-05:00"))
    assert not WINDOW.contains(stored("2024-12-31T23:00:00-05:00"))  # 2025-01-01T04:00Z


@pytest.mark.parametrize("delta", [timedelta(seconds=30), -timedelta(seconds=30), timedelta(days=3650)])
def test_shifting_stays_within_the_calendar(delta):
    for moment in (EARLIEST, LATEST, datetime(2024, 1, 1, tzinfo=UTC)):
        result = shifted(moment, delta)
        assert EARLIEST <= result <= LATEST
        if EARLIEST < moment < LATEST:
            assert result == moment + delta
