"""Times at the edges of the calendar, with any offset, are an answer naming the field, never a crash."""

import itertools
import json
from datetime import UTC, datetime

import pytest

from eh_contracts.envelope import EventParseError, parse_event, parse_events
from eh_contracts.examples import SEED_EXAMPLES
from eh_contracts.records import parse_record, parse_records

PARSERS = [parse_events, parse_records, parse_event, parse_record]
LOG = SEED_EXAMPLES["system_log"] | {"id": "log-1"}
CONTAINER = SEED_EXAMPLES["container_status"] | {"id": "container-1"}

DATES = [
    "0001-01-01T00:00:00",
    "0001-01-01T23:58:59",
    "0001-01-02T00:00:00",
    "1970-01-01T00:00:00",
    "9999-12-31T00:00:00",
    "9999-12-31T23:59:59",
    "9999-12-31T23:59:59.999999",
    "9998-12-31T23:59:59",
]
OFFSETS = ["Z", "+00:00", "-00:00", "+00:01", "-00:01", "+12:00", "-12:00", "+23:59", "-23:59"]


def outcome(parse, document: dict):
    try:
        (event,) = (
            [parse(json.dumps(document).encode())]
            if parse in (parse_event, parse_record)
            else parse(json.dumps(document).encode())
        )
    except EventParseError as error:
        return error
    return event


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize(("date", "offset"), list(itertools.product(DATES, OFFSETS)))
def test_any_date_with_any_offset_is_stored_in_utc_or_refused_by_name(parse, date, offset):
    text = date + offset
    aware = datetime.fromisoformat(text.replace("Z", "+00:00"))
    try:
        expected = aware.astimezone(UTC)
    except OverflowError:
        expected = None
    for document, path in [
        (LOG | {"timestamp": text}, ("timestamp",)),
        (CONTAINER | {"data": CONTAINER["data"] | {"started_at": text}}, ("data", "started_at")),
    ]:
        result = outcome(parse, document)
        if expected is None:
            assert isinstance(result, EventParseError)
            assert [e.loc for e in result.errors] == [path]
            assert "outside years 1 to 9999" in result.errors[0].message
        else:
            assert not isinstance(result, EventParseError), result
            stored = json.loads(result.to_json())
            value = stored[path[0]] if len(path) == 1 else stored["data"][path[1]]
            assert datetime.fromisoformat(value.replace("Z", "+00:00")) == expected


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize(
    "timestamp",
    [
        "1710929100",  # pydantic alone reads this as Unix seconds
        "1710929100.5",
        "٢٠٢٤-03-20T10:00:00Z",  # Arabic-Indic digits
        "\uff12\uff10\uff12\uff14-03-20T10:00:00Z",  # full-width digits
        "2024-03-20T10:00:00+0200",
        "2024-03-20T10:00:00Z ",
        "2024-03-20T10:00:00Z\n",
        "2024-03-20",
        "",
        1710929100,
        True,
        None,
    ],
)
def test_only_rfc3339_text_is_a_time(parse, timestamp):
    result = outcome(parse, LOG | {"timestamp": timestamp})
    assert isinstance(result, EventParseError)
    assert [e.loc for e in result.errors] == [("timestamp",)]


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize("ip", [False, True, 0, 167772167, 1.5, [], {}])
def test_an_ip_address_is_text(parse, ip):
    document = SEED_EXAMPLES["node_status"] | {"data": {"new_state": "online", "details": {"ip": ip}}}
    result = outcome(parse, document)
    assert isinstance(result, EventParseError)
    assert [e.field for e in result.errors] == ["data.details.ip"]
