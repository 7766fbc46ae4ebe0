"""The generated functions agree with a plain reference interpretation on generated events.

The reference walks the tree the obvious way (every operand evaluated, no fast paths, no fused
reads, no shared prefixes, no hoisting), so any shortcut the code generator takes is checked
against it. Where the `cel` binding is installed, expressions within CEL's own typing rules are
checked against real CEL too.
"""

import json
import operator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from eh_contracts.expressions import (
    ExpressionError,
    ExpressionLimits,
    compile_expression,
    compile_value,
    envelope_scope,
    parse_expression,
)
from eh_contracts.expressions.field_types import FieldType, Kind
from eh_contracts.expressions.syntax import (
    Binary,
    Field,
    Has,
    ListLiteral,
    Literal_,
    Logical,
    Node,
    StringTest,
    Unary,
)

SCOPE = envelope_scope(["node_metrics", "system_alert", "system_log"])
ERR = object()


def json_kind(value: Any) -> Kind:
    if isinstance(value, bool):
        return Kind.BOOL
    if isinstance(value, int | float):
        return Kind.NUMBER
    if isinstance(value, str):
        return Kind.STRING
    if value is None:
        return Kind.NULL
    return Kind.MAP if isinstance(value, dict) else Kind.LIST


def field_kind(path: tuple[str, ...]) -> FieldType:
    kind = SCOPE
    for name in path:
        child = kind.child(name)
        assert child is not None
        kind = child
    return kind


def walk(root: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(root, dict) or key not in root:
            return ERR
        root = root[key]
    return root


def equal(a: Any, b: Any) -> bool:
    return json_kind(a) == json_kind(b) and a == b


def reference(node: Node, root: dict[str, Any]) -> Any:
    if isinstance(node, Literal_):
        return node.value
    if isinstance(node, Field):
        value = walk(root, node.path)
        kind = field_kind(node.path)
        if value is ERR or (not kind.dynamic and json_kind(value) not in kind.kinds):
            return ERR
        return value
    if isinstance(node, Has):
        parent = walk(root, node.field.path[:-1])
        return node.field.path[-1] in parent if isinstance(parent, dict) else ERR
    if isinstance(node, Unary):
        value = reference(node.operand, root)
        if node.op == "!":
            return (not value) if isinstance(value, bool) else ERR
        return -value if json_kind(value) is Kind.NUMBER and value is not ERR else ERR
    if isinstance(node, Logical):
        values = [reference(operand, root) for operand in node.operands]
        deciding = node.op == "||"
        if any(v is deciding for v in values):
            return deciding
        return (not deciding) if all(isinstance(v, bool) for v in values) else ERR
    if isinstance(node, StringTest):
        text, part = reference(node.target, root), reference(node.argument, root)
        if not isinstance(text, str) or not isinstance(part, str):
            return ERR
        return {"startsWith": text.startswith, "endsWith": text.endswith, "contains": text.__contains__}[
            node.method
        ](part)
    assert isinstance(node, Binary)
    left = reference(node.left, root)
    if node.op == "in":
        assert isinstance(node.right, ListLiteral)
        return ERR if left is ERR else any(equal(left, item.value) for item in node.right.items)
    right = reference(node.right, root)
    if left is ERR or right is ERR:
        return ERR
    if node.op in ("==", "!="):
        return equal(left, right) is (node.op == "==")
    kinds = (json_kind(left), json_kind(right))
    if node.op in ("<", "<=", ">", ">="):
        if kinds not in ((Kind.NUMBER, Kind.NUMBER), (Kind.STRING, Kind.STRING)):
            return ERR
        return {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[node.op](
            left, right
        )
    if kinds != (Kind.NUMBER, Kind.NUMBER):
        return ERR
    if node.op == "/" and right == 0:
        return ERR
    try:
        return {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}[node.op](
            left, right
        )
    except OverflowError:  # an integer too large for a float meets a float
        return ERR


def answer(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


# --- generated events ------------------------------------------------------------------------

scalars = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([0.5, 90.0, 95.5, -1.0, 1e300, 10**400]),
    st.sampled_from(["warning", "critical", "info", "node-1", "n", "", "resource"]),
    st.booleans(),
    st.none(),
)
values = st.one_of(
    scalars, st.lists(scalars, max_size=2), st.dictionaries(st.sampled_from(["x", "n"]), scalars)
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(ERR), strategy)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    cpu = {k: v for k, v in (("usage", draw(maybe(values))), ("cores", draw(maybe(values)))) if v is not ERR}
    context = draw(maybe(st.one_of(st.dictionaries(st.sampled_from(["n", "s", "flag"]), values), values)))
    data = {
        "cpu": draw(st.one_of(st.just(cpu), values)),
        "level": draw(values),
        "category": draw(values),
        "context": context,
    }
    data = {k: v for k, v in data.items() if v is not ERR and draw(st.booleans())}
    event = {"resource_id": draw(values), "data": draw(st.one_of(st.just(data), values))}
    return json.loads(json.dumps(event))  # only what JSON can hold


# --- generated expressions -------------------------------------------------------------------

FIELDS = ["data.cpu.usage", "data.cpu.cores", "data.level", "data.category", "resource_id", "data.context.n"]
LITERALS = ['"warning"', '"critical"', '"node-1"', '""', "90", "95.5", "0", "-1", "true", "null", "1e999"]
numbers = st.sampled_from(["data.cpu.usage", "data.cpu.cores", "data.context.n", "2", "0", "0.5"])


# Mostly constants a field can meet (so that most expressions type-check), sometimes any.
FITTING = {
    "data.cpu.usage": ["90", "95.5", "0", "-1", "1e999"],
    "data.cpu.cores": ["90", "0", "-1"],
    "data.level": ['"warning"', '"critical"'],
    "data.category": ['"resource"', '""', '"n"'],
    "resource_id": ['"node-1"', '""', '"n"', '"resource"'],
    "data.context.n": LITERALS,
}


@st.composite
def constants(draw: st.DrawFn, field: str) -> str:
    return draw(st.sampled_from(FITTING[field] if draw(st.integers(0, 4)) else LITERALS))


@st.composite
def atoms(draw: st.DrawFn, field: str | None = None) -> str:
    """A comparison, `in`, `has`, string test, arithmetic or constant; on `field` when given."""
    kind = draw(st.integers(0, 6) if field is None else st.sampled_from([0, 1, 3]))
    field = field or draw(st.sampled_from(FIELDS))
    if kind == 0:
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        return f"{field} {op} {draw(constants(field))}"
    if kind == 1:
        return f"{field} in [{', '.join(draw(st.lists(constants(field), max_size=3)))}]"
    if kind == 2:
        return f"has({draw(st.sampled_from(['data.cpu', 'data.cpu.usage', 'data.context.n', 'data.gpu']))})"
    if kind == 3:
        method = draw(st.sampled_from(["startsWith", "endsWith", "contains"]))
        argument = draw(st.sampled_from(['"n"', '""', "data.category"]))
        return f"{field}.{method}({argument})"
    if kind == 4:
        op = draw(st.sampled_from(["+", "-", "*", "/"]))
        return (
            f"{draw(numbers)} {op} {draw(numbers)} {draw(st.sampled_from(['>', '==', '<=']))} {draw(numbers)}"
        )
    if kind == 5:  # two fields, the constant first, or two constants
        op = draw(st.sampled_from(["==", "!=", "<", ">=", "in"]))
        left = draw(st.sampled_from([*FIELDS, *LITERALS]))
        if op == "in":
            return f"{left} in [{', '.join(draw(st.lists(st.sampled_from(LITERALS), max_size=3)))}]"
        return f"{left} {op} {draw(st.sampled_from([*FIELDS, *FIELDS, *LITERALS]))}"
    return draw(st.sampled_from(["true", "false", "data.context.n", f"-{draw(numbers)} < 0", "null == null"]))


expressions = st.recursive(
    atoms(),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda p: f"({p[0]} && {p[1]})"),
        st.tuples(inner, inner, inner).map(lambda p: f"{p[0]} || {p[1]} || {p[2]}"),
        inner.map(lambda e: f"!({e})"),
    ),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=expressions, event_list=st.lists(events(), min_size=1, max_size=4))
def test_compiled_filters_agree_with_the_reference(text, event_list):
    try:
        compiled = compile_expression(text, SCOPE)
    except ExpressionError:
        assume(False)
        return
    tree = parse_expression(text)
    for event in event_list:
        assert compiled.evaluate(event) is answer(reference(tree, event)), (text, event, compiled.source)


@st.composite
def shared_reads(draw: st.DrawFn) -> str:
    """`(a && b) || c` and its kin, b and c reading the same field: c must read it itself when
    a decided the inner operator and b was never evaluated."""
    field = draw(st.sampled_from(FIELDS))
    inner, outer = draw(st.sampled_from(["&&", "||"])), draw(st.sampled_from(["&&", "||"]))
    negated = "!" if draw(st.booleans()) else ""
    nested = f"{negated}({draw(atoms())} {inner} {draw(atoms(field))})"
    other = draw(atoms(field))
    return f"{nested} {outer} {other}" if draw(st.booleans()) else f"{other} {outer} {nested}"


@settings(max_examples=300, deadline=None)
@given(text=shared_reads(), event_list=st.lists(events(), min_size=1, max_size=4))
def test_short_circuits_never_leave_a_later_read_without_its_value(text, event_list):
    try:
        compiled = compile_expression(text, SCOPE)
    except ExpressionError:
        assume(False)
        return
    tree = parse_expression(text)
    for event in event_list:
        assert compiled.evaluate(event) is answer(reference(tree, event)), (text, event, compiled.source)


DEEP = ExpressionLimits(max_length=100_000, max_depth=100)


def compiles(text: str) -> bool:
    try:
        compile_expression(text, SCOPE)
    except ExpressionError:
        return False
    return True


@st.composite
def deep_expressions(draw: st.DrawFn) -> str:
    """`&&` and `||` nested 18 to 30 deep (past where the generator moves a subtree into a
    function of its own), with `!` and atoms at every level."""
    valid_atoms = atoms().filter(compiles)
    text = f"({draw(valid_atoms)})"
    for _ in range(draw(st.integers(18, 30))):
        op = draw(st.sampled_from(["&&", "||"]))
        text = f"({draw(valid_atoms)} {op} {'!' if draw(st.booleans()) else ''}{text})"
    return text


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=deep_expressions(), event_list=st.lists(events(), min_size=1, max_size=4))
def test_deeply_nested_filters_agree_with_the_reference(text, event_list):
    compiled = compile_expression(text, SCOPE, limits=DEEP)
    assert "def f" in compiled.source  # a subtree hoisted into a function of its own
    tree = parse_expression(text, DEEP)
    for event in event_list:
        assert compiled.evaluate(event) is answer(reference(tree, event)), (text, event)


@settings(max_examples=200, deadline=None)
@given(
    text=st.tuples(numbers, st.sampled_from(["+", "-", "*", "/"]), numbers).map(" ".join),
    negate=st.booleans(),
    event=events(),
)
def test_computed_values_agree_with_the_reference(text, negate, event):
    """What an alert shows (`{value}`): the value, None where the reference has an error."""
    tree = parse_expression(f"-({text})" if negate else text)
    value, _kind = compile_value(tree, SCOPE)
    expected = reference(tree, event)
    assert value(event) == (None if expected is ERR else expected), (text, event)


cel = pytest.importorskip("cel")


@settings(max_examples=200, deadline=None)
@given(
    field=st.sampled_from(["data.cpu.usage", "data.level", "resource_id"]),
    op=st.sampled_from(["==", "!=", "<", ">=", "in"]),
    constant=st.sampled_from(['"warning"', '"node-1"', "90.0", "95.5"]),
    joiner=st.sampled_from(["&&", "||"]),
    other=st.sampled_from(["has(data.cpu)", '!resource_id.startsWith("n")', "data.cpu.usage > 50.0"]),
    event=events(),
)
def test_where_cel_types_allow_it_real_cel_agrees(field, op, constant, joiner, other, event):
    right = f"[{constant}]" if op == "in" else constant
    text = f"{field} {op} {right} {joiner} {other}"
    try:
        compiled = compile_expression(text, SCOPE)
    except ExpressionError:
        assume(False)
        return
    # Real CEL keeps int and double apart (1 == 1.0 is a type error there), and ours has one number
    # type by design; compare on events that only hold doubles.
    event = json.loads(json.dumps(event), parse_int=float)
    try:
        expected = cel.evaluate(text, event)
    except Exception:
        expected = None
    if not isinstance(expected, bool):
        expected = None
    ours = compiled.evaluate(event)
    # Where ours says "error" for a value of the wrong type in a typed field, CEL (untyped here)
    # may still answer; everywhere else the two must agree.
    typed_mismatch = ours is None and expected is not None and reference(parse_expression(text), event) is ERR
    assert ours is expected or typed_mismatch, (text, event, expected)
