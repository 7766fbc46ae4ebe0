"""A checked expression written out as one Python function: no interpreter, no call per node.

The source is generated from the checked tree only. Its names are temporaries made up here and
the names of `_BOUND`; what comes from the expression appears only as the `repr()` of a value the
parser has already validated (a field name, a `str`, a finite `float`, a small `int`, `True`,
`False`, `None`); any other value (the set of an `in`, a number too large to print) is bound as
a constant. The source is compiled with `compile()` and run in a namespace without builtins: the
function can reach `_BOUND`, its constants and its argument, nothing else.

    data.level in ["warning", "critical"] && data.category == "resource"

becomes

    def evaluate(root):
        try:
            t0 = root.get('data', E).get('level', E)
        except AttributeError:
            t0 = E
        t1 = t0 in k0 if type(t0) is str else E
        if t1 is False:
            return False
        try:
            t2 = t0.get ...                  # (the read of 'data' is shared when already done)
        ...
        return True if t1 is True and t3 is True else None

Semantics are those the module `compiler` states: an error is a value, `&&` and `||` are decided by
any deciding operand, every other operator passes an error on. Short-circuits are kept: after a
deciding operand nothing more is read. A read walks the event with `dict.get`, and the error value
answers `get` with itself, so a key missing anywhere on a path costs no exception; a path through
text, a number or a list (which have no `get`) raises the one AttributeError the read catches.
"""

import itertools
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final, Literal

from eh_contracts.expressions.field_types import FieldType, Kind
from eh_contracts.expressions.syntax import (
    ORDERINGS,
    Binary,
    Field,
    Has,
    ListLiteral,
    Literal_,
    LiteralValue,
    Logical,
    Node,
    StringTest,
    Unary,
)

Path = tuple[str, ...]
Types = frozenset[type]
Mode = Literal["answer", "value", "inner"]
"""What a generated function returns: True, False or None for anything else (a filter's verdict);
the value or None for an error (what an alert shows); the value or ERROR (a hoisted subtree)."""


class _Error:
    """The value of what cannot be computed; any key read from it gives itself."""

    __slots__ = ()

    def get(self, _key: str, _default: object = None) -> "_Error":
        return self

    def __repr__(self) -> str:
        return "<error>"


ERROR: Final = _Error()
NUMBERS: Final[Types] = frozenset({int, float})  # bool is its own type here: True is not the number 1
TEXT: Final[Types] = frozenset({str})
# What JSON decodes to: a value of any other type is no data.
JSON_TYPES: Final[Types] = frozenset({int, float, str, bool, type(None), dict, list})
_PYTHON_TYPES: Final[dict[Kind, Types]] = {
    Kind.NUMBER: NUMBERS,
    Kind.STRING: TEXT,
    Kind.BOOL: frozenset({bool}),
    Kind.NULL: frozenset({type(None)}),
    Kind.MAP: frozenset({dict}),
    Kind.LIST: frozenset({list}),
}
_ARITHMETIC: Final = frozenset({"+", "-", "*", "/"})
_STRING_METHODS: Final = {"startsWith": "startswith", "endsWith": "endswith"}
# Deeper than this, a subtree becomes a function of its own: Python's tokenizer allows 100
# levels of indentation and a filter may nest up to 100 deep (SSE_EDGE_FILTER_MAX_DEPTH).
_HOIST_AT: Final = 16
_LARGEST_PRINTED_INT: Final = 10**18  # far below the 4,300 digits Python parses from source


def cel_equal(a: Any, b: Any) -> bool:
    """Equality across JSON values: numbers by value, anything else only with its own type."""
    type_a = type(a)
    type_b = type(b)
    if type_a is type_b:
        return bool(a == b)
    return type_a in NUMBERS and type_b in NUMBERS and bool(a == b)


_TYPE_NAMES: Final[dict[type, str]] = {
    int: "int",
    float: "float",
    str: "str",
    bool: "bool",
    dict: "dict",
    list: "list",
}
# Everything generated code may name besides its temporaries and constants.
_BOUND: Final[dict[str, object]] = {
    "E": ERROR,
    "type": type,
    **{name: python_type for python_type, name in _TYPE_NAMES.items()},
    "AttributeError": AttributeError,
    "ARITHMETIC_ERRORS": (ZeroDivisionError, OverflowError),
    "NUMBERS": NUMBERS,
    "JSON_TYPES": JSON_TYPES,
    "cel_equal": cel_equal,
}


def python_types(kind: FieldType) -> Types:
    """The Python types of the JSON values `kind` allows."""
    if kind.dynamic:
        return JSON_TYPES
    return frozenset(t for k in kind.kinds for t in _PYTHON_TYPES[k])


def literal_types(value: LiteralValue) -> Types:
    if value is None:
        return frozenset({type(None)})
    if isinstance(value, bool):
        return frozenset({bool})
    if isinstance(value, str):
        return TEXT
    return NUMBERS


def _all(conditions: list[str]) -> str:
    """`conditions` joined with `and`, dropping those known true."""
    kept = [c for c in conditions if c != "True"]
    if "False" in kept:
        return "False"
    return " and ".join(kept) or "True"


class _Operand:
    """Code naming a value: a temporary or a literal. `types`: what it must be to count — set
    for a field read raw (its type check is left to the operator using it) and for a literal
    (whose type is known); None when the code already holds ERROR for anything it cannot be."""

    __slots__ = ("code", "literal", "types")

    def __init__(self, code: str, types: Types | None = None, *, literal: bool = False) -> None:
        self.code = code
        self.types = types
        self.literal = literal


class _Function:
    """The lines of one function; `reads`: the paths read on every way to the current line
    (path -> temporary), so a path read again, or a longer one, starts from what was read."""

    def __init__(self, name: str) -> None:
        self.lines = [f"    def {name}(root):"]
        self.indent = 2
        self.reads: dict[Path, str] = {}

    def line(self, text: str) -> None:
        self.lines.append("    " * self.indent + text)


class _Program:
    """Writes the generated function of one tree, and the functions hoisted out of it."""

    def __init__(self, field_types: Mapping[Path, FieldType]) -> None:
        self.field_types = field_types
        # Sections more than one read goes through (`data` in `data.a && data.b`): read once.
        through: dict[Path, set[Path]] = {}
        for path in field_types:
            for length in range(1, len(path)):
                through.setdefault(path[:length], set()).add(path)
        self.shared = {prefix for prefix, paths in through.items() if len(paths) > 1}
        self.constants: list[object] = []
        self.hoisted: list[_Function] = []
        self.counter = itertools.count()
        self.function = _Function("evaluate")

    def line(self, text: str) -> None:
        self.function.line(text)

    # -- names, constants, tests --------------------------------------------------------------

    def temp(self) -> str:
        return f"t{next(self.counter)}"

    def assign(self, expression: str) -> str:
        name = self.temp()
        self.line(f"{name} = {expression}")
        return name

    def constant(self, value: object) -> str:
        for index, known in enumerate(self.constants):
            if type(known) is type(value) and known == value:
                return f"k{index}"
        self.constants.append(value)
        return f"k{len(self.constants) - 1}"

    def literal(self, value: LiteralValue) -> str:
        """`value` as Python source: its repr where that is a plain literal, else a constant."""
        if value is None or type(value) is bool or type(value) is str:
            return repr(value)
        if type(value) is int and abs(value) < _LARGEST_PRINTED_INT:
            return f"({value!r})"
        if type(value) is float and math.isfinite(value):
            return f"({value!r})"
        return self.constant(value)  # inf, or an integer too long to print

    def type_test(self, code: str, types: Types) -> str:
        """A condition: `code` holds a value of one of `types` (ERROR never is)."""
        if not types:
            return "False"
        if types == NUMBERS:
            return f"type({code}) in NUMBERS"
        if types == JSON_TYPES:
            return f"type({code}) in JSON_TYPES"
        if len(types) == 1:
            (only,) = types
            if only is type(None):
                return f"{code} is None"
            if only in _TYPE_NAMES:
                return f"type({code}) is {_TYPE_NAMES[only]}"
        return f"type({code}) in {self.constant(types)}"

    def valid(self, operand: _Operand, types: Types | None = None) -> str:
        """A condition: `operand` holds a value (not ERROR), of `types` when given."""
        if operand.types is None:
            return f"{operand.code} is not E" if types is None else self.type_test(operand.code, types)
        wanted = operand.types if types is None else operand.types & types
        if operand.literal:
            return "True" if wanted == operand.types else "False"
        return self.type_test(operand.code, wanted)

    # -- reads and values ---------------------------------------------------------------------

    def read(self, path: Path) -> str:
        """A temporary holding the value at `path` as it is, or ERROR when the event lacks it."""
        reads = self.function.reads
        known = reads.get(path)
        if known is not None:
            return known
        start, rest = "root", path
        for length in range(len(path) - 1, 0, -1):
            prefix = path[:length]
            if prefix in reads or prefix in self.shared:
                start, rest = self.read(prefix), path[length:]
                break
        name = self.temp()
        self.line("try:")
        self.line(f"    {name} = {start}" + "".join(f".get({key!r}, E)" for key in rest))
        self.line("except AttributeError:")
        self.line(f"    {name} = E")
        reads[path] = name
        return name

    def operand(self, node: Node) -> _Operand:
        """`node`'s value, a field's left unchecked for the operator that uses it."""
        if isinstance(node, Literal_):
            return _Operand(self.literal(node.value), literal_types(node.value), literal=True)
        if isinstance(node, Field):
            return _Operand(self.read(node.path), python_types(self.field_types[node.path]))
        return _Operand(self.value(node))

    def named(self, operand: _Operand) -> _Operand:
        """`operand`, a literal moved into a temporary: `'a' is None` is a SyntaxWarning."""
        if not operand.literal:
            return operand
        return _Operand(self.assign(operand.code), operand.types, literal=True)

    def value(self, node: Node) -> str:
        """A temporary or literal holding `node`'s value, or ERROR."""
        if isinstance(node, Literal_):
            return self.literal(node.value)
        if isinstance(node, Field):
            raw = self.read(node.path)
            allowed = python_types(self.field_types[node.path])
            return self.assign(f"{raw} if {self.type_test(raw, allowed)} else E")
        if isinstance(node, Logical):
            return self.hoist(node) if self.function.indent >= _HOIST_AT else self.logical(node)
        if isinstance(node, Unary) and node.op == "-":
            inner = self.operand(node.operand)
            return self.assign(f"-{inner.code} if {self.valid(inner, NUMBERS)} else E")
        if isinstance(node, Binary) and node.op in _ARITHMETIC:
            return self.arithmetic(node)
        return self.assign(self.condition(node, "E"))

    # -- operators ----------------------------------------------------------------------------

    def condition(self, node: Node, error: str) -> str:
        """An expression giving True, False, or `error`, for `!`, `has`, a string test, a
        comparison or `in` (the statements it needs written first)."""
        if isinstance(node, Unary):
            inner = self.value(node.operand)
            return f"False if {inner} is True else (True if {inner} is False else {error})"
        if isinstance(node, Has):
            *parent_path, last = node.field.path
            parent = self.read(tuple(parent_path)) if parent_path else "root"
            return f"{last!r} in {parent} if type({parent}) is dict else {error}"
        if isinstance(node, StringTest):
            return self.string_test(node, error)
        assert isinstance(node, Binary), node
        if node.op == "in":
            return self.membership(node, error)
        if node.op in ("==", "!="):
            return self.equality(node, error)
        assert node.op in ORDERINGS, node
        return self.ordering(node, error)

    def arithmetic(self, node: Binary) -> str:
        left = self.operand(node.left)
        right = self.operand(node.right)
        name = self.temp()
        self.line(f"if {_all([self.valid(left, NUMBERS), self.valid(right, NUMBERS)])}:")
        self.line("    try:")
        self.line(f"        {name} = {left.code} {node.op} {right.code}")
        self.line("    except ARITHMETIC_ERRORS:")  # a division by zero; an integer too large for a float
        self.line(f"        {name} = E")
        self.line("else:")
        self.line(f"    {name} = E")
        return name

    def string_test(self, node: StringTest, error: str) -> str:
        target = self.operand(node.target)
        argument = self.operand(node.argument)
        if node.method == "contains":
            test = f"{argument.code} in {target.code}"
        else:
            test = f"{target.code}.{_STRING_METHODS[node.method]}({argument.code})"
        return f"{test} if {_all([self.valid(target, TEXT), self.valid(argument, TEXT)])} else {error}"

    def ordering(self, node: Binary, error: str) -> str:
        left = self.operand(node.left)
        right = self.operand(node.right)
        test = f"{left.code} {node.op} {right.code}"
        for side in (right, left):
            if side.literal:
                # Against a constant, the constant says what the other side must be.
                assert side.types is not None
                if side.types not in (NUMBERS, TEXT):
                    return error
                valid = _all([self.valid(left, side.types), self.valid(right, side.types)])
                return f"{test} if {valid} else {error}"
        numbers = _all([self.valid(left, NUMBERS), self.valid(right, NUMBERS)])
        texts = _all([self.valid(left, TEXT), self.valid(right, TEXT)])
        return f"{test} if ({numbers}) or ({texts}) else {error}"

    def equality(self, node: Binary, error: str) -> str:
        equal = node.op == "=="
        for constant, other_node in ((node.right, node.left), (node.left, node.right)):
            if isinstance(constant, Literal_):
                other = self.named(self.operand(other_node))
                return f"({self.equal_to(other, constant.value, equal)}) if {self.valid(other)} else {error}"
        left = self.value(node.left)
        right = self.value(node.right)
        test = f"cel_equal({left}, {right})" if equal else f"not cel_equal({left}, {right})"
        return f"{error} if {left} is E or {right} is E else {test}"

    def equal_to(self, other: _Operand, value: LiteralValue, equal: bool) -> str:
        """A condition on a valid `other`: it equals (or not) the constant `value`."""
        code = other.code
        if value is None or type(value) is bool:
            return f"{code} is {value!r}" if equal else f"{code} is not {value!r}"
        if type(value) is str or (other.types is not None and other.types <= NUMBERS):
            # Nothing but text equals text; a number field that is valid holds a number.
            return f"{code} {'==' if equal else '!='} {self.literal(value)}"
        match = f"type({code}) in NUMBERS and {code} == {self.literal(value)}"
        return match if equal else f"not ({match})"

    def membership(self, node: Binary, error: str) -> str:
        assert isinstance(node.right, ListLiteral)
        values = [item.value for item in node.right.items]
        other = self.named(self.operand(node.left))
        code = other.code
        valid = self.valid(other)
        texts = frozenset(v for v in values if type(v) is str)
        if all(type(v) is str for v in values):  # the usual list, of text: one type test, one lookup
            if other.types is not None and other.types <= TEXT:
                return f"{code} in {self.constant(texts)} if {valid} else {error}"
            return f"(type({code}) is str and {code} in {self.constant(texts)}) if {valid} else {error}"
        # One set per kind, so that `true` never matches 1 (in Python True == 1).
        kind = self.assign(f"type({code})")
        test = f"{code} is None" if any(v is None for v in values) else "False"
        for is_kind, members in (
            (f"{kind} is bool", frozenset(v for v in values if type(v) is bool)),
            (f"{kind} in NUMBERS", frozenset(v for v in values if type(v) in NUMBERS)),
            (f"{kind} is str", texts),
        ):
            if members:
                test = f"({code} in {self.constant(members)} if {is_kind} else {test})"
        return f"{test} if {valid} else {error}"

    # -- && and || ----------------------------------------------------------------------------

    def logical(self, node: Logical) -> str:
        """`&&` or `||` inside an expression: its value in a temporary, operands after a
        deciding one not evaluated."""
        deciding = node.op == "||"
        result = self.assign(repr(not deciding))
        for index, operand in enumerate(node.operands):
            if index == 0:
                self.decide(operand, result, deciding)
                continue
            self.line(f"if {result} is not {deciding!r}:")
            with self.nested():
                self.decide(operand, result, deciding)
        return result

    def decide(self, operand: Node, result: str, deciding: bool) -> None:
        value, decides = self.truth(operand, deciding)
        self.line(f"if {value} is {decides!r}:")
        self.line(f"    {result} = {deciding!r}")
        self.line(f"elif {value} is not {not decides!r}:")
        self.line(f"    {result} = E")

    def truth(self, operand: Node, deciding: bool) -> tuple[str, bool]:
        """The value of `operand` without its `!`s, and which value of it decides the `&&` or
        `||` (`!x` decides `&&` when x is true): one test instead of a negation and a test."""
        while isinstance(operand, Unary) and operand.op == "!":
            operand, deciding = operand.operand, not deciding
        return self.value(operand), deciding

    @contextmanager
    def nested(self) -> Iterator[None]:
        """Statements one level in; what they read is not known after them."""
        function = self.function
        saved = dict(function.reads)
        function.indent += 1
        yield
        function.indent -= 1
        function.reads = saved

    def hoist(self, node: Node) -> str:
        """`node` as a function of its own, called here."""
        outer = self.function
        name = f"f{next(self.counter)}"
        self.function = _Function(name)
        self.tail(node, "inner")
        self.hoisted.append(self.function)
        self.function = outer
        return self.assign(f"{name}(root)")

    # -- the function -------------------------------------------------------------------------

    def tail(self, node: Node, mode: Mode) -> None:
        """The statements that compute `node` and return it as `mode` says."""
        error = "E" if mode == "inner" else "None"
        if isinstance(node, Logical):
            deciding = node.op == "||"
            settled = []
            for operand in node.operands:
                value, decides = self.truth(operand, deciding)
                self.line(f"if {value} is {decides!r}:")
                self.line(f"    return {deciding!r}")
                settled.append(f"{value} is {not decides!r}")
            self.line(f"return {not deciding!r} if {' and '.join(settled)} else {error}")
        elif (isinstance(node, Unary) and node.op == "!") or (
            isinstance(node, Has | StringTest) or (isinstance(node, Binary) and node.op not in _ARITHMETIC)
        ):
            self.line(f"return {self.condition(node, error)}")
        else:
            value = self.value(node)
            if mode == "answer":
                self.line(f"return {value} if type({value}) is bool else None")
            elif mode == "value":
                self.line(f"return None if {value} is E else {value}")
            else:
                self.line(f"return {value}")

    def source(self) -> str:
        parameters = ", ".join([*_BOUND, *(f"k{i}" for i in range(len(self.constants)))])
        lines = [f"def bind({parameters}):"]
        for function in [*self.hoisted, self.function]:
            lines += function.lines
        lines += ["    return evaluate", ""]
        return "\n".join(lines)


def generate(
    node: Node, field_types: Mapping[Path, FieldType], mode: Mode
) -> tuple[Callable[[Any], Any], str]:
    """The function computing `node` on an event, and its source.

    Args:
        node: a tree the compiler has checked.
        field_types: the type of each field path in it.
        mode: what the function returns (see `Mode`).
    """
    program = _Program(field_types)
    program.tail(node, mode)
    source = program.source()
    namespace: dict[str, Any] = {"__builtins__": {}}
    # The source is written from the checked tree alone (see the module's docstring).
    exec(compile(source, "<expression>", "exec"), namespace)  # noqa: S102
    function: Callable[[Any], Any] = namespace["bind"](*_BOUND.values(), *program.constants)
    return function, source
