"""The syntax of event expressions: a strict subset of CEL, tokens, a tree, a bounded parser.

    data.level in ["warning", "critical"] && data.category == "resource"
    data.cpu.usage > 90 || !has(data.cpu)
    resource_id.startsWith("node-") && event == "node_metrics"

Precedence, loosest first, as in CEL: `||`, `&&`, relations (`== != < <= > >= in`), `+ -`,
`* /`, unary `! -`, then member access and calls. Nothing here knows about events: `field_types`
says what a name holds, `compiler` checks a tree and `codegen` writes it out as a function.

Every input is bounded before it can cost anything: its length, the depth of its tree and the
size of each list literal, each with its own error naming the column.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

LiteralValue: TypeAlias = bool | int | float | str | None


class ExpressionError(ValueError):
    """An invalid expression: `reason` says which kind of problem, `column` (1-based) where."""

    def __init__(self, message: str, column: int | None = None, reason: str = "syntax") -> None:
        super().__init__(message if column is None else f"{message} (column {column})")
        self.message = message
        self.column = column
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ExpressionLimits:
    """What one expression may cost to parse and hold."""

    max_length: int = 2_000
    max_depth: int = 24
    max_list_values: int = 100


DEFAULT_LIMITS: Final = ExpressionLimits()

# --- tree --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal_:
    value: LiteralValue
    column: int
    depth: int = 1


@dataclass(frozen=True, slots=True)
class Field:
    """A name and the keys selected from it: `data.cpu.usage` is ("data", "cpu", "usage")."""

    path: tuple[str, ...]
    column: int
    depth: int = 1

    @property
    def text(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True, slots=True)
class ListLiteral:
    items: tuple[Literal_, ...]
    column: int
    depth: int = 2


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # ! or -
    operand: "Node"
    column: int
    depth: int


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # == != < <= > >= in + - * /
    left: "Node"
    right: "Node"
    column: int
    depth: int


@dataclass(frozen=True, slots=True)
class Logical:
    op: str  # && or ||
    operands: tuple["Node", ...]
    column: int
    depth: int


@dataclass(frozen=True, slots=True)
class Has:
    """`has(data.gpu)`: whether the last key is present in what the rest of the path selects."""

    field: Field
    column: int
    depth: int = 2


@dataclass(frozen=True, slots=True)
class StringTest:
    """`target.startsWith(arg)`, `endsWith`, `contains`."""

    method: str
    target: "Node"
    argument: "Node"
    column: int
    depth: int


Node: TypeAlias = Literal_ | Field | ListLiteral | Unary | Binary | Logical | Has | StringTest

RELATIONS: Final = frozenset({"==", "!=", "<", "<=", ">", ">=", "in"})
ORDERINGS: Final = frozenset({"<", "<=", ">", ">="})
STRING_METHODS: Final = frozenset({"startsWith", "endsWith", "contains"})

# --- tokens ------------------------------------------------------------------------------------

_TOKEN_RE: Final = re.compile(
    r"""(?P<space>\s+)
      | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
      | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>&&|\|\||==|!=|<=|>=|[<>!+\-*/()\[\],.])
    """,
    re.VERBOSE,
)
_ESCAPES: Final = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r", "`": "`", "?": "?"}
_ESCAPE_RE: Final = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")
_MAX_INTEGER_DIGITS: Final = 100
_LITERAL_NAMES: Final[dict[str, LiteralValue]] = {"true": True, "false": False, "null": None}
# Legacy alert-rule spelling (`a and not b`): accepted only where the caller asks for it.
# `not` binds looser than a comparison there (`not a > 1` is `!(a > 1)`): it keeps its own token.
_LEGACY_WORDS: Final = {"and": "&&", "or": "||", "not": "not"}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number, string, name, op, end
    text: str
    column: int


def _unescape(body: str, column: int) -> str:
    def replace(match: re.Match[str]) -> str:
        code = match[1]
        if code[0] == "u" and len(code) == 5:
            char = chr(int(code[1:], 16))
            if 0xD800 <= ord(char) <= 0xDFFF:
                raise ExpressionError("a \\u escape may not name a surrogate", column + match.start())
            return char
        if code in _ESCAPES:
            return _ESCAPES[code]
        raise ExpressionError(f"unknown escape \\{code} in a string", column + match.start())

    return _ESCAPE_RE.sub(replace, body)


def _tokens(text: str, legacy_words: bool) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN_RE.match(text, position)
        if match is None:
            char = text[position]
            if char in "\"'":
                raise ExpressionError("a string is not closed on its line", position + 1)
            raise ExpressionError(f"unexpected character {char!r}", position + 1)
        kind = match.lastgroup or "op"
        word = match[kind]
        position = match.end()
        if kind == "space":
            continue
        if kind == "name" and legacy_words and word in _LEGACY_WORDS:
            kind, word = "op", _LEGACY_WORDS[word]
        tokens.append(_Token(kind, word, match.start() + 1))
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


# --- parser ------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, limits: ExpressionLimits, legacy_words: bool) -> None:
        self.tokens = _tokens(text, legacy_words)
        self.at = 0
        self.limits = limits
        self.nesting = 0  # open parentheses, calls and unary operators: bounds the recursion itself

    def enter(self, token: _Token) -> None:
        self.nesting += 1
        if self.nesting > self.limits.max_depth:
            raise ExpressionError(
                f"nested too deeply: at most {self.limits.max_depth} levels", token.column, "too_deep"
            )

    @property
    def token(self) -> _Token:
        return self.tokens[self.at]

    def take(self, text: str) -> _Token | None:
        token = self.token
        if token.kind == "op" and token.text == text:
            self.at += 1
            return token
        return None

    def expect(self, text: str, what: str) -> _Token:
        token = self.take(text)
        if token is None:
            raise ExpressionError(f"expected {what}, found {self.shown()}", self.token.column)
        return token

    def shown(self) -> str:
        return "the end" if self.token.kind == "end" else repr(self.token.text)

    def bounded(self, node: Node) -> Node:
        if node.depth > self.limits.max_depth:
            raise ExpressionError(
                f"nested too deeply: at most {self.limits.max_depth} levels", node.column, "too_deep"
            )
        return node

    def parse(self) -> Node:
        node = self.disjunction()
        if self.token.kind != "end":
            raise ExpressionError(f"unexpected {self.shown()}", self.token.column)
        return node

    def disjunction(self) -> Node:
        return self.logical("||", self.conjunction)

    def conjunction(self) -> Node:
        return self.logical("&&", self.negation)

    def negation(self) -> Node:
        token = self.token
        if self.take("not"):  # only in legacy_words mode
            self.enter(token)
            operand = self.negation()
            self.nesting -= 1
            return self.bounded(Unary("!", operand, token.column, operand.depth + 1))
        return self.relation()

    def logical(self, op: str, operand: Callable[[], Node]) -> Node:
        first = operand()
        operands = [first]
        while self.take(op):
            operands.append(operand())
        if len(operands) == 1:
            return first
        depth = max(o.depth for o in operands) + 1
        return self.bounded(Logical(op, tuple(operands), first.column, depth))

    def relation(self) -> Node:
        node = self.sum()
        while self.token.text in RELATIONS and self.token.kind in ("op", "name"):
            token = self.token
            self.at += 1
            right = self.list_literal() if token.text == "in" and self.token.text == "[" else self.sum()
            node = self.bounded(
                Binary(token.text, node, right, token.column, max(node.depth, right.depth) + 1)
            )
        return node

    def sum(self) -> Node:
        return self.arithmetic(("+", "-"), self.product)

    def product(self) -> Node:
        return self.arithmetic(("*", "/"), self.unary)

    def arithmetic(self, ops: tuple[str, ...], operand: Callable[[], Node]) -> Node:
        node = operand()
        while self.token.kind == "op" and self.token.text in ops:
            token = self.token
            self.at += 1
            right = operand()
            node = self.bounded(
                Binary(token.text, node, right, token.column, max(node.depth, right.depth) + 1)
            )
        return node

    def unary(self) -> Node:
        token = self.token
        if self.take("!") or self.take("-"):
            self.enter(token)
            operand = self.unary()
            self.nesting -= 1
            if (
                token.text == "-"
                and isinstance(operand, Literal_)
                and isinstance(operand.value, int | float)
                and not isinstance(operand.value, bool)
            ):
                return Literal_(-operand.value, token.column)
            return self.bounded(Unary(token.text, operand, token.column, operand.depth + 1))
        return self.member()

    def member(self) -> Node:
        node = self.primary()
        while self.take("."):
            name = self.token
            if name.kind != "name":
                raise ExpressionError(f"expected a field name after '.', found {self.shown()}", name.column)
            self.at += 1
            if self.token.text == "(" and self.token.kind == "op":
                node = self.method(node, name)
            elif isinstance(node, Field):
                node = self.bounded(Field((*node.path, name.text), node.column, node.depth))
            else:
                raise ExpressionError(f"only fields have fields; {name.text!r} follows a value", name.column)
        return node

    def method(self, target: Node, name: _Token) -> Node:
        if name.text not in STRING_METHODS:
            known = ", ".join(sorted(STRING_METHODS))
            raise ExpressionError(f"unknown function {name.text!r}; known: has, {known}", name.column)
        self.enter(self.expect("(", "'('"))
        argument = self.disjunction()
        self.expect(")", f"')' after the one argument of {name.text}")
        self.nesting -= 1
        depth = max(target.depth, argument.depth) + 1
        return self.bounded(StringTest(name.text, target, argument, name.column, depth))

    def primary(self) -> Node:
        token = self.token
        if token.kind == "number":
            self.at += 1
            if any(c in token.text for c in ".eE"):
                return Literal_(float(token.text), token.column)
            if len(token.text) > _MAX_INTEGER_DIGITS:  # Python refuses to read more than 4,300
                raise ExpressionError(
                    f"a number has at most {_MAX_INTEGER_DIGITS} digits", token.column, "too_long"
                )
            return Literal_(int(token.text), token.column)
        if token.kind == "string":
            self.at += 1
            return Literal_(_unescape(token.text[1:-1], token.column + 1), token.column)
        if token.kind == "name":
            self.at += 1
            if token.text in _LITERAL_NAMES:
                return Literal_(_LITERAL_NAMES[token.text], token.column)
            if token.text == "in":
                raise ExpressionError("expected a value before 'in'", token.column)
            if self.token.text == "(" and self.token.kind == "op":
                return self.call(token)
            return Field((token.text,), token.column)
        if self.take("("):
            self.enter(token)
            inner = self.disjunction()
            self.expect(")", "')'")
            self.nesting -= 1
            return inner
        if token.text == "[":
            return self.list_literal()
        raise ExpressionError(
            f"expected a field, a number, a string or '(', found {self.shown()}", token.column
        )

    def call(self, name: _Token) -> Node:
        if name.text != "has":
            if name.text in STRING_METHODS:
                raise ExpressionError(
                    f"{name.text} is called on a string: field.{name.text}(...)", name.column
                )
            raise ExpressionError(f"unknown function {name.text!r}; known: has", name.column)
        self.expect("(", "'('")
        argument = self.member()
        if not isinstance(argument, Field):
            raise ExpressionError("has() takes a field, such as has(data.gpu)", argument.column)
        self.expect(")", "')' after the field of has()")
        return Has(argument, name.column)

    def list_literal(self) -> ListLiteral:
        opening = self.expect("[", "'['")
        items: list[Literal_] = []
        if not self.take("]"):
            while True:
                item = self.unary()
                if not isinstance(item, Literal_):
                    raise ExpressionError(
                        "a list holds numbers, strings, true, false or null only", item.column
                    )
                items.append(item)
                if len(items) > self.limits.max_list_values:
                    raise ExpressionError(
                        f"a list holds at most {self.limits.max_list_values} values",
                        item.column,
                        "too_many_values",
                    )
                if self.take("]"):
                    break
                self.expect(",", "',' or ']'")
        node = ListLiteral(tuple(items), opening.column)
        self.bounded(node)
        return node


def parse_expression(
    text: str, limits: ExpressionLimits = DEFAULT_LIMITS, *, legacy_words: bool = False
) -> Node:
    """The tree of `text`, within `limits`.

    Args:
        text: the expression.
        limits: bounds on its length, depth and list sizes.
        legacy_words: also accept `and`, `or`, `not` for `&&`, `||`, `!` (old alert rules).

    Raises:
        ExpressionError: naming the column of the problem and its `reason`.
    """
    if len(text) > limits.max_length:
        raise ExpressionError(
            f"the expression is {len(text)} characters long, at most {limits.max_length}",
            limits.max_length + 1,
            "too_long",
        )
    if not text.strip():
        raise ExpressionError("the expression is empty", 1)
    return _Parser(text, limits, legacy_words).parse()


# --- printing ----------------------------------------------------------------------------------


def literal_text(value: LiteralValue) -> str:
    """`value` as a CEL literal."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        escaped = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m[0]):04x}", escaped)
        return f'"{escaped}"'
    return repr(value)


def unparse(node: Node) -> str:
    """The canonical text of `node`: fully parenthesized, so equal trees print equal."""
    if isinstance(node, Literal_):
        return literal_text(node.value)
    if isinstance(node, Field):
        return node.text
    if isinstance(node, ListLiteral):
        return "[" + ", ".join(literal_text(item.value) for item in node.items) + "]"
    if isinstance(node, Unary):
        return f"{node.op}{unparse(node.operand)}"
    if isinstance(node, Binary):
        return f"({unparse(node.left)} {node.op} {unparse(node.right)})"
    if isinstance(node, Logical):
        return "(" + f" {node.op} ".join(unparse(operand) for operand in node.operands) + ")"
    if isinstance(node, Has):
        return f"has({node.field.text})"
    return f"{unparse(node.target)}.{node.method}({unparse(node.argument)})"
