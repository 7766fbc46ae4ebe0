import json

import pytest

from eh_contracts.examples import SEED_EXAMPLES
from eh_contracts.expressions import (
    ExpressionError,
    ExpressionLimits,
    compile_expression,
    envelope_scope,
    parse_expression,
    unparse,
)

ALL = envelope_scope()


def evaluate(text: str, event: dict, types: tuple[str, ...] = ()) -> bool | None:
    return compile_expression(text, envelope_scope(types)).evaluate(event)


ALERT = {
    "id": "a1",
    "event": "system_alert",
    "timestamp": "2024-03-20T10:00:00Z",
    "resource_id": "alert-cpu-node-001",
    "data": {"level": "warning", "category": "resource", "title": "t", "message": "m"},
}
METRICS = {
    "id": "m1",
    "event": "node_metrics",
    "timestamp": "2024-03-20T10:00:05Z",
    "resource_id": "node-001",
    "data": {"cpu": {"usage": 95.5, "cores": 8}, "memory": {"total": 1000, "used": 950}},
}


@pytest.mark.parametrize(
    ("text", "event", "expected"),
    [
        ('data.level in ["warning", "critical"] && data.category == "resource"', ALERT, True),
        ('data.level in ["error", "critical"] || data.category == "resource"', ALERT, True),
        ('data.level in ["error", "critical"]', ALERT, False),
        ("data.cpu.usage > 90", METRICS, True),
        ("data.cpu.usage > 90", ALERT, None),  # no such field in this event: an error, never a match
        ("data.memory.used / data.memory.total * 100 >= 95", METRICS, True),
        ("data.memory.used / (data.memory.total - 1000) > 1", METRICS, None),  # division by zero
        ('resource_id.startsWith("node-") && event == "node_metrics"', METRICS, True),
        ('resource_id.endsWith("-001") && !resource_id.contains("alert")', METRICS, True),
        ("has(data.gpu)", METRICS, False),
        ("has(data.gpu) && data.gpu.usage > 50", METRICS, False),
        ("!has(data.gpu) || data.gpu.usage > 50", METRICS, True),
        ("has(data.gpu.usage)", METRICS, None),  # no gpu section to look into: an error, as in CEL
        ("data.cpu.usage > 90 || data.progress > 1", METRICS, True),  # a field of pipeline_progress
        ("data.gpu.usage > 90 || data.cpu.usage > 90", METRICS, True),  # an error does not decide ||
        ("data.gpu.usage > 90 && data.cpu.usage < 10", METRICS, False),  # false decides && anyway
        ("!(data.gpu.usage > 90)", METRICS, None),
        ('timestamp >= "2024-03-20T10:00:00Z" && timestamp < "2024-03-21"', METRICS, True),
        ("data.cpu.cores == 8.0 && data.cpu.usage != 95", METRICS, True),  # one number type
        ("-data.cpu.usage < -90", METRICS, True),
        ('id in ["m1", "m2"]', METRICS, True),
    ],
)
def test_semantics(text, event, expected):
    assert evaluate(text, event) is expected


def test_malformed_values_are_errors_not_matches():
    bad = {**METRICS, "data": {"cpu": {"usage": "95", "cores": True}}}
    assert evaluate("data.cpu.usage > 90", bad) is None
    assert evaluate("data.cpu.cores == 1", bad) is None  # true is not the number 1
    assert evaluate("data.cpu.usage > 90", {**METRICS, "data": ["not", "a", "map"]}) is None
    assert evaluate("data.cpu.usage > 90", {**METRICS, "data": {"cpu": "hot"}}) is None
    # Open-ended fields hold anything, compared by CEL's rules.
    log = {"event": "system_log", "data": {"context": {"n": 1, "flag": True, "s": "x"}}}
    assert evaluate("data.context.n == 1", log) is True
    assert evaluate("data.context.flag == 1", log) is False
    assert evaluate("data.context.flag", log) is True
    assert evaluate("data.context.s > 1", log) is None
    assert evaluate('data.context.n in ["1", true, 1.0]', log) is True
    assert evaluate('data.context.flag in [1, "x"]', log) is False
    assert evaluate("data.context.flag in [true, 2]", log) is True
    assert evaluate("data.context.n in [true, 2]", log) is False  # 1 is not true
    assert evaluate("data.context.nothing in [true, null]", log) is None


def test_literals_are_values_in_the_generated_code_never_code():
    text = r"""data.message == "\"); import os; (\"" || data.message.startsWith('\u0027')"""
    compiled = compile_expression(text, ALL)
    assert compiled.evaluate({"data": {"message": '"); import os; ("'}}) is True
    assert compiled.evaluate({"data": {"message": "'quoted'"}}) is True
    assert compiled.evaluate({"data": {"message": "x"}}) is False
    # Numbers Python cannot print as a literal are constants: infinity, a 30-digit integer.
    huge = compile_expression("data.cpu.usage < 1e999 && data.cpu.usage < " + "9" * 30, ALL)
    assert huge.evaluate(METRICS) is True
    assert huge.evaluate({"data": {"cpu": {"usage": 10**31}}}) is False


def test_every_seed_example_can_be_filtered_on_its_own_fields():
    for name, example in SEED_EXAMPLES.items():
        event = json.loads(json.dumps(example))
        first = next(iter(event["data"]))
        assert evaluate(f"has(data.{first}) && event == {json.dumps(name)}", event, (name,)) is True


def test_fields_are_checked_against_the_requested_types():
    with pytest.raises(ExpressionError, match=r"data has no field 'cpu'; it has: .*new_state"):
        compile_expression("data.cpu.usage > 1", envelope_scope(["node_status"]))
    compile_expression("data.cpu.usage > 1", envelope_scope(["node_status", "node_metrics"]))
    with pytest.raises(ExpressionError, match=r"'running' is not a possible value of data\.new_state"):
        compile_expression('data.new_state == "running"', envelope_scope(["node_status"]))
    compile_expression('data.new_state == "running"', envelope_scope(["node_status", "container_status"]))
    with pytest.raises(ExpressionError, match=r"'node_metrics' is not a possible value of event"):
        compile_expression('event == "node_metrics"', envelope_scope(["node_status"]))


@pytest.mark.parametrize(
    ("text", "reason", "message"),
    [
        (
            "data.cpu.usage >",
            "syntax",
            "expected a field, a number, a string or '(', found the end (column 17)",
        ),
        ("data.cpu.usage > 1 &&", "syntax", "found the end (column 22)"),
        ("data.cpu.usage = 1", "syntax", "unexpected character '=' (column 16)"),
        ('data.level == "warning', "syntax", "a string is not closed on its line (column 15)"),
        ("(data.cpu.usage > 1", "syntax", "expected ')', found the end (column 20)"),
        ("size(data.message) > 1", "syntax", "unknown function 'size'; known: has (column 1)"),
        ("data.message.lower()", "syntax", "unknown function 'lower'"),
        ("has(1)", "syntax", "has() takes a field"),
        (
            "data.cpu.usge > 1",
            "unknown_field",
            "data.cpu has no field 'usge'; it has: cores, limit, period, ",
        ),
        ("nope == 1", "unknown_field", "unknown name 'nope'; known: data, event, id, resource_id, timestamp"),
        ("data.cpu > 1", "type", "data.cpu is a section, not a value; use one of: data.cpu.usage"),
        (
            'data.cpu.usage > "x"',
            "type",
            'data.cpu.usage is a number and "x" is text; they cannot be compared',
        ),
        ("data.level > 1", "type", "data.level is text and 1 is a number"),
        ('data.level < "z"', "type", "data.level is one of a set of values"),
        ("data.cpu.usage + 1", "type", "gives a number, not true or false"),
        ("data.cpu.usage in data.cpu", "type", "'in' takes a list of values"),
        ('data.cpu.usage in [1, "a"]', "type", 'data.cpu.usage is a number, "a" is text'),
        ("data.level && true", "type", "a condition is expected here, but data.level is text"),
        ("[1, data.cpu.usage]", "syntax", "a list holds numbers, strings, true, false or null only"),
        ('data.message == "\\q"', "syntax", "unknown escape \\q"),
    ],
)
def test_errors_name_their_column_and_kind(text, reason, message):
    with pytest.raises(ExpressionError) as error:
        compile_expression(text, ALL)
    assert error.value.reason == reason
    assert message in str(error.value)


def test_limits_bound_length_depth_and_lists_each_with_its_own_error():
    limits = ExpressionLimits(max_length=100, max_depth=5, max_list_values=3)
    cases = [
        ("data.cpu.usage > 1 && " * 10 + "true", "too_long", "at most 100"),
        ("((((((true))))))", "too_deep", "at most 5 levels"),
        ("!!!!!!true", "too_deep", "at most 5 levels"),
        ("1 + 1 + 1 + 1 + 1 + 1 > 1", "too_deep", "at most 5 levels"),
        ('id in ["a", "b", "c", "d"]', "too_many_values", "a list holds at most 3 values (column 23)"),
    ]
    for text, reason, message in cases:
        with pytest.raises(ExpressionError) as error:
            compile_expression(text, ALL, limits=limits)
        assert (error.value.reason, message in str(error.value)) == (reason, True), text
    with pytest.raises(ExpressionError) as error:
        compile_expression("data.cpu.usage > " + "9" * 5000, ALL, limits=ExpressionLimits(max_length=20_000))
    assert (error.value.reason, error.value.column) == ("too_long", 18)
    # Far past Python's recursion limit, still a clear error, not a crash.
    for text in ("(" * 5000 + "true" + ")" * 5000, "!" * 5000 + "true", "-" * 5000 + "1 > 0"):
        with pytest.raises(ExpressionError) as error:
            compile_expression(text, ALL, limits=ExpressionLimits(max_length=20_000))
        assert error.value.reason == "too_deep"


def test_canonical_text_is_the_same_for_the_same_expression():
    a = compile_expression("data.cpu.usage>90&&resource_id=='n1'", ALL)
    b = compile_expression('(data.cpu.usage > 90) && (resource_id == "n1")', ALL)
    assert a.canonical == b.canonical == '((data.cpu.usage > 90) && (resource_id == "n1"))'
    tricky = 'data.message == "quote \\" back\\\\slash \\n \\u00e9"'
    canonical = unparse(parse_expression(tricky))
    assert unparse(parse_expression(canonical)) == canonical
    assert compile_expression(canonical, ALL).evaluate({"data": {"message": 'quote " back\\slash \n \u00e9'}})


def test_legacy_words_only_where_asked():
    with pytest.raises(ExpressionError, match="unexpected 'and'"):
        parse_expression("a > 1 and b > 2")
    assert unparse(parse_expression("a > 1 and not b > 2", legacy_words=True)) == "((a > 1) && !(b > 2))"
