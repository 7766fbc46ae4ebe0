"""Expressions checked against the event models and compiled to Python functions, never `eval`-ed.

Semantics are CEL's over JSON values, with one simplification: numbers are one type, as in JSON
(`100` and `100.0` are equal, `/` divides exactly). A value that cannot be computed — a field
the event lacks, a division by zero, a comparison of text with a number in an open-ended field —
is an *error*, and errors behave as in CEL: `&&` and `||` are decided by any operand that decides
them (`false && error` is false, `true || error` is true), every other operator passes the error
on. A compiled expression answers True, False, or None for an error: a stream filter delivers
only True; an alert rule reads None as "no data".

Each read checks the runtime type of what it finds against the model: stored events are
untrusted input, and `True` must not pass for the number 1. The checked tree is written out as
one Python function (`codegen`).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from eh_contracts.expressions.codegen import generate
from eh_contracts.expressions.field_types import BOOL, NULL, NUMBER, STRING, FieldType, Kind
from eh_contracts.expressions.syntax import (
    DEFAULT_LIMITS,
    ORDERINGS,
    Binary,
    ExpressionError,
    ExpressionLimits,
    Field,
    Has,
    ListLiteral,
    Literal_,
    LiteralValue,
    Logical,
    Node,
    StringTest,
    Unary,
    parse_expression,
    unparse,
)

Root: TypeAlias = Mapping[str, Any]
"""An event as JSON decodes it (a dict): the envelope for filters, a payload for alert rules."""


@dataclass(frozen=True, slots=True)
class CompiledExpression:
    """An expression ready to run on an event (the envelope, or a payload for alert rules)."""

    text: str
    canonical: str
    """The same expression printed in one canonical form: equal filters share one evaluation."""
    tree: Node
    evaluate: Callable[[Root], bool | None]
    """True, False, or None when the expression cannot be computed on this event."""
    fields: tuple[str, ...]
    source: str = field(default="", repr=False, compare=False)
    """The Python source `evaluate` was compiled from (for reading, not for running)."""

    def matches(self, root: Root) -> bool:
        return self.evaluate(root) is True


def compile_expression(
    text: str,
    scope: FieldType,
    *,
    limits: ExpressionLimits = DEFAULT_LIMITS,
    legacy_words: bool = False,
) -> CompiledExpression:
    """Parse `text`, check it against `scope` (see `field_types`), and compile it.

    Raises:
        ExpressionError: a syntax error, a limit exceeded, an unknown field, or operands that
            cannot meet (text compared with a number, a section used as a value).
    """
    tree = parse_expression(text, limits, legacy_words=legacy_words)
    checker = Checker(scope)
    kind = checker.check(tree)
    if not kind.allows(Kind.BOOL):
        raise ExpressionError(
            f"the expression gives {kind.describe()}, not true or false; compare it with something",
            tree.column,
            "type",
        )
    evaluate, source = generate(tree, checker.field_types, "answer")
    return CompiledExpression(text, unparse(tree), tree, evaluate, tuple(sorted(checker.fields)), source)


def compile_value(node: Node, scope: FieldType) -> tuple[Callable[[Root], Any], FieldType]:
    """A function giving what `node` computes (None when it cannot), for callers that show
    values: the alert evaluator's `{value}`."""
    checker = Checker(scope)
    kind = checker.check(node)
    value, _source = generate(node, checker.field_types, "value")
    return value, kind


def literal_kind(value: LiteralValue) -> FieldType:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, str):
        return STRING
    return NUMBER


class Checker:
    """Checks one tree against a scope: `fields` collects every path it reads, `field_types`
    what the scope says each holds (the generated code checks each value it reads against it)."""

    def __init__(self, scope: FieldType) -> None:
        self.scope = scope
        self.fields: set[str] = set()
        self.field_types: dict[tuple[str, ...], FieldType] = {}

    def check(self, node: Node) -> FieldType:
        """What `node` gives; raises ExpressionError for what cannot be."""
        if isinstance(node, Literal_):
            return literal_kind(node.value)
        if isinstance(node, Field):
            kind = self.field_type(node)
            self.value_field(node, kind)
            self.fields.add(node.text)
            return kind
        if isinstance(node, ListLiteral):
            raise ExpressionError("a list is only allowed after 'in'", node.column, "type")
        if isinstance(node, Unary):
            return self.unary(node)
        if isinstance(node, Logical):
            for operand in node.operands:
                self.boolean(operand)
            return BOOL
        if isinstance(node, Has):
            self.field_type(node.field)
            self.fields.add(node.field.text)
            return BOOL
        if isinstance(node, StringTest):
            return self.string_test(node)
        if node.op == "in":
            return self.membership(node)
        if node.op in ("==", "!="):
            return self.equality(node)
        if node.op in ORDERINGS:
            return self.ordering(node)
        return self.arithmetic(node)

    # -- fields ---------------------------------------------------------------------------------

    def field_type(self, node: Field) -> FieldType:
        current = self.scope
        for depth, name in enumerate(node.path):
            child = current.child(name)
            if child is None:
                where = ".".join(node.path[:depth])
                known = ", ".join(sorted(current.fields or ()))
                if where:
                    if current.fields is None:
                        message = f"{where} is {current.describe()}, it has no fields"
                    else:
                        message = f"{where} has no field {name!r}; it has: {known}"
                else:
                    message = f"unknown name {name!r}; known: {known}"
                raise ExpressionError(message, node.column, "unknown_field")
            current = child
        self.field_types[node.path] = current
        return current

    def value_field(self, node: Field, kind: FieldType) -> None:
        if kind.only(Kind.MAP) and kind.fields is not None:
            fields = ", ".join(f"{node.text}.{name}" for name in kind.fields)
            raise ExpressionError(
                f"{node.text} is a section, not a value; use one of: {fields}", node.column, "type"
            )

    # -- operators ------------------------------------------------------------------------------

    def boolean(self, node: Node) -> None:
        kind = self.check(node)
        if not kind.allows(Kind.BOOL):
            raise ExpressionError(
                f"a condition is expected here, but {describe(node)} is {kind.describe()}",
                node.column,
                "type",
            )

    def unary(self, node: Unary) -> FieldType:
        if node.op == "!":
            self.boolean(node.operand)
            return BOOL
        kind = self.check(node.operand)
        self.require(kind, Kind.NUMBER, node.operand, "'-'")
        return NUMBER

    def require(self, kind: FieldType, wanted: Kind, node: Node, what: str) -> None:
        if not kind.allows(wanted):
            raise ExpressionError(
                f"{describe(node)} is {kind.describe()}; {what} needs {_a(wanted)}", node.column, "type"
            )

    def arithmetic(self, node: Binary) -> FieldType:
        left_kind = self.check(node.left)
        right_kind = self.check(node.right)
        self.require(left_kind, Kind.NUMBER, node.left, repr(node.op))
        self.require(right_kind, Kind.NUMBER, node.right, repr(node.op))
        return NUMBER

    def string_test(self, node: StringTest) -> FieldType:
        target_kind = self.check(node.target)
        argument_kind = self.check(node.argument)
        self.require(target_kind, Kind.STRING, node.target, node.method)
        self.require(argument_kind, Kind.STRING, node.argument, node.method)
        return BOOL

    def comparable(self, node: Binary, left: FieldType, right: FieldType) -> None:
        if left.dynamic or right.dynamic or left.kinds == {Kind.NULL} or right.kinds == {Kind.NULL}:
            return  # checked when the event arrives; null meets anything in ==
        if not (left.kinds & right.kinds - {Kind.NULL}):
            raise ExpressionError(
                f"{describe(node.left)} is {left.describe()} and {describe(node.right)} is "
                f"{right.describe()}; they cannot be compared",
                node.column,
                "type",
            )

    def check_choice(self, field_node: Node, kind: FieldType, literal: Literal_) -> None:
        if kind.choices is not None and isinstance(literal.value, str) and literal.value not in kind.choices:
            raise ExpressionError(
                f"{literal.value!r} is not a possible value of {describe(field_node)}; "
                f"expected one of: {', '.join(sorted(kind.choices))}",
                literal.column,
                "type",
            )

    def equality(self, node: Binary) -> FieldType:
        left_kind = self.check(node.left)
        right_kind = self.check(node.right)
        self.comparable(node, left_kind, right_kind)
        if isinstance(node.right, Literal_):
            self.check_choice(node.left, left_kind, node.right)
        elif isinstance(node.left, Literal_):
            self.check_choice(node.right, right_kind, node.left)
        return BOOL

    def ordering(self, node: Binary) -> FieldType:
        left_kind = self.check(node.left)
        right_kind = self.check(node.right)
        ordered = {Kind.NUMBER, Kind.STRING, Kind.DYN}
        for side, kind in ((node.left, left_kind), (node.right, right_kind)):
            if not (kind.kinds & ordered):
                raise ExpressionError(
                    f"{describe(side)} is {kind.describe()}; {node.op} compares numbers or text",
                    node.column,
                    "type",
                )
        self.comparable(node, left_kind, right_kind)
        for side, kind in ((node.left, left_kind), (node.right, right_kind)):
            if kind.choices is not None and not kind.dynamic:
                raise ExpressionError(
                    f"{describe(side)} is one of a set of values: text is compared with == or != "
                    f"(or 'in'), not {node.op}",
                    node.column,
                    "type",
                )
        return BOOL

    def membership(self, node: Binary) -> FieldType:
        if not isinstance(node.right, ListLiteral):
            raise ExpressionError(
                '\'in\' takes a list of values, such as x in ["a", "b"]', node.right.column, "type"
            )
        left_kind = self.check(node.left)
        for item in node.right.items:
            item_kind = literal_kind(item.value)
            if not left_kind.dynamic and item.value is not None and not (left_kind.kinds & item_kind.kinds):
                raise ExpressionError(
                    f"{describe(node.left)} is {left_kind.describe()}, "
                    f"{describe(item)} is {item_kind.describe()}",
                    item.column,
                    "type",
                )
            self.check_choice(node.left, left_kind, item)
        return BOOL


def describe(node: Node) -> str:
    return node.text if isinstance(node, Field) else unparse(node)


def _a(kind: Kind) -> str:
    return {"number": "numbers", "string": "text", "bool": "true or false"}.get(kind.value, kind.value)
