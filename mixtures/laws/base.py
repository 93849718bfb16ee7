"""The one interface every utility law implements.

A law maps (parameters, observations) to predicted values. Predictions are batched over
parameter vectors: `predict_batch(theta, data)` takes an (m, p) array and returns (m, n), so a
fit can evaluate finite-difference gradients, and a bootstrap or a plan can evaluate hundreds of
parameter draws, in one vectorised call.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from thresher.mixtures.observations import Observations


@dataclass(frozen=True)
class ParamSpec:
    """One law parameter: how it is optimised and where starts are drawn from.

    kind "log": positive, optimised as log(x); "neglog": negative, optimised as log(-x);
    "free": optimised as is. `lower`/`upper` bound the natural value; `grid` lists natural
    starting values for the multi-start fit.
    """

    name: str
    kind: str
    lower: float
    upper: float
    grid: tuple[float, ...]
    axis: str = ""  # parameters on one axis (e.g. every pool's b) share a start value
    repetition: bool = False  # fitted in stage two of a two-stage fit
    neutral: float | None = None  # value that switches the repetition effect off (stage one)

    def __post_init__(self) -> None:
        if self.kind not in ("log", "neglog", "free"):
            raise ValueError(f"parameter {self.name}: unknown kind {self.kind!r}")
        if not self.lower < self.upper:
            raise ValueError(f"parameter {self.name}: lower bound {self.lower} must be below upper {self.upper}")

    def to_internal(self, x: np.ndarray | float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "log":
            return np.log(x)
        if self.kind == "neglog":
            return np.log(-x)
        return x

    def to_natural(self, z: np.ndarray | float) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        if self.kind == "log":
            return np.exp(z)
        if self.kind == "neglog":
            return -np.exp(z)
        return z

    def internal_bounds(self) -> tuple[float, float]:
        lo, hi = sorted((float(self.to_internal(self.lower)), float(self.to_internal(self.upper))))
        return lo, hi


@dataclass(frozen=True)
class LawData:
    """Observation arrays a law reads, aligned to the law's pools."""

    weights: np.ndarray  # (n, P)
    unique: np.ndarray  # (n, P)
    seen: np.ndarray  # (n,)
    params: np.ndarray  # (n,)

    @classmethod
    def from_observations(cls, obs: Observations, pools: Sequence[str]) -> LawData:
        obs.check_for_laws()
        if tuple(obs.pools) != tuple(pools):
            obs = obs.with_pools(pools)
        return cls(weights=obs.weights, unique=obs.unique, seen=obs.seen, params=obs.params)

    def __len__(self) -> int:
        return len(self.seen)


class Law(ABC):
    """A utility law: parameter specs per pool set plus a batched predictor."""

    name: ClassVar[str]
    needs_params: ClassVar[bool] = False  # True when predictions need the model size
    option_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options: Any) -> None:
        unknown = set(options) - set(self.option_defaults)
        if unknown:
            raise ValueError(f"law {self.name!r}: unknown option(s) {sorted(unknown)}; known: {sorted(self.option_defaults)}")
        self.options: dict[str, Any] = {**self.option_defaults, **options}
        self._check_options()

    def _check_options(self) -> None:  # noqa: B027 (optional hook: most laws have nothing to check)
        """Subclasses validate their options here."""

    @abstractmethod
    def param_specs(self, pools: Sequence[str], obs: Observations | None = None) -> list[ParamSpec]:
        """Specs for this pool set, in the order `predict_batch` expects; `obs` scales start grids."""

    @abstractmethod
    def predict_batch(self, theta: np.ndarray, data: LawData) -> np.ndarray:
        """(m, p) natural parameters -> (m, n) predicted values."""

    def param_names(self, pools: Sequence[str]) -> list[str]:
        return [s.name for s in self.param_specs(pools)]

    def check_data(self, data: LawData, where: str = "observations") -> None:
        if self.needs_params and np.isnan(data.params).any():
            i = int(np.flatnonzero(np.isnan(data.params))[0])
            raise ValueError(f"law {self.name!r} needs model params, but {where} row {i + 1} has none; map a params column")

    def predict(self, params: Mapping[str, float], data: LawData, pools: Sequence[str]) -> np.ndarray:
        names = self.param_names(pools)
        missing = [k for k in names if k not in params]
        if missing:
            raise ValueError(f"law {self.name!r}: missing parameter(s) {missing}")
        theta = np.array([[float(params[k]) for k in names]])
        return self.predict_batch(theta, data)[0]


def pooled(name: str, pool: str) -> str:
    """Name of a per-pool parameter, e.g. b[top10]."""
    return f"{name}[{pool}]"


def col(theta: np.ndarray, j: int) -> np.ndarray:
    """Column j of a parameter batch as (m, 1) for broadcasting against (n,) rows."""
    return theta[:, j : j + 1]
