"""Expressions checked against the event models and compiled to closures, never `eval`-ed.

Semantics are CEL's over JSON values, with one simplification: numbers are one type, as in JSON
(`100` and `100.0` are equal, `/` divides exactly). A value that cannot be computed — a field
the event lacks, a division by zero, a comparison of text with a number in an open-ended field —
is an *error*, and errors behave as in CEL: `&&` and `||` are decided by any operand that decides
them (`false && error` is false, `true || error` is true), every other operator passes the error
on. A compiled expression answers True, False, or None for an error: a stream filter delivers
only True; an alert rule reads None as "no data".

Each closure checks the runtime type of what it reads: stored events are untrusted input, and
`True` must not pass for the number 1.
"""

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

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
Getter: TypeAlias = Callable[[Root], Any]


class _Error:
    """The value of what cannot be computed."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<error>"


ERROR: Final = _Error()
_NUMBERS: Final = frozenset({int, float})
_ANY: Final = frozenset(
    {int, float, str, bool, type(None), dict, list}
)  # what JSON decodes to  # type(True) is bool: never a number here
_LOOKUP_ERRORS: Final = (KeyError, TypeError, IndexError)
_ORDER: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ARITHMETIC: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


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
    compiler = Compiler(scope)
    getter, kind = compiler.compile(tree)
    if not kind.allows(Kind.BOOL):
        raise ExpressionError(
            f"the expression gives {kind.describe()}, not true or false; compare it with something",
            tree.column,
            "type",
        )
    return CompiledExpression(text, unparse(tree), tree, _as_answer(getter), tuple(sorted(compiler.fields)))


def _as_answer(getter: Getter) -> Callable[[Root], bool | None]:
    def evaluate(root: Root) -> bool | None:
        result = getter(root)
        return result if type(result) is bool else None

    return evaluate


def literal_kind(value: LiteralValue) -> FieldType:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, str):
        return STRING
    return NUMBER


class Compiler:
    """Checks and compiles one tree against a scope; `fields` collects every path it reads."""

    def __init__(self, scope: FieldType) -> None:
        self.scope = scope
        self.fields: set[str] = set()

    def compile(self, node: Node) -> tuple[Getter, FieldType]:
        if isinstance(node, Literal_):
            constant = node.value
            return (lambda _root: constant), literal_kind(constant)
        if isinstance(node, Field):
            kind = self.field_type(node)
            self.value_field(node, kind)
            self.fields.add(node.text)
            return path_getter(node.path, python_types(kind)), kind
        if isinstance(node, ListLiteral):
            raise ExpressionError("a list is only allowed after 'in'", node.column, "type")
        if isinstance(node, Unary):
            return self.unary(node)
        if isinstance(node, Logical):
            return self.logical(node)
        if isinstance(node, Has):
            self.field_type(node.field)
            self.fields.add(node.field.text)
            return presence(node.field.path), BOOL
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
        return current

    def value_field(self, node: Field, kind: FieldType) -> None:
        if kind.only(Kind.MAP) and kind.fields is not None:
            fields = ", ".join(f"{node.text}.{name}" for name in kind.fields)
            raise ExpressionError(
                f"{node.text} is a section, not a value; use one of: {fields}", node.column, "type"
            )

    # -- operators ------------------------------------------------------------------------------

    def boolean(self, node: Node) -> Getter:
        getter, kind = self.compile(node)
        if not kind.allows(Kind.BOOL):
            raise ExpressionError(
                f"a condition is expected here, but {describe(node)} is {kind.describe()}",
                node.column,
                "type",
            )
        return getter

    def unary(self, node: Unary) -> tuple[Getter, FieldType]:
        if node.op == "!":
            return negation(self.boolean(node.operand)), BOOL
        inner, kind = self.compile(node.operand)
        self.require(kind, Kind.NUMBER, node.operand, "'-'")
        return negative(inner), NUMBER

    def logical(self, node: Logical) -> tuple[Getter, FieldType]:
        parts = tuple(self.boolean(operand) for operand in node.operands)
        return logical(parts, deciding=node.op == "||"), BOOL

    def require(self, kind: FieldType, wanted: Kind, node: Node, what: str) -> None:
        if not kind.allows(wanted):
            raise ExpressionError(
                f"{describe(node)} is {kind.describe()}; {what} needs {_a(wanted)}", node.column, "type"
            )

    def arithmetic(self, node: Binary) -> tuple[Getter, FieldType]:
        left, left_kind = self.compile(node.left)
        right, right_kind = self.compile(node.right)
        self.require(left_kind, Kind.NUMBER, node.left, repr(node.op))
        self.require(right_kind, Kind.NUMBER, node.right, repr(node.op))
        return arithmetic(_ARITHMETIC[node.op], left, right), NUMBER

    def string_test(self, node: StringTest) -> tuple[Getter, FieldType]:
        target, target_kind = self.compile(node.target)
        argument, argument_kind = self.compile(node.argument)
        self.require(target_kind, Kind.STRING, node.target, node.method)
        self.require(argument_kind, Kind.STRING, node.argument, node.method)
        return string_test(node.method, target, argument), BOOL

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

    def equality(self, node: Binary) -> tuple[Getter, FieldType]:
        left, left_kind = self.compile(node.left)
        right, right_kind = self.compile(node.right)
        self.comparable(node, left_kind, right_kind)
        if isinstance(node.right, Literal_):
            self.check_choice(node.left, left_kind, node.right)
            return literal_equality(left, node.right.value, node.op == "=="), BOOL
        if isinstance(node.left, Literal_):
            self.check_choice(node.right, right_kind, node.left)
            return literal_equality(right, node.left.value, node.op == "=="), BOOL
        return equality(left, right, node.op == "=="), BOOL

    def ordering(self, node: Binary) -> tuple[Getter, FieldType]:
        left, left_kind = self.compile(node.left)
        right, right_kind = self.compile(node.right)
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
        compare = _ORDER[node.op]
        if isinstance(node.right, Literal_) and isinstance(node.left, Field):
            return field_ordering(node.left.path, compare, node.right.value), BOOL
        return ordering(compare, left, right), BOOL

    def membership(self, node: Binary) -> tuple[Getter, FieldType]:
        if not isinstance(node.right, ListLiteral):
            raise ExpressionError(
                '\'in\' takes a list of values, such as x in ["a", "b"]', node.right.column, "type"
            )
        left, left_kind = self.compile(node.left)
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
        return membership(left, tuple(item.value for item in node.right.items)), BOOL


def describe(node: Node) -> str:
    return node.text if isinstance(node, Field) else unparse(node)


def _a(kind: Kind) -> str:
    return {"number": "numbers", "string": "text", "bool": "true or false"}.get(kind.value, kind.value)


# --- closures ----------------------------------------------------------------------------------
# Paths of one to three keys (nearly all of them) read with chained subscripts inside one `try`:
# no loop, no per-key call. A missing key, a key into text or a list, all land in the except.


_PYTHON_TYPES: Final[dict[Kind, tuple[type, ...]]] = {
    Kind.NUMBER: (int, float),
    Kind.STRING: (str,),
    Kind.BOOL: (bool,),
    Kind.NULL: (type(None),),
    Kind.MAP: (dict,),
    Kind.LIST: (list,),
}


def python_types(kind: FieldType) -> frozenset[type] | None:
    """The Python types of the JSON values `kind` allows; None for any."""
    if kind.dynamic:
        return None
    return frozenset(t for k in kind.kinds for t in _PYTHON_TYPES[k])


def path_getter(path: tuple[str, ...], allowed: frozenset[type] | None = None) -> Getter:
    """The value at `path`, or ERROR when the event does not have it, or (given `allowed`) has
    a value of another type than the model says: a malformed event is no data, never a match."""
    types = _ANY if allowed is None else allowed
    if len(path) == 1:
        (a,) = path

        def get1(root: Root) -> Any:
            try:
                value = root[a]
            except _LOOKUP_ERRORS:
                return ERROR
            return value if type(value) in types else ERROR

        return get1
    if len(path) == 2:
        a, b = path

        def get2(root: Root) -> Any:
            try:
                value = root[a][b]
            except _LOOKUP_ERRORS:
                return ERROR
            return value if type(value) in types else ERROR

        return get2
    if len(path) == 3:
        a, b, c = path

        def get3(root: Root) -> Any:
            try:
                value = root[a][b][c]
            except _LOOKUP_ERRORS:
                return ERROR
            return value if type(value) in types else ERROR

        return get3

    def get(root: Root) -> Any:
        value: Any = root
        try:
            for key in path:
                value = value[key]
        except _LOOKUP_ERRORS:
            return ERROR
        return value if type(value) in types else ERROR

    return get


def _walk_dict(value: Any, path: tuple[str, ...]) -> Any:
    # Subscripting text with text raises TypeError, but a list with text too: only dicts have keys.
    for key in path:
        if type(value) is not dict:
            return ERROR
        value = value.get(key, ERROR)
        if value is ERROR:
            return ERROR
    return value


def presence(path: tuple[str, ...]) -> Getter:
    """has(path): whether the last key is in the section the rest selects (an error if there is
    no such section, as in CEL)."""
    parent_path, last = path[:-1], path[-1]

    def has(root: Root) -> Any:
        parent = _walk_dict(root, parent_path)
        if type(parent) is not dict:
            return ERROR
        return last in parent

    return has


def negation(inner: Getter) -> Getter:
    def negated(root: Root) -> Any:
        result = inner(root)
        if result is True:
            return False
        if result is False:
            return True
        return ERROR

    return negated


def negative(inner: Getter) -> Getter:
    def negated(root: Root) -> Any:
        value = inner(root)
        return -value if type(value) in _NUMBERS else ERROR

    return negated


def logical(parts: tuple[Getter, ...], deciding: bool) -> Getter:
    """`&&` (any False decides) or `||` (any True decides); otherwise an error wins over the
    other answer, as in CEL."""
    if len(parts) == 2:
        first, second = parts

        def pair(root: Root) -> Any:
            a = first(root)
            if a is deciding:
                return deciding
            b = second(root)
            if b is deciding:
                return deciding
            if type(a) is bool and type(b) is bool:
                return not deciding
            return ERROR

        return pair

    def combine(root: Root) -> Any:
        unknown = False
        for part in parts:
            result = part(root)
            if result is deciding:
                return deciding
            if type(result) is not bool:
                unknown = True
        return ERROR if unknown else not deciding

    return combine


def arithmetic(apply: Callable[[Any, Any], Any], left: Getter, right: Getter) -> Getter:
    def compute(root: Root) -> Any:
        a = left(root)
        b = right(root)
        if type(a) not in _NUMBERS or type(b) not in _NUMBERS:
            return ERROR
        try:
            return apply(a, b)
        except (ZeroDivisionError, OverflowError):
            return ERROR

    return compute


def string_test(method: str, target: Getter, argument: Getter) -> Getter:
    test: Callable[[str, str], bool] = {
        "startsWith": str.startswith,
        "endsWith": str.endswith,
        "contains": str.__contains__,
    }[method]

    def check(root: Root) -> Any:
        text = target(root)
        part = argument(root)
        if type(text) is not str or type(part) is not str:
            return ERROR
        return test(text, part)

    return check


def cel_equal(a: Any, b: Any) -> bool:
    """Equality across JSON values: numbers by value, anything else only with its own type."""
    type_a = type(a)
    type_b = type(b)
    if type_a is type_b:
        return bool(a == b)
    return type_a in _NUMBERS and type_b in _NUMBERS and a == b


def equality(left: Getter, right: Getter, equal: bool) -> Getter:
    def compare(root: Root) -> Any:
        a = left(root)
        b = right(root)
        if a is ERROR or b is ERROR:
            return ERROR
        return cel_equal(a, b) is equal

    return compare


def literal_equality(getter: Getter, constant: LiteralValue, equal: bool) -> Getter:
    """A value against a constant, the common case: one read, one type check, one comparison."""
    if isinstance(constant, str) or constant is None:
        # Nothing but text equals text and nothing but null is null: plain == is CEL's answer.
        def against_text(root: Root) -> Any:
            value = getter(root)
            if value is ERROR:
                return ERROR
            return (value == constant) is equal

        return against_text
    wanted = (bool,) if isinstance(constant, bool) else (int, float)

    def against(root: Root) -> Any:
        value = getter(root)
        if value is ERROR:
            return ERROR
        return (type(value) in wanted and value == constant) is equal

    return against


def ordering(compare: Callable[[Any, Any], bool], left: Getter, right: Getter) -> Getter:
    def check(root: Root) -> Any:
        a = left(root)
        b = right(root)
        type_a = type(a)
        type_b = type(b)
        if (type_a in _NUMBERS and type_b in _NUMBERS) or (type_a is str and type_b is str):
            return compare(a, b)
        return ERROR

    return check


def field_ordering(
    path: tuple[str, ...], compare: Callable[[Any, Any], bool], constant: LiteralValue
) -> Getter:
    """`field <op> constant`, the shape of most filters and alert rules: the type check of the
    comparison is the only one (a value of another type is an error either way)."""
    get = path_getter(path)
    if isinstance(constant, str):
        kinds: frozenset[type] = frozenset({str})
    elif isinstance(constant, int | float) and not isinstance(constant, bool):
        kinds = _NUMBERS
    else:
        return lambda _root: ERROR
    if compare is operator.gt:

        def greater(root: Root) -> Any:
            value = get(root)
            return value > constant if type(value) in kinds else ERROR

        return greater

    def check(root: Root) -> Any:
        value = get(root)
        return compare(value, constant) if type(value) in kinds else ERROR

    return check


def membership(getter: Getter, values: tuple[LiteralValue, ...]) -> Getter:
    """`value in [...]`: one set lookup, per kind, so that `true` never matches `1`."""
    texts = frozenset(v for v in values if isinstance(v, str))
    numbers = frozenset(v for v in values if isinstance(v, int | float) and not isinstance(v, bool))
    booleans = frozenset(v for v in values if isinstance(v, bool))
    null = any(v is None for v in values)
    if len(texts) == len(values):

        def in_texts(root: Root) -> Any:
            value = getter(root)
            if value is ERROR:
                return ERROR
            return type(value) is str and value in texts

        return in_texts

    def member(root: Root) -> Any:
        value = getter(root)
        kind = type(value)
        if kind is str:
            return value in texts
        if kind in _NUMBERS:
            return value in numbers
        if kind is bool:
            return value in booleans
        if value is None:
            return null
        if value is ERROR:
            return ERROR
        return False

    return member


def compile_value(node: Node, scope: FieldType) -> tuple[Callable[[Root], Any], FieldType]:
    """A getter for what `node` computes (None when it cannot), for callers that show values:
    the alert evaluator's `{value}`."""
    getter, kind = Compiler(scope).compile(node)

    def value(root: Root) -> Any:
        result = getter(root)
        return None if result is ERROR else result

    return value, kind
