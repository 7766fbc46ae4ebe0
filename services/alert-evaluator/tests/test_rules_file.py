"""Rules files: what is accepted, and how a bad one is reported (line, rule, field) and refused."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rules_helpers import CPU_RULE, DEFAULT_RULE_NAMES, rules

from alert_evaluator.app import create_app
from alert_evaluator.conditions import ConditionError, compile_condition
from alert_evaluator.rules import render
from alert_evaluator.rules_file import RulesFileError, load_rules_file, parse_rules
from alert_evaluator.settings import DEFAULT_RULES_FILE, EvaluatorSettings
from eh_contracts.payloads import ContainerStatus, NodeMetrics, NodeStatus

BAD_FILE = """\
defaults: {staleness: 2m}
rules:
  - name: high_cpu
    event: node_metrics
    condition: cpu.usge > 80
    level: warning
    category: resource
    title: High CPU
    message: "{resource_id} is hot"
  - name: slow
    event: node_metrics
    condition: cpu.usage > 1
    for: five minutes
    level: loud
    category: x
    title: t
    message: m
    thresold: 3
  - name: bad_template
    event: node_status
    condition: new_state == "offline"
    level: info
    category: x
    title: "{node}"
    message: m
"""


def problems(text: str) -> list[str]:
    with pytest.raises(RulesFileError) as error:
        parse_rules(text.encode(), "rules.yaml")
    return [str(p) for p in error.value.problems]


def test_the_default_rules_file_is_valid_and_holds_the_seed_example():
    rule_set = load_rules_file(DEFAULT_RULES_FILE)
    assert EvaluatorSettings().rules_file == DEFAULT_RULES_FILE
    cpu = rule_set.by_name["high_cpu"]
    assert (cpu.event, cpu.condition.text, cpu.for_seconds, cpu.level, cpu.category, cpu.title) == (
        "node_metrics",
        "cpu.usage > 80",
        300,
        "warning",
        "resource",
        "High CPU Usage",
    )
    assert [a.type for a in cpu.actions] == ["scale_up"]
    assert set(rule_set.by_name) >= DEFAULT_RULE_NAMES


def test_every_problem_is_reported_with_line_rule_and_field():
    assert problems(BAD_FILE) == [
        "line 5, rule 'high_cpu', field 'condition': cpu has no field 'usge'; it has: cores, temperature, "
        "usage (column 1)",
        "line 13, rule 'slow', field 'for': expected a duration such as 90s, 5m or 2h, not 'five minutes'",
        "line 14, rule 'slow', field 'level': Input should be 'info', 'warning', 'error' or 'critical'",
        "line 18, rule 'slow', field 'thresold': unknown key",
        "line 24, rule 'bad_template', field 'title': unknown placeholder {node}; known: {duration}, "
        "{resource_id}, {rule}, {threshold}, {value}",
    ]


def test_duplicates_missing_fields_and_broken_yaml_are_reported():
    assert problems("rules:\n" + CPU_RULE + CPU_RULE) == [
        "line 16, rule 'high_cpu', field 'name': another rule has this name (line 3)"
    ]
    assert problems("rules:\n  - name: x\n    event: node_status\n") == [
        f"line 2, rule 'x', field '{field}': required"
        for field in ("condition", "level", "category", "title", "message")
    ]
    assert (
        problems("rules:\n  - name: x\n    name: y\n")[0] == "line 3, rule 'y', field 'name': duplicate key"
    )
    assert problems("rules: [\n") == [
        "line 2: not valid YAML: while parsing a flow node expected the node content, "
        "but found '<stream end>'"
    ]
    assert problems("") == ["file: expected a mapping with a 'rules' list (and optional 'defaults')"]
    assert problems(
        "rules:\n  - name: x\n    event: system_alert\n    condition: level == 'x'\n"
        "    level: info\n    category: c\n    title: t\n    message: m\n"
    )[0].startswith("line 3, rule 'x', field 'event': Input should be 'node_status'")


def test_a_missing_file_is_reported():
    with pytest.raises(RulesFileError, match="No such file"):
        load_rules_file(Path("/nonexistent/rules.yaml"))


@pytest.mark.parametrize(
    ("condition", "model", "message"),
    [
        ("cpu > 80", NodeMetrics, "cpu is a section, not a value; use one of: cpu.usage"),
        ('new_state == "ofline"', NodeStatus, "'ofline' is not a possible value of new_state"),
        ("new_state > 3", NodeStatus, "new_state is text and 3 is a number"),
        ('new_state > "offline"', NodeStatus, "text is compared with == or !="),
        (
            "cpu.usage >",
            NodeMetrics,
            "expected a field, a number, a string or '(', found the end (column 12)",
        ),
        ("cpu.usage 80", NodeMetrics, "unexpected '80' (column 11)"),
        ("cpu.usage > 80 $", NodeMetrics, "unexpected character '$' (column 16)"),
        ("(cpu.usage > 1", NodeMetrics, "expected ')', found the end"),
        ("details == 'x'", NodeStatus, "details is a section, not a value; use one of: details.ip"),
        ("__import__('os') > 1", NodeMetrics, "unknown function '__import__'; known: has (column 1)"),
        ("cpu.usage + 1", NodeMetrics, "gives a number, not true or false"),
        ("new_state && true", NodeStatus, "a condition is expected here, but new_state is text"),
    ],
)
def test_invalid_conditions_are_explained(condition, model, message):
    with pytest.raises(ConditionError, match=None) as error:
        compile_condition(condition, model)
    assert message in str(error.value)


def test_conditions_combine_compute_and_answer_no_data_when_a_value_is_missing():
    ratio = compile_condition("memory.used / memory.total * 100 >= 90", NodeMetrics)
    assert ratio.holds({"memory": {"used": 95, "total": 100}}) is True
    assert ratio.holds({"memory": {"used": 95, "total": 0}}) is None  # division by zero: no data
    assert ratio.value({"memory": {"used": 95, "total": 100}}) == 95
    either = compile_condition("(cpu.usage > 90 or gpu.usage > 90) and not (cpu.cores < 2)", NodeMetrics)
    assert either.holds({"cpu": {"usage": 95, "cores": 8}}) is True
    assert either.holds({"cpu": {"usage": 95, "cores": 1}}) is False
    assert either.holds({"gpu": {"usage": 10}}) is None
    exited = compile_condition('new_state in ["stopped", "exited"] and exit_code != 0', ContainerStatus)
    assert exited.holds({"new_state": "exited", "exit_code": 2}) is True
    assert exited.holds({"new_state": "running"}) is False  # known false even without exit_code
    assert exited.holds({"new_state": "exited", "exit_code": True}) is None  # a bool is not a number
    assert (exited.threshold, exited.fields) == (0, ("exit_code", "new_state"))
    # The same language as the edge's filters: CEL's && || ! beside the older and/or/not.
    cel = compile_condition('new_state in ["stopped", "exited"] && !(exit_code == 0)', ContainerStatus)
    assert cel.holds({"new_state": "exited", "exit_code": 2}) is True
    assert cel.holds({"new_state": "exited", "exit_code": 0}) is False
    gpu = compile_condition("has(gpu.temperature) && gpu.temperature > 85", NodeMetrics)
    assert gpu.holds({"gpu": {"usage": 1}}) is False  # no temperature: known false, not no data
    assert gpu.holds({"gpu": {"usage": 1, "temperature": 90}}) is True


def test_templates_write_numbers_as_people_do():
    assert render(
        "{value} > {threshold} for {duration}", {"value": 85.0, "threshold": 80, "duration": "5m"}
    ) == ("85 > 80 for 5m")
    assert render("{value:.1f}%", {"value": 93.456}) == "93.5%"
    assert render("{value:.1f}", {"value": "offline"}) == "offline"  # a format that does not fit: plain
    assert rules(CPU_RULE).by_name["high_cpu"].resolved_message.startswith("Resolved: ")


def test_a_bad_rules_file_stops_the_service_before_it_starts(tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text(BAD_FILE, encoding="utf-8")
    with pytest.raises(RulesFileError):
        create_app(EvaluatorSettings(rules_file=bad))
    result = subprocess.run(
        [sys.executable, "-m", "alert_evaluator"],
        env=os.environ
        | {
            "ALERT_EVALUATOR_RULES_FILE": str(bad),
            "ALERT_EVALUATOR_PORT": "0",
            "NATS_URL": "nats://127.0.0.1:1",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"invalid rules file {bad} (5 problem(s)):" in result.stderr
    assert "line 5, rule 'high_cpu', field 'condition'" in result.stderr
    assert "Traceback" not in result.stderr
