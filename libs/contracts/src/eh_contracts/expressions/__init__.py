"""One expression language for stream filters, history queries and alert conditions.

A strict subset of CEL (the Common Expression Language of Kubernetes and Envoy), parsed and
type-checked once against the event models and compiled to one Python function each: see
`syntax` for the grammar and its bounds, `field_types` for what names mean, `compiler` for the
semantics and the checks, `codegen` for the function.
"""

from eh_contracts.expressions.compiler import CompiledExpression, compile_expression, compile_value
from eh_contracts.expressions.field_types import FieldType, Kind, envelope_scope, payload_scope
from eh_contracts.expressions.syntax import (
    DEFAULT_LIMITS,
    ExpressionError,
    ExpressionLimits,
    parse_expression,
    unparse,
)

__all__ = [
    "DEFAULT_LIMITS",
    "CompiledExpression",
    "ExpressionError",
    "ExpressionLimits",
    "FieldType",
    "Kind",
    "compile_expression",
    "compile_value",
    "envelope_scope",
    "parse_expression",
    "payload_scope",
    "unparse",
]
