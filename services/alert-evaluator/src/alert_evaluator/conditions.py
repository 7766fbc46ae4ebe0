"""Rule conditions: the event expression language (`eh_contracts.expressions`) over one payload.

A condition's names are the fields of its event type's `data` (`cpu.usage > 80`), checked
against the payload model when the rules file is loaded, so a typo (`cpu.usge`), a comparison of
a state with a number, or a state value that does not exist (`new_state == "ofline"`) is an error
at start, not an alert that silently never fires. It is the same language and the same compiled
evaluator as the edge's `filter=`; older rule files that spell `&&`, `||`, `!` as `and`, `or`,
`not` still load.

A compiled condition answers True, False, or None when the event lacks a value it needs (no
`gpu` section, a division by zero): None is "no data", which is not an observation at all, so it
neither starts nor resolves an alert.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

from pydantic import BaseModel

from eh_contracts.expressions import ExpressionError, compile_expression, compile_value, payload_scope
from eh_contracts.expressions.syntax import (
    ORDERINGS,
    Binary,
    ListLiteral,
    Literal_,
    Logical,
    Node,
    Unary,
    unparse,
)

ConditionError = ExpressionError
Data: TypeAlias = dict[str, Any]
Value: TypeAlias = float | int | str | bool | None


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    """A condition ready to run on an event's `data`.

    `value` reads what the rule watches (the left side of its main comparison: the first one
    against a number, else the first one); `threshold` is what that is compared with. Both fill
    an alert's `current_value`/`threshold` and the `{value}`/`{threshold}` placeholders.
    """

    text: str
    holds: Callable[[Data], bool | None]
    value: Callable[[Data], Any]
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
    scope = payload_scope(model)
    compiled = compile_expression(text, scope, legacy_words=True)
    tree = compiled.tree
    main = _main_comparison(tree)
    value: Callable[[Data], Any]
    threshold: Value | tuple[Value, ...]
    if main is None:
        value, threshold = (lambda _data: None), compiled.canonical
    else:
        value, _kind = compile_value(main.left, scope)
        if isinstance(main.right, ListLiteral):
            threshold = tuple(item.value for item in main.right.items)
        elif isinstance(main.right, Literal_):
            threshold = main.right.value
        else:
            threshold = _describe(main.right)
    ordering = None
    if (
        isinstance(tree, Binary)
        and tree.op in ORDERINGS
        and isinstance(tree.right, Literal_)
        and _is_number(tree.right.value)
    ):
        ordering = (_describe(tree.left), tree.op)
        value = _numbers_only(value)  # bisected against thresholds: text from a stray event is no data
    return CompiledCondition(text, compiled.evaluate, value, threshold, compiled.fields, ordering)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers_only(value: Callable[[Data], Any]) -> Callable[[Data], Any]:
    def number(data: Data) -> Any:
        result = value(data)
        return result if _is_number(result) else None

    return number


def _main_comparison(tree: Node) -> Binary | None:
    comparisons = list(_comparisons(tree))
    for comparison in comparisons:
        right = comparison.right
        if isinstance(right, Literal_) and _is_number(right.value):
            return comparison
    return comparisons[0] if comparisons else None


def _comparisons(tree: Node) -> Iterator[Binary]:
    if isinstance(tree, Binary) and (tree.op in ORDERINGS or tree.op in ("==", "!=", "in")):
        yield tree
    elif isinstance(tree, Logical):
        for operand in tree.operands:
            yield from _comparisons(operand)
    elif isinstance(tree, Unary) and tree.op == "!":
        yield from _comparisons(tree.operand)


def _describe(node: Node) -> str:
    text = unparse(node)
    return text[1:-1] if isinstance(node, Binary) else text
