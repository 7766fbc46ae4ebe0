"""Numbers JSON readers cannot hold are refused in every field, by both validation paths."""

import json
import random
import uuid

import pydantic_core
import pytest

from eh_contracts.envelope import EventParseError, parse_event, parse_events
from eh_contracts.examples import SEED_EXAMPLES
from eh_contracts.json_numbers import may_hold_unrepresentable, unrepresentable
from eh_contracts.records import parse_record, parse_records, parse_records_fast

LOG = SEED_EXAMPLES["system_log"] | {"id": "log-1"}
METRICS = SEED_EXAMPLES["node_metrics"] | {"id": "metrics-1"}
PARSERS = [parse_events, parse_records, parse_event, parse_record]

UNREPRESENTABLE = [
    "Infinity",
    "-Infinity",
    "NaN",
    "1e400",
    "-1e400",
    "1E+400",
    "1e0400",
    "1.8e308",
    "9" * 401,
    "-" + "9" * 401,
    "1" + "0" * 250 + "e60",
    "2" + "0" * 308,
    "-" + "1" * 209 + "." + "1" * 209 + "e300",  # the longest mantissa without a 210-digit run
]
REPRESENTABLE = [
    "1.7976931348623157e308",
    "1" + "0" * 308,
    "1e-400",
    "-0.0",
    "123456789012345678901234567890",
]


def with_number(template: dict, path: tuple[str, ...], number: str) -> bytes:
    """`template` as JSON with `number` (raw JSON text) placed at `path`."""
    marker = "__number__"
    document = json.loads(json.dumps(template))
    target = document
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = marker
    return json.dumps(document).replace(f'"{marker}"', number).encode()


PLACES = [
    (METRICS, ("data", "cpu", "temperature")),  # a typed float without bounds
    (LOG, ("data", "extra_key")),  # an extra key of `data`
    (LOG, ("data", "context", "deep", "value")),  # inside a free-form dict
]


@pytest.mark.parametrize("number", UNREPRESENTABLE)
@pytest.mark.parametrize(("template", "path"), PLACES)
@pytest.mark.parametrize("parse", PARSERS)
def test_unrepresentable_numbers_are_refused_naming_the_field(parse, template, path, number):
    with pytest.raises(EventParseError) as raised:
        parse(with_number(template, path, number))
    (error,) = raised.value.errors
    assert error.loc == path
    assert error.type in {"finite_number", "number_out_of_range"}
    assert not raised.value.malformed


@pytest.mark.parametrize("number", REPRESENTABLE)
@pytest.mark.parametrize(("template", "path"), PLACES)
def test_large_finite_numbers_are_kept(template, path, number):
    body = with_number(template, path, number)
    (record,) = parse_records(body)
    (event,) = parse_events(body)
    assert record.to_json() == event.to_json()


def test_in_an_array_the_error_names_the_index():
    bad = json.loads(with_number(LOG, ("data", "x"), "0").decode())
    body = json.dumps([LOG, LOG, bad]).replace('"x": 0', '"x": NaN').encode()
    for parse in (parse_events, parse_records):
        with pytest.raises(EventParseError) as raised:
            parse(body)
        assert [e.field for e in raised.value.errors] == ["[2].data.x"]
    assert parse_records_fast(body) is None


def random_number(rng: random.Random) -> str:
    sign = rng.choice(["", "-"])
    digits = str(rng.randint(1, 9)) + "".join(rng.choices("0123456789", k=rng.choice([0, 5, 150, 215, 320])))
    fraction = rng.choice(["", ".5", "." + "9" * 30])
    exponent = rng.choice(
        ["", f"e{rng.randint(0, 400)}", f"E+{rng.randint(0, 400)}", f"e-{rng.randint(0, 400)}"]
    )
    return sign + digits + fraction + exponent


def random_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# Every place a number token can stand in JSON: after ":", "," or "[", with or without whitespace.
CONTEXTS = [
    '{{"n": {}}}',
    '{{"n":{}}}',
    '{{"n" :\n\t{}}}',
    '{{"n": [{}]}}',
    '{{"n": [1,{}]}}',
    '{{"n": [1, \r\n {}, 2]}}',
    '{{"n": [[\n{}]]}}',
]


def test_the_cheap_test_never_misses_what_the_walk_finds():
    """Fuzz: every body holding an unrepresentable number passes the byte filter, wherever the
    number stands and whatever ids stand around it."""
    rng = random.Random(13)
    found = 0
    for _ in range(3000):
        number = random_number(rng)
        free_form = rng.choice(CONTEXTS).format(number)
        template = LOG | {"id": random_id(rng), "data": LOG["data"] | {"context": "__context__"}}
        body = json.dumps(template).replace('"__context__"', free_form).encode()
        if list(unrepresentable(pydantic_core.from_json(body))):
            found += 1
            assert may_hold_unrepresentable(body), free_form
    assert found > 100  # the fuzz reaches the interesting cases


def test_ids_that_look_like_exponents_do_not_cost_the_walk():
    """UUIDs hold "…08e348…" in about one id of eight: a body of a thousand of them is still clean."""
    rng = random.Random(11)
    events = [METRICS | {"id": random_id(rng), "resource_id": f"node-{i}e123"} for i in range(1000)]
    body = json.dumps(events).encode()
    assert body.translate(bytes.maketrans(b"123456789", b"000000000")).count(b"0e000") > 50
    assert not may_hold_unrepresentable(body)
    assert not may_hold_unrepresentable(json.dumps(events, separators=(",", ":")).encode())


def test_text_that_only_looks_like_a_number_is_kept():
    body = with_number(LOG, ("data", "note"), json.dumps("NaN Infinity 1e400 " + "9" * 400))
    assert may_hold_unrepresentable(body)
    (record,) = parse_records(body)
    assert record.data["note"].startswith("NaN")
