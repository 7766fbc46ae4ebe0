"""Reading a YAML rules file into a `RuleSet`, or into errors that say line, rule and field.

The whole file is checked before anything is used: every problem is reported at once, and a file
with any problem yields no rules at all, so an evaluator never runs half-configured.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from alert_evaluator.conditions import ConditionError
from alert_evaluator.rules import (
    AlertRule,
    RuleSet,
    RulesFileSpec,
    RuleSpec,
    TemplateError,
    checksum_of,
    compile_rule,
)

Path_ = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class RuleProblem:
    line: int | None
    rule: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        rule = f", rule {self.rule!r}" if self.rule else ""
        field = f", field {self.field!r}" if self.field else ""
        return f"{where}{rule}{field}: {self.message}"


class RulesFileError(ValueError):
    """The rules file cannot be used; `problems` lists each one."""

    def __init__(self, source: str, problems: list[RuleProblem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"invalid rules file {source} ({len(problems)} problem(s)):\n{lines}")


def load_rules_file(path: Path) -> RuleSet:
    """Read, validate and compile the rules in `path`.

    Raises:
        RulesFileError: the file is missing, not YAML, or any rule is invalid.
    """
    source = str(path)
    try:
        content = path.read_bytes()
    except OSError as error:
        raise RulesFileError(source, [RuleProblem(None, None, "", error.strerror or str(error))]) from None
    return parse_rules(content, source)


def parse_rules(content: bytes, source: str = "<rules>") -> RuleSet:
    """Validate and compile the rules of a YAML document.

    Raises:
        RulesFileError: listing every problem found.
    """
    document, lines, duplicates = _read_yaml(content, source)
    if not isinstance(document, dict):
        message = "expected a mapping with a 'rules' list (and optional 'defaults')"
        raise RulesFileError(source, [RuleProblem(_line(lines, ()), None, "", message)])
    problems = [
        RuleProblem(line, _rule_label(document, path), ".".join(map(str, path[2:] or path)), "duplicate key")
        for path, line in duplicates
    ]
    try:
        spec = RulesFileSpec.model_validate(document)
    except ValidationError as error:
        raise RulesFileError(source, problems + _problems(error, (), lines, None)) from None
    rules: list[AlertRule] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(spec.rules):
        at: Path_ = ("rules", index)
        label = _rule_label(document, at)
        try:
            rule_spec = RuleSpec.model_validate(raw)
        except ValidationError as error:
            problems += _problems(error, at, lines, label)
            continue
        if rule_spec.name in seen:
            problems.append(
                RuleProblem(
                    _line(lines, (*at, "name")),
                    label,
                    "name",
                    f"another rule has this name (line {seen[rule_spec.name]})",
                )
            )
            continue
        seen[rule_spec.name] = _line(lines, at) or 0
        try:
            rules.append(compile_rule(rule_spec, spec.defaults))
        except ConditionError as error:
            problems.append(RuleProblem(_line(lines, (*at, "condition")), label, "condition", str(error)))
        except TemplateError as error:
            field, _, message = str(error).partition(": ")
            problems.append(RuleProblem(_line(lines, (*at, *_split(field))), label, field, message))
    if problems:
        raise RulesFileError(source, problems)
    return RuleSet(tuple(rules), source, checksum_of(content))


def _rule_label(document: dict[str, Any], path: Path_) -> str | None:
    """The name of the rule that `path` is in (its number when it has no name), or None."""
    if len(path) < 2 or path[0] != "rules" or not isinstance(path[1], int):
        return None
    rules = document.get("rules")
    rule = rules[path[1]] if isinstance(rules, list) and path[1] < len(rules) else None
    name = rule.get("name") if isinstance(rule, dict) else None
    return name if isinstance(name, str) else f"#{path[1] + 1}"


def _read_yaml(content: bytes, source: str) -> tuple[Any, dict[Path_, int], list[tuple[Path_, int]]]:
    """The document, the line of every key and list item, and duplicate keys (PyYAML keeps the last)."""
    loader = yaml.SafeLoader(content)
    try:
        node = loader.get_single_node()
        document = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        problem = " ".join(p for p in (error.context, error.problem) if p)
        raise RulesFileError(source, [RuleProblem(line, None, "", f"not valid YAML: {problem}")]) from None
    except yaml.YAMLError as error:
        raise RulesFileError(source, [RuleProblem(None, None, "", f"not valid YAML: {error}")]) from None
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    duplicates: list[tuple[Path_, int]] = []
    if node is not None:
        _index(node, (), lines, duplicates)
    return document, lines, duplicates


def _index(
    node: yaml.Node, path: Path_, lines: dict[Path_, int], duplicates: list[tuple[Path_, int]]
) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            if child in lines:
                duplicates.append((child, key_node.start_mark.line + 1))
            _index(value_node, child, lines, duplicates)
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for number, item in enumerate(node.value):
            _index(item, (*path, number), lines, duplicates)


def _line(lines: dict[Path_, int], path: Path_) -> int | None:
    """The line of `path`, or of its nearest ancestor that is in the file (a missing key)."""
    while path not in lines and path:
        path = path[:-1]
    return lines.get(path)


def _split(field: str) -> Path_:
    return tuple(int(p) if p.isdigit() else p for p in field.split("."))


def _problems(
    error: ValidationError, at: Path_, lines: dict[Path_, int], rule: str | None
) -> list[RuleProblem]:
    problems = []
    for item in error.errors(include_url=False):
        loc: Path_ = tuple("for" if part == "for_" else part for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "required"
        elif item["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(RuleProblem(_line(lines, (*at, *loc)), rule, ".".join(map(str, loc)), message))
    return problems
