"""A fitted utility law: predicts, carries its bootstrap draws, and is the fit file (JSON).

`thresher.mixtures.fitting.fit` makes one; planning, prediction and reports use it. The fit
file is read and written only here (`save` / `load` for paths, `to_bytes` / `from_bytes` for bytes that
`thresher.jobs` moves to and from storage, `to_dict` / `from_dict`); floats are
written repr-exact, so a reloaded fit predicts bit for bit the same.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thresher.metrics.files import FormatError, JsonFormat, MiB, read_limited, write_bytes_atomic
from thresher.mixtures.laws import Law, LawData, get_law
from thresher.mixtures.observations import Observations

FORMAT = JsonFormat("thresher.fit", 1, "fit", max_bytes=64 * MiB, noun="saved fit")
MISSING = "write one with `thresher fit`"  # what to do about a missing fit file


@dataclass
class FittedLaw:
    """A fitted law: predicts, saves to JSON, and carries its bootstrap draws when made."""

    law_name: str
    law_options: dict[str, Any]
    pools: tuple[str, ...]
    params: dict[str, float]
    fixed: tuple[str, ...] = ()
    unit: str = "tokens"
    objective: float = float("nan")
    delta: float = 1e-3
    n_obs: int = 0
    n_runs: int = 0
    n_starts: int = 0
    share_at_best: float = float("nan")
    converged: bool = True
    stage: str = "joint"
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = float("nan")
    bootstrap: np.ndarray | None = None  # (n_boot, p) natural parameters in `param_names` order
    notes: list[str] = field(default_factory=list)

    @property
    def law(self) -> Law:
        return get_law(self.law_name, **self.law_options)

    @property
    def param_names(self) -> list[str]:
        return self.law.param_names(self.pools)

    @property
    def theta(self) -> np.ndarray:
        return np.array([self.params[k] for k in self.param_names])

    def _data(self, obs: Observations) -> LawData:
        unknown = [p for p in obs.pools if p not in self.pools]
        if unknown:
            raise ValueError(f"{obs.source}: pools {unknown} were not in the fit (fitted pools: {list(self.pools)})")
        data = LawData.from_observations(obs, self.pools)
        self.law.check_data(data, obs.source)
        return data

    def predict(self, observations: Observations) -> np.ndarray:
        """Predicted value for every observation row (pools must be among the fitted ones)."""
        return self.law.predict_batch(self.theta[None, :], self._data(observations))[0]

    def predict_arrays(self, weights: np.ndarray, unique: np.ndarray, seen: np.ndarray, params: np.ndarray | float | None,
                       samples: bool = False) -> np.ndarray:
        """Fast path for planning: arrays already aligned to `self.pools`. (n,) or (n_boot + 1, n)."""
        n = len(seen)
        p = np.full(n, np.nan) if params is None else np.broadcast_to(np.asarray(params, np.float64), (n,))
        data = LawData(weights=weights, unique=unique, seen=np.asarray(seen, np.float64), params=p)
        self.law.check_data(data, "plan")
        theta = self.theta[None, :]
        if samples and self.bootstrap is not None:
            theta = np.vstack([theta, self.bootstrap])
        with np.errstate(all="ignore"):
            out = self.law.predict_batch(theta, data)
        return out if samples else out[0]

    def predict_samples(self, observations: Observations) -> np.ndarray:
        """(n_boot, n) predictions under every bootstrap draw."""
        if self.bootstrap is None:
            raise ValueError("this fit has no bootstrap draws; fit with bootstrap=N or call thresher.mixtures.fitting.bootstrap")
        with np.errstate(all="ignore"):
            return self.law.predict_batch(self.bootstrap, self._data(observations))

    def predict_interval(self, observations: Observations, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval of the predictions over bootstrap draws."""
        s = self.predict_samples(observations)
        q = (1 - level) / 2
        return np.nanquantile(s, q, axis=0), np.nanquantile(s, 1 - q, axis=0)

    def interval(self, name: str, level: float = 0.9) -> tuple[float, float]:
        """Percentile interval of one parameter over bootstrap draws."""
        if self.bootstrap is None:
            raise ValueError("this fit has no bootstrap draws")
        j = self.param_names.index(name)
        q = (1 - level) / 2
        return float(np.quantile(self.bootstrap[:, j], q)), float(np.quantile(self.bootstrap[:, j], 1 - q))

    # ---- the fit file: JSON, read and written only here ------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            **FORMAT.stamp(),
            "law": self.law_name,
            "law_options": self.law_options,
            "pools": list(self.pools),
            "unit": self.unit,
            "params": {k: float(v) for k, v in self.params.items()},
            "fixed": list(self.fixed),
            "objective": self.objective,
            "delta": self.delta,
            "n_obs": self.n_obs,
            "n_runs": self.n_runs,
            "n_starts": self.n_starts,
            "share_at_best": self.share_at_best,
            "converged": self.converged,
            "stage": self.stage,
            "metrics": self.metrics,
            "seconds": self.seconds,
            "bootstrap": None if self.bootstrap is None else self.bootstrap.tolist(),
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        # repr-exact floats: a reloaded fit predicts bit-for-bit the same.
        return json.dumps(self.to_dict(), indent=1, allow_nan=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "fit") -> FittedLaw:
        FORMAT.check(d, source)
        try:
            boot = d.get("bootstrap")
            fitted = cls(
                law_name=str(d["law"]), law_options=dict(d.get("law_options", {})), pools=tuple(d["pools"]),
                params={k: float(v) for k, v in d["params"].items()}, fixed=tuple(d.get("fixed", ())),
                unit=str(d.get("unit", "tokens")), objective=float(d.get("objective", np.nan)),
                delta=float(d.get("delta", 1e-3)), n_obs=int(d.get("n_obs", 0)), n_runs=int(d.get("n_runs", 0)),
                n_starts=int(d.get("n_starts", 0)), share_at_best=float(d.get("share_at_best", np.nan)),
                converged=bool(d.get("converged", True)), stage=str(d.get("stage", "joint")),
                metrics=dict(d.get("metrics", {})), seconds=float(d.get("seconds", np.nan)),
                bootstrap=None if boot is None else np.asarray(boot, dtype=np.float64),
                notes=list(d.get("notes", [])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(source, f"malformed fit: {exc}") from exc
        missing = [k for k in fitted.param_names if k not in fitted.params]
        if missing:
            raise FormatError(source, f"fit lacks parameter(s) {missing} for law {fitted.law_name!r}")
        return fitted

    def to_bytes(self) -> bytes:
        return self.to_json().encode()

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "fit") -> FittedLaw:
        return cls.from_dict(FORMAT.loads(text, source), source)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "fit") -> FittedLaw:
        """A fit file's bytes, read by whoever opened it (a local file, an object in a store); `source` names it.

        The size limit and the format check are those of `load`: bytes over `FORMAT.max_bytes`
        are refused (read `max_bytes + 1` to let this see an oversize file).
        """
        return cls.from_json(data, source)

    def save(self, path: str | Path) -> Path:
        """Write the fit file atomically."""
        return write_bytes_atomic(self.to_bytes(), path)

    @classmethod
    def load(cls, path: str | Path) -> FittedLaw:
        return cls.from_json(read_limited(path, FORMAT.max_bytes, FORMAT.what, missing=MISSING), str(path))

    def sha256(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()
