"""Scorer registry: a new scorer is one small file plus one `@register_scorer` line."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

from thresher.pipeline.stage import Stage
from thresher.pipeline.stage_options import check_option_names

S = TypeVar("S", bound=type[Stage])

_SCORERS: dict[str, type[Stage]] = {}

# Modules whose import registers scorers; imported lazily so `thresher --help` stays fast.
SCORER_MODULES: tuple[str, ...] = ("thresher.pipeline.scorers", "thresher.pipeline.model_scorers")


def register_scorer(cls: S) -> S:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _SCORERS and _SCORERS[cls.name] is not cls:
        raise ValueError(f"scorer name {cls.name!r} registered twice")
    _SCORERS[cls.name] = cls
    return cls


def _load() -> None:
    for mod in SCORER_MODULES:
        importlib.import_module(mod)


def scorer_names() -> list[str]:
    _load()
    return sorted(_SCORERS)


def make_scorer(name: str, **options) -> Stage:
    """Instantiate a registered scorer; unknown names list what exists."""
    _load()
    try:
        cls = _SCORERS[name]
    except KeyError:
        raise KeyError(f"unknown scorer {name!r}; available: {', '.join(sorted(_SCORERS))}") from None
    check_option_names(name, cls.option_names(), options)
    return cls(**options)


def scorer_class(name: str) -> type[Stage]:
    _load()
    return _SCORERS[name]


Factory = Callable[..., Stage]
