"""Rule conditions checked against the payload models and compiled, never `eval`-ed.

Field paths name keys of the event's `data`; they are checked against the payload model of the
rule's event type when the rules file is loaded, so a typo (`cpu.usge`), a comparison of a state
with a number, or a state value that does not exist (`new_state == "ofline"`) is an error at
start, not an alert that silently never fires.

A compiled condition is a tree of closures. It answers True, False, or None when the event lacks
a value it needs (no `gpu` section, a division by zero): None is "no data", which is not an
observation at all, so it neither starts nor resolves an alert.
"""

import operator
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, Union

from pydantic import BaseModel

from alert_evaluator.condition_syntax import (
    Comparison,
    Cond,
    ConditionError,
    Expr,
    Field,
    Literal_,
    Logical,
    Negative,
    Not,
    Value,
    parse_condition,
)

Data: TypeAlias = dict[str, Any]
Getter: TypeAlias = Callable[[Data], Any]
Predicate: TypeAlias = Callable[[Data], bool | None]
Kind = Literal["number", "string"]


# --- types of the payload's fields -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldType:
    kind: Kind
    choices: frozenset[str] = frozenset()  # the allowed values of an enumerated string field


def field_type(model: type[BaseModel], path: Sequence[str]) -> FieldType:
    """What the payload model says the field at `path` holds.

    Raises:
        ConditionError: for a path the model does not have, or a field that is not a number or text.
    """
    current: type[BaseModel] = model
    for depth, name in enumerate(path):
        fields = current.model_fields
        if name not in fields:
            where = ".".join(path[:depth]) or "data"
            known = ", ".join(sorted(fields))
            raise ConditionError(f"{where} has no field {name!r}; it has: {known}")
        annotation = _without_none(fields[name].annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if depth == len(path) - 1:
                subfields = ", ".join(f"{'.'.join(path)}.{f}" for f in annotation.model_fields)
                raise ConditionError(f"{'.'.join(path)} is a section, not a value; use one of: {subfields}")
            current = annotation
            continue
        if depth != len(path) - 1:
            raise ConditionError(f"{'.'.join(path[: depth + 1])} is a value, not a section")
        kind = _kind_of(annotation)
        if kind is None:
            raise ConditionError(f"{'.'.join(path)} is not a number or a text value; it cannot be compared")
        return kind
    raise ConditionError("empty field path")


def _without_none(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return _without_none(members[0])
    return annotation


def _kind_of(annotation: Any) -> FieldType | None:
    if annotation in (int, float):
        return FieldType("number")
    if annotation is str:
        return FieldType("string")
    if typing.get_origin(annotation) is Literal:
        return FieldType("string", frozenset(str(v) for v in typing.get_args(annotation)))
    return None


# --- compiling ------------------------------------------------------------------------------

_MISSING: Final = object()
_NUMBER_TYPES: Final = (int, float)
_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_ARITHMETIC: Final[dict[str, Callable[[float, float], float]]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    """A condition ready to run on an event's `data`.

    `value` reads what the rule watches (the left side of its main comparison: the first one
    against a number, else the first one); `threshold` is what that is compared with. Both fill
    an alert's `current_value`/`threshold` and the `{value}`/`{threshold}` placeholders.
    """

    text: str
    holds: Predicate
    value: Getter
    threshold: Value | tuple[Value, ...]
    fields: tuple[str, ...]
    ordering: tuple[str, str] | None = None
    """(watched expression, operator) when the whole condition is `<expression> <op> <number>` with
    an ordering operator (> >= < <=): rules of that shape on the same expression are evaluated
    together, one value and one bisection for all their thresholds."""


def compile_condition(text: str, model: type[BaseModel]) -> CompiledCondition:
    """Parse `text`, check it against `model` (the event type's payload), and compile it.

    Raises:
        ConditionError: for a syntax error, an unknown field or a comparison that makes no sense.
    """
    tree = parse_condition(text)
    compiler = _Compiler(model)
    holds = compiler.condition(tree)
    main = _main_comparison(tree)
    value, _kind = compiler.expression(main.left)
    threshold: Value | tuple[Value, ...]
    if isinstance(main.right, tuple):
        threshold = tuple(v.value for v in main.right)
    elif isinstance(main.right, Literal_):
        threshold = main.right.value
    else:
        threshold = _describe(main.right)
    ordering = None
    if (
        isinstance(tree, Comparison)
        and tree.op in (">", ">=", "<", "<=")
        and isinstance(tree.right, Literal_)
        and not isinstance(tree.right.value, str)
    ):
        ordering = (_describe(tree.left), tree.op)
    return CompiledCondition(
        text, holds, _present(value), threshold, tuple(sorted(compiler.fields)), ordering
    )


def _main_comparison(tree: Cond) -> Comparison:
    comparisons = list(_comparisons(tree))
    for comparison in comparisons:
        right = comparison.right
        if isinstance(right, Literal_) and not isinstance(right.value, str):
            return comparison
    return comparisons[0]


def _comparisons(tree: Cond) -> typing.Iterator[Comparison]:
    if isinstance(tree, Comparison):
        yield tree
    elif isinstance(tree, Logical):
        for operand in tree.operands:
            yield from _comparisons(operand)
    else:
        yield from _comparisons(tree.operand)


def _describe(expr: Expr) -> str:
    if isinstance(expr, Literal_):
        return repr(expr.value) if isinstance(expr.value, str) else str(expr.value)
    if isinstance(expr, Field):
        return expr.text
    if isinstance(expr, Negative):
        return f"-{_describe(expr.operand)}"
    return f"({_describe(expr.left)} {expr.op} {_describe(expr.right)})"


def _present(getter: Getter) -> Getter:
    def value(data: Data) -> Any:
        result = getter(data)
        return None if result is _MISSING else result

    return value


class _Compiler:
    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        self.fields: set[str] = set()

    def condition(self, tree: Cond) -> Predicate:
        if isinstance(tree, Comparison):
            return self.comparison(tree)
        if isinstance(tree, Not):
            inner = self.condition(tree.operand)

            def negated(data: Data) -> bool | None:
                result = inner(data)
                return None if result is None else not result

            return negated
        parts = tuple(self.condition(operand) for operand in tree.operands)
        return _all(parts) if tree.op == "and" else _any(parts)

    def expression(self, expr: Expr) -> tuple[Getter, FieldType]:
        if isinstance(expr, Literal_):
            constant = expr.value
            kind: Kind = "string" if isinstance(constant, str) else "number"
            return (lambda _data: constant), FieldType(kind)
        if isinstance(expr, Field):
            try:
                kind_of_field = field_type(self.model, expr.path)
            except ConditionError as error:
                raise ConditionError(str(error), expr.column) from None
            self.fields.add(expr.text)
            return _field_getter(expr.path, kind_of_field.kind), kind_of_field
        if isinstance(expr, Negative):
            inner, inner_type = self.expression(expr.operand)
            self._require_number(inner_type, expr.operand, "'-'")

            def negative(data: Data) -> Any:
                result = inner(data)
                return _MISSING if result is _MISSING else -result

            return negative, FieldType("number")
        left, left_type = self.expression(expr.left)
        right, right_type = self.expression(expr.right)
        self._require_number(left_type, expr.left, repr(expr.op))
        self._require_number(right_type, expr.right, repr(expr.op))
        return _arithmetic(_ARITHMETIC[expr.op], left, right), FieldType("number")

    def _require_number(self, kind: FieldType, expr: Expr, what: str) -> None:
        if kind.kind != "number":
            raise ConditionError(f"{_describe(expr)} is text; {what} needs numbers", expr.column)

    def comparison(self, tree: Comparison) -> Predicate:
        left, left_type = self.expression(tree.left)
        if isinstance(tree.right, tuple):
            for literal in tree.right:
                self._check_operand(left_type, literal, tree)
            choices = frozenset(literal.value for literal in tree.right)
            return _membership(left, choices)
        right, right_type = self.expression(tree.right)
        if left_type.kind != right_type.kind:
            raise ConditionError(
                f"{_describe(tree.left)} is {_a(left_type.kind)} and {_describe(tree.right)} is "
                f"{_a(right_type.kind)}; they cannot be compared",
                tree.column,
            )
        if left_type.kind == "string" and tree.op not in ("==", "!="):
            raise ConditionError(f"text is compared with == or != (or 'in'), not {tree.op}", tree.column)
        if isinstance(tree.right, Literal_):
            self._check_operand(left_type, tree.right, tree)
        if isinstance(tree.left, Literal_):
            self._check_operand(right_type, tree.left, tree)
        return _compare(_COMPARE[tree.op], left, right)

    def _check_operand(self, kind: FieldType, literal: Literal_, tree: Comparison) -> None:
        literal_kind = "string" if isinstance(literal.value, str) else "number"
        if literal_kind != kind.kind:
            raise ConditionError(
                f"{_describe(tree.left)} is {_a(kind.kind)}, {_describe(literal)} is {_a(literal_kind)}",
                literal.column,
            )
        if kind.choices and literal.value not in kind.choices:
            raise ConditionError(
                f"{literal.value!r} is not a possible value of {_describe(tree.left)}; "
                f"expected one of: {', '.join(sorted(kind.choices))}",
                literal.column,
            )


def _a(kind: str) -> str:
    return "a number" if kind == "number" else "text"


def _field_getter(path: tuple[str, ...], kind: Kind) -> Getter:
    wanted: tuple[type, ...] = _NUMBER_TYPES if kind == "number" else (str,)

    def get(data: Data) -> Any:
        current: Any = data
        for key in path:
            if type(current) is not dict:
                return _MISSING
            current = current.get(key, _MISSING)
        # bool is an int to Python, but never a metric.
        if type(current) is bool or not isinstance(current, wanted):
            return _MISSING
        return current

    return get


def _arithmetic(apply: Callable[[float, float], float], left: Getter, right: Getter) -> Getter:
    def compute(data: Data) -> Any:
        a = left(data)
        b = right(data)
        if a is _MISSING or b is _MISSING:
            return _MISSING
        try:
            return apply(a, b)
        except ZeroDivisionError:
            return _MISSING

    return compute


def _compare(test: Callable[[Any, Any], bool], left: Getter, right: Getter) -> Predicate:
    def compare(data: Data) -> bool | None:
        a = left(data)
        b = right(data)
        if a is _MISSING or b is _MISSING:
            return None
        return test(a, b)

    return compare


def _membership(left: Getter, choices: frozenset[Value]) -> Predicate:
    def member(data: Data) -> bool | None:
        a = left(data)
        return None if a is _MISSING else a in choices

    return member


def _all(parts: tuple[Predicate, ...]) -> Predicate:
    return _logical(parts, deciding=False)


def _any(parts: tuple[Predicate, ...]) -> Predicate:
    return _logical(parts, deciding=True)


def _logical(parts: tuple[Predicate, ...], deciding: bool) -> Predicate:
    """`and` (one False decides) or `or` (one True decides), with None for "no data": a part that
    is unknown makes the whole unknown unless another part decides."""

    def combine(data: Data) -> bool | None:
        unknown = False
        for part in parts:
            result = part(data)
            if result is deciding:
                return deciding
            unknown = unknown or result is None
        return None if unknown else not deciding

    return combine
