"""Scorer options: which names a scorer takes, and values turned into the kinds their defaults have.

Options reach a scorer as text (`--scorer-option NAME.KEY=VALUE`), as YAML values from a
job spec or as Python values from a notebook; all three go through `make_scorer`, so the
checks live here and every caller gets the same refusals and the same words.
"""
from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any


class OptionError(ValueError):
    """A scorer option whose value is of the wrong kind; names the scorer, the key and what was expected."""

    def __init__(self, scorer: str, key: str, expected: str, value: Any, message: str | None = None) -> None:
        super().__init__(message or f"scorer {scorer!r}: option {key}: expected {expected}, got {value!r}")
        self.scorer, self.key, self.expected, self.value = scorer, key, expected, value


def signature_options(cls: type) -> list[str] | None:
    """The keyword options a class's constructor takes, or None when it takes any keyword."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return sorted(p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL)


def check_option_names(scorer: str, known: Iterable[str] | None, options: Iterable[str]) -> None:
    """Refuse options the scorer does not take, listing those it does (None: it takes any)."""
    if known is None:
        return
    known = sorted(known)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"scorer {scorer!r} has no option(s) {', '.join(unknown)}; options: {', '.join(known)}")


def as_kind_of(scorer: str, key: str, default: Any, value: Any) -> Any:
    """`value` as the kind of `default`; OptionError when it is not one.

    Booleans take true/false (text too: YAML may quote them), whole numbers refuse a
    fraction instead of cutting it, numbers refuse text that is none; a sequence default
    takes a list as a tuple; any other default converts with its own type, as before.
    """
    if isinstance(default, bool):
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise OptionError(scorer, key, "true or false", value)
        return value
    if isinstance(default, (int, float)):
        number = value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise OptionError(scorer, key, "a number", value)
        if isinstance(default, int):
            if not float(number).is_integer():
                raise OptionError(scorer, key, "a whole number", value)
            return int(number)
        return float(number)
    if isinstance(value, (tuple, list)):
        return tuple(value)
    return type(default)(value)


def int_option(scorer: str, key: str, value: Any) -> int:
    """A whole-number option of a scorer without a defaults dataclass (model scorers)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise OptionError(scorer, key, "a whole number", value,
                          f"scorer {scorer!r}: option {key}={value!r} is not an integer") from None
