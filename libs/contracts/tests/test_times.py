from datetime import UTC, datetime, timedelta, timezone

import pytest

from eh_contracts.times import rfc3339, rfc3339_from_epoch


def test_times_are_written_in_utc_with_a_z():
    assert rfc3339(datetime(2025, 1, 15, 10, 30, tzinfo=UTC)) == "2025-01-15T10:30:00Z"
    paris = timezone(timedelta(hours=1))
    assert rfc3339(datetime(2025, 1, 15, 11, 30, 0, 123000, tzinfo=paris)) == "2025-01-15T10:30:00.123000Z"
    assert rfc3339_from_epoch(0) == "1970-01-01T00:00:00Z"


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError, match="no timezone"):
        rfc3339(datetime(2025, 1, 15, 10, 30))
