"""The syntax of rule conditions: tokens, a syntax tree, and a recursive-descent parser.

    cpu.usage > 80
    memory.used / memory.total * 100 >= 90
    new_state == "stopped" and exit_code != 0
    new_state in ["stopped", "exited"] and not exit_code == 0

Nothing here knows about events; `conditions` checks a tree against a payload model and compiles it.
"""

import re
from dataclasses import dataclass
from typing import Final, TypeAlias

Value: TypeAlias = float | int | str


class ConditionError(ValueError):
    """An invalid condition; `column` (1-based) points at the problem."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message if column is None else f"{message} (column {column})")
        self.column = column


# --- tokens ----------------------------------------------------------------------------------

_TOKEN_RE: Final = re.compile(
    r"""\s*(?:
        (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
      | (?P<string>"[^"\\]*"|'[^'\\]*')
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
      | (?P<op>>=|<=|==|!=|[<>+\-*/()\[\],])
    )""",
    re.VERBOSE,
)
_KEYWORDS: Final = frozenset({"and", "or", "not", "in"})


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number, string, name, keyword, op, end
    text: str
    column: int


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN_RE.match(text, position)
        if match is None or match.end() == position:
            column = len(text) - len(text[position:].lstrip()) + 1
            raise ConditionError(f"unexpected character {text[column - 1]!r}", column)
        kind = match.lastgroup or "op"
        column = match.start(kind) + 1
        word = match[kind]
        if kind == "name" and word in _KEYWORDS:
            kind = "keyword"
        tokens.append(_Token(kind, word, column))
        position = match.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


# --- syntax tree -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal_:
    value: Value
    column: int


@dataclass(frozen=True, slots=True)
class Field:
    path: tuple[str, ...]
    column: int

    @property
    def text(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True, slots=True)
class Arithmetic:
    op: str
    left: "Expr"
    right: "Expr"
    column: int


@dataclass(frozen=True, slots=True)
class Negative:
    operand: "Expr"
    column: int


@dataclass(frozen=True, slots=True)
class Comparison:
    op: str  # > >= < <= == != in
    left: "Expr"
    right: "Expr | tuple[Literal_, ...]"
    column: int


@dataclass(frozen=True, slots=True)
class Logical:
    op: str  # and, or
    operands: tuple["Cond", ...]


@dataclass(frozen=True, slots=True)
class Not:
    operand: "Cond"


Expr: TypeAlias = Literal_ | Field | Arithmetic | Negative
Cond: TypeAlias = Comparison | Logical | Not


class _Parser:
    """Recursive descent: or < and < not < comparison < + - < * / < unary minus < atom."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.at]

    def take(self, kind: str, text: str | None = None) -> _Token | None:
        token = self.token
        if token.kind == kind and (text is None or token.text == text):
            self.at += 1
            return token
        return None

    def expect(self, kind: str, text: str, what: str) -> _Token:
        token = self.take(kind, text)
        if token is None:
            raise ConditionError(f"expected {what}, found {self._shown()}", self.token.column)
        return token

    def _shown(self) -> str:
        return "the end" if self.token.kind == "end" else repr(self.token.text)

    def parse(self) -> Cond:
        condition = self.disjunction()
        if self.token.kind != "end":
            raise ConditionError(f"unexpected {self._shown()}", self.token.column)
        return condition

    def disjunction(self) -> Cond:
        operands = [self.conjunction()]
        while self.take("keyword", "or"):
            operands.append(self.conjunction())
        return operands[0] if len(operands) == 1 else Logical("or", tuple(operands))

    def conjunction(self) -> Cond:
        operands = [self.negation()]
        while self.take("keyword", "and"):
            operands.append(self.negation())
        return operands[0] if len(operands) == 1 else Logical("and", tuple(operands))

    def negation(self) -> Cond:
        if self.take("keyword", "not"):
            return Not(self.negation())
        # A parenthesis opens either a condition, `(a > 1 or b < 2)`, or an arithmetic group,
        # `(a + b) / 2 > 1`: try the condition first and fall back. When both fail, the attempt
        # that got further has the helpful message.
        as_condition: ConditionError | None = None
        if self.token.text == "(":
            start = self.at
            self.at += 1
            try:
                inner = self.disjunction()
                self.expect("op", ")", "')'")
            except ConditionError as error:
                as_condition = error
            else:
                if self.token.text not in (*_COMPARISON_OPS, "+", "-", "*", "/"):
                    return inner
            self.at = start
        try:
            return self.comparison()
        except ConditionError as as_comparison:
            if as_condition is not None and (as_condition.column or 0) > (as_comparison.column or 0):
                raise as_condition from None
            raise

    def comparison(self) -> Comparison:
        left = self.sum()
        token = self.token
        if self.take("keyword", "in"):
            self.expect("op", "[", "'[' after 'in'")
            values = [self.literal()]
            while self.take("op", ","):
                values.append(self.literal())
            self.expect("op", "]", "']'")
            return Comparison("in", left, tuple(values), token.column)
        if token.kind == "op" and token.text in _COMPARISON_OPS:
            self.at += 1
            return Comparison(token.text, left, self.sum(), token.column)
        raise ConditionError(
            f"expected a comparison (> >= < <= == != in), found {self._shown()}", token.column
        )

    def literal(self) -> Literal_:
        expr = self.unary()
        if not isinstance(expr, Literal_):
            raise ConditionError("a list after 'in' holds numbers or strings only", self.token.column)
        return expr

    def sum(self) -> Expr:
        expr = self.product()
        while self.token.kind == "op" and self.token.text in ("+", "-"):
            token = self.tokens[self.at]
            self.at += 1
            expr = Arithmetic(token.text, expr, self.product(), token.column)
        return expr

    def product(self) -> Expr:
        expr = self.unary()
        while self.token.kind == "op" and self.token.text in ("*", "/"):
            token = self.tokens[self.at]
            self.at += 1
            expr = Arithmetic(token.text, expr, self.unary(), token.column)
        return expr

    def unary(self) -> Expr:
        token = self.token
        if self.take("op", "-"):
            operand = self.unary()
            if isinstance(operand, Literal_) and not isinstance(operand.value, str):
                return Literal_(-operand.value, token.column)
            return Negative(operand, token.column)
        return self.atom()

    def atom(self) -> Expr:
        token = self.token
        if self.take("number"):
            number = float(token.text)
            whole = number.is_integer() and "." not in token.text
            return Literal_(int(number) if whole else number, token.column)
        if self.take("string"):
            return Literal_(token.text[1:-1], token.column)
        if self.take("name"):
            return Field(tuple(token.text.split(".")), token.column)
        if self.take("op", "("):
            inner = self.sum()
            self.expect("op", ")", "')'")
            return inner
        raise ConditionError(f"expected a field, a number or a string, found {self._shown()}", token.column)


_COMPARISON_OPS: Final = (">", ">=", "<", "<=", "==", "!=")


def parse_condition(text: str) -> Cond:
    """The syntax tree of `text`.

    Raises:
        ConditionError: naming the column of the problem.
    """
    return _Parser(text).parse()
