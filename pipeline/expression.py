"""Safe `--where` expressions over score columns, evaluated with Arrow kernels.

The expression is parsed with Python's `ast` (never evaluated): only column
names, literals, comparisons, arithmetic, `and`/`or`/`not`, `in (…)` and a few
functions are allowed. Nulls compare as false, so a row with a missing score is
not selected by accident.
"""
from __future__ import annotations

import ast
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from thresher.metrics.errors import InputError


class ExpressionError(InputError):
    """An expression that is not allowed or names unknown columns."""


_CMP = {ast.Lt: pc.less, ast.LtE: pc.less_equal, ast.Gt: pc.greater, ast.GtE: pc.greater_equal,
        ast.Eq: pc.equal, ast.NotEq: pc.not_equal}
_BIN = {ast.Add: pc.add, ast.Sub: pc.subtract, ast.Mult: pc.multiply, ast.Div: pc.divide}
_FUNCS = {"abs": pc.abs, "log": pc.ln, "is_null": pc.is_null, "is_valid": pc.is_valid}


def parse(expression: str) -> ast.Expression:
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"cannot parse {expression!r}: {exc.msg}") from None
    return tree


def columns(expression: str) -> list[str]:
    """Column names an expression reads, in order of first use."""
    seen: list[str] = []
    for node in ast.walk(parse(expression)):
        if isinstance(node, ast.Name) and node.id not in _FUNCS and node.id not in ("True", "False") and node.id not in seen:
            seen.append(node.id)
    return seen


def evaluate(expression: str, table: pa.Table) -> pa.Array:
    """A boolean mask (no nulls) with one entry per row of `table`."""
    result = _eval(parse(expression).body, table, expression)
    if isinstance(result, pa.Scalar) or not isinstance(result, (pa.Array, pa.ChunkedArray)):
        raise ExpressionError(f"{expression!r} does not depend on any column")
    if not pa.types.is_boolean(result.type):
        raise ExpressionError(f"{expression!r} gives {result.type} values, not true/false")
    if isinstance(result, pa.ChunkedArray):
        result = result.combine_chunks()
    return pc.fill_null(result, False)


def _eval(node: ast.AST, table: pa.Table, src: str) -> Any:
    if isinstance(node, ast.BoolOp):
        values = [_eval(v, table, src) for v in node.values]
        fn = pc.and_kleene if isinstance(node.op, ast.And) else pc.or_kleene
        out = values[0]
        for v in values[1:]:
            out = fn(out, v)
        return out
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, table, src)
        if isinstance(node.op, ast.Not):
            return pc.invert(operand)
        if isinstance(node.op, ast.USub):
            return pc.negate(operand)
        raise ExpressionError(f"operator {type(node.op).__name__} is not allowed in {src!r}")
    if isinstance(node, ast.Compare):
        left = _eval(node.left, table, src)
        out = None
        for op, right_node in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(right_node, (ast.Tuple, ast.List, ast.Set)):
                    raise ExpressionError(f"`in` needs a literal list in {src!r}")
                values = pa.array([_literal(e, src) for e in right_node.elts])
                part = pc.is_in(left, value_set=values)
                if isinstance(op, ast.NotIn):
                    part = pc.invert(part)
                right = None
            else:
                right = _eval(right_node, table, src)
                fn = _CMP.get(type(op))
                if fn is None:
                    raise ExpressionError(f"comparison {type(op).__name__} is not allowed in {src!r}")
                part = fn(left, right)
            out = part if out is None else pc.and_kleene(out, part)
            left = right
        return out
    if isinstance(node, ast.BinOp):
        fn = _BIN.get(type(node.op))
        if fn is None:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed in {src!r}")
        left, right = _eval(node.left, table, src), _eval(node.right, table, src)
        if isinstance(node.op, ast.Div):
            left = pc.cast(left, pa.float64()) if not isinstance(left, (int, float)) else float(left)
        return fn(left, right)
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS or node.keywords or len(node.args) != 1:
            raise ExpressionError(f"only {', '.join(sorted(_FUNCS))}(column) calls are allowed in {src!r}")
        return _FUNCS[node.func.id](_eval(node.args[0], table, src))
    if isinstance(node, ast.Name):
        if node.id in ("True", "False"):
            return node.id == "True"
        if node.id not in table.column_names:
            raise ExpressionError(f"unknown column {node.id!r} in {src!r}; columns: {', '.join(table.column_names)}")
        return table[node.id]
    if isinstance(node, ast.Constant):
        return _literal(node, src)
    raise ExpressionError(f"{type(node).__name__} is not allowed in {src!r}")


def _literal(node: ast.AST, src: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return -node.operand.value
    raise ExpressionError(f"only number, string and boolean literals are allowed in {src!r}")
