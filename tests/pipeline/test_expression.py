"""Where-expressions: what they select, and what they refuse to run."""
from __future__ import annotations

import pyarrow as pa
import pytest

from thresher.pipeline.expression import ExpressionError, columns, evaluate

T = pa.table({"a_pass": [True, False, None, True], "x": [1.0, 5.0, 3.0, None], "source": ["d", "f", "d", "f"]})


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("a_pass", [True, False, False, True]),
        ("not a_pass", [False, True, False, False]),
        ("x > 2 and x <= 5", [False, True, True, False]),
        ("a_pass or x > 4", [True, True, False, True]),
        ("source in ('f',)", [False, True, False, True]),
        ("x * 2 - 1 >= 5", [False, True, True, False]),
        ("is_null(x)", [False, False, False, True]),
        ("1 < x < 4", [False, False, True, False]),
    ],
)
def test_evaluate(expr, expected):
    assert evaluate(expr, T).to_pylist() == expected


@pytest.mark.parametrize("expr", ["__import__('os')", "x.real > 1", "[c for c in x]", "lambda: 1", "x > 1; y",
                                  "open('f')", "nope > 1", "x + 1"])
def test_refused(expr):
    with pytest.raises(ExpressionError):
        evaluate(expr, T)


def test_columns():
    assert columns("a_pass and (x > 1 or source == 'd') and abs(x) < 3") == ["a_pass", "x", "source"]
