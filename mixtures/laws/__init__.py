"""Utility laws: one module per law, one interface (`Law`), and a registry by name."""
from __future__ import annotations

from typing import Any

from thresher.mixtures.laws.base import Law, LawData, ParamSpec
from thresher.mixtures.laws.goyal import GoyalLaw
from thresher.mixtures.laws.muennighoff import MuennighoffLaw
from thresher.mixtures.laws.overfit import OverfitLaw

LAWS: dict[str, type[Law]] = {}


def register_law(cls: type[Law]) -> type[Law]:
    """Add a law class to the registry under `cls.name` (usable as a decorator)."""
    if cls.name in LAWS and LAWS[cls.name] is not cls:
        raise ValueError(f"a law named {cls.name!r} is already registered")
    LAWS[cls.name] = cls
    return cls


for _cls in (GoyalLaw, MuennighoffLaw, OverfitLaw):
    register_law(_cls)


def get_law(name: str | Law, **options: Any) -> Law:
    """A law instance by registry name (or pass an instance through)."""
    if isinstance(name, Law):
        if options:
            raise ValueError("pass options either to the law instance or by name, not both")
        return name
    if name not in LAWS:
        raise ValueError(f"unknown law {name!r}; known laws: {', '.join(sorted(LAWS))}")
    return LAWS[name](**options)


__all__ = ["LAWS", "Law", "LawData", "ParamSpec", "GoyalLaw", "MuennighoffLaw", "OverfitLaw", "get_law", "register_law"]
