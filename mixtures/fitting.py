"""Robust multi-start fitting of utility laws, and the bootstrap by run; a fit is a `FittedLaw`.

Practice follows the lessons of refitting Chinchilla's Approach 3: the objective is the *mean*
Huber loss (delta = 1e-3) of log residuals, in float64, divided by delta so its scale does not
stop L-BFGS-B early; positive parameters are optimised in log space; L-BFGS-B runs to tight
tolerances from a grid of starts, and we report how many starts agree on the best optimum (a
low share means the optimum is fragile). Intervals come from refitting on runs resampled with
replacement: checkpoints of one run are correlated, so the run, not the row, is the unit.
"""
from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.optimize import minimize

try:  # a multi-threaded BLAS makes L-BFGS-B's tiny matrix products ~40x slower on a busy machine
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
    from contextlib import nullcontext as threadpool_limits  # type: ignore[assignment]

from thresher.mixtures.fitted_law import FittedLaw
from thresher.mixtures.laws import Law, LawData, ParamSpec, get_law
from thresher.mixtures.observations import Observations

__all__ = ["FittedLaw", "Objective", "fit", "huber", "run_bootstrap"]  # FittedLaw: where it was always imported from
GRIDS = ("full", "small", "none")
_FD_STEP = 1e-5  # central-difference step in internal (log) coordinates
_BIG = 1e10


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


class Objective:
    """Mean Huber loss of log residuals over free internal parameters, batched over points."""

    def __init__(self, law: Law, specs: list[ParamSpec], data: LawData, value: np.ndarray, free: np.ndarray,
                 base_theta: np.ndarray, delta: float, row_weights: np.ndarray | None = None) -> None:
        self.law, self.specs, self.data = law, specs, data
        self.log_y = np.log(value)
        self.free = free
        self.base_theta = base_theta
        self.delta = float(delta)
        self.row_weights = None if row_weights is None else row_weights / row_weights.sum()
        self.free_specs = [specs[j] for j in np.flatnonzero(free)]
        self.evaluations = 0

    def natural(self, z: np.ndarray) -> np.ndarray:
        z = np.atleast_2d(z)
        theta = np.repeat(self.base_theta[None, :], z.shape[0], axis=0)
        for k, (j, spec) in enumerate(zip(np.flatnonzero(self.free), self.free_specs)):
            theta[:, j] = spec.to_natural(z[:, k])
        return theta

    def values(self, z: np.ndarray) -> np.ndarray:
        """Objective at each row of z (m, k), scaled by 1/delta; non-finite predictions -> _BIG."""
        with np.errstate(all="ignore"):
            pred = self.law.predict_batch(self.natural(z), self.data)
            h = huber(np.log(pred) - self.log_y, self.delta)
            f = (h.mean(axis=1) if self.row_weights is None else h @ self.row_weights) / self.delta
        self.evaluations += z.shape[0] if z.ndim == 2 else 1
        return np.where(np.isfinite(f), f, _BIG)

    def value_and_grad(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        k = len(z)
        pts = np.repeat(z[None, :], 2 * k + 1, axis=0)
        idx = np.arange(k)
        pts[1 + idx, idx] += _FD_STEP
        pts[1 + k + idx, idx] -= _FD_STEP
        f = self.values(pts)
        grad = (f[1 : 1 + k] - f[1 + k :]) / (2 * _FD_STEP)
        grad = np.where(np.isfinite(grad) & (np.abs(grad) < _BIG / 10), grad, 0.0)
        return float(f[0]), grad


def _start_grid(specs: list[ParamSpec], free: np.ndarray, grid: str) -> np.ndarray:
    """Cartesian product over axes (parameters on one axis share a value) -> (s, k) internal."""
    axes: dict[str, tuple[float, ...]] = {}
    for spec, is_free in zip(specs, free):
        if is_free:
            values = spec.grid if grid == "full" else (spec.grid[len(spec.grid) // 2],)
            axes.setdefault(spec.axis or spec.name, values)
    if grid == "none":
        return np.empty((0, int(np.sum(free))))
    names = list(axes)
    combos = list(itertools.product(*(axes[a] for a in names)))
    free_specs = [s for s, f in zip(specs, free) if f]
    out = np.empty((len(combos), len(free_specs)))
    for k, spec in enumerate(free_specs):
        a = names.index(spec.axis or spec.name)
        lo, hi = spec.internal_bounds()
        out[:, k] = np.clip(spec.to_internal(np.array([c[a] for c in combos])), lo, hi)
    return out


def _metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    ape = np.abs(pred - y) / y
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return {
        "mape": float(np.mean(ape)),
        "median_ape": float(np.median(ape)),
        "r2": float(1 - ((y - pred) ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan"),
        "rmse_log": float(np.sqrt(np.mean((np.log(pred) - np.log(y)) ** 2))),
    }


def _minimise(obj: Objective, z0: np.ndarray, bounds: list[tuple[float, float]], maxiter: int):
    with threadpool_limits(1):
        return minimize(obj.value_and_grad, z0, jac=True, method="L-BFGS-B", bounds=bounds,
                        options={"maxiter": maxiter, "gtol": 1e-10, "ftol": 1e-13, "maxcor": 20})


def _optimise(law: Law, specs: list[ParamSpec], data: LawData, value: np.ndarray, theta0: np.ndarray, free: np.ndarray,
              delta: float, grid: str, max_starts: int, extra_starts: list[np.ndarray], agree_rtol: float,
              maxiter: int, row_weights: np.ndarray | None = None) -> tuple[np.ndarray, float, int, float, bool]:
    obj = Objective(law, specs, data, value, free, theta0, delta, row_weights)
    bounds = [s.internal_bounds() for s in obj.free_specs]
    starts = _start_grid(specs, free, grid)
    if len(starts) > max_starts:
        # Screen the grid in one batched pass and start from the best points.
        batch = max(1, int(2e6 // max(len(value), 1)))
        f = np.concatenate([obj.values(starts[i : i + batch]) for i in range(0, len(starts), batch)])
        starts = starts[np.argsort(f, kind="stable")[:max_starts]]
    if extra_starts:
        starts = np.vstack([np.array(extra_starts), starts])
    if len(starts) == 0:
        raise ValueError('grid="none" needs a start: pass init={...}')
    results = []
    for z0 in starts:
        res = _minimise(obj, z0, bounds, maxiter)
        results.append((float(res.fun), res.x, bool(res.success)))
    fun = np.array([r[0] for r in results])
    best = int(np.argmin(fun))
    f_best = fun[best]
    share = float(np.mean(fun <= f_best + agree_rtol * abs(f_best) + 1e-12))
    theta = obj.natural(results[best][1])[0]
    return theta, f_best * delta, len(starts), share, results[best][2]


def fit(
    observations: Observations,
    law: str | Law = "overfit",
    *,
    law_options: Mapping[str, Any] | None = None,
    fixed: Mapping[str, float] | None = None,
    init: Mapping[str, float] | None = None,
    grid: str = "full",
    max_starts: int = 64,
    two_stage: bool = False,
    delta: float = 1e-3,
    drop_early_frac: float = 0.0,
    bootstrap: int = 0,
    seed: int = 0,
    agree_rtol: float = 1e-6,
    maxiter: int = 3000,
) -> FittedLaw:
    """Fit `law` to observations; returns a `FittedLaw`.

    fixed: parameters held at given values (e.g. published constants). init: one extra start.
    grid: "full" (Cartesian product of every axis' start values), "small" (middle values only) or
    "none" (only the `init` start);
    when the grid has more than `max_starts` points it is screened in one batched evaluation and
    L-BFGS-B starts from the best `max_starts`. two_stage: fit the base parameters on rows without
    repetition first (repetition effects switched off), then the repetition parameters on all rows.
    drop_early_frac: drop checkpoints before this fraction of their run's final `seen`.
    bootstrap: number of run-resampled refits for intervals (0 = none).
    """
    t0 = time.perf_counter()
    _check_fit_options(observations, grid, delta, max_starts)
    obs = _drop_early(observations, drop_early_frac)
    law_obj = get_law(law, **dict(law_options or {}))
    pools = tuple(obs.pools)
    specs = law_obj.param_specs(pools, obs)
    names = [s.name for s in specs]
    fixed = dict(fixed or {})
    init = dict(init or {})
    for k in list(fixed) + list(init):
        if k not in names:
            raise ValueError(f"law {law_obj.name!r} has no parameter {k!r}; parameters: {', '.join(names)}")
    data = LawData.from_observations(obs, pools)
    law_obj.check_data(data, obs.source)
    free = np.array([n not in fixed for n in names])
    if free.sum() == 0:
        raise ValueError("every parameter is fixed: nothing to fit")
    theta0 = np.array([fixed.get(s.name, s.grid[len(s.grid) // 2]) for s in specs], dtype=np.float64)
    for s, v in zip(specs, theta0):
        if not s.lower <= v <= s.upper:
            raise ValueError(f"parameter {s.name}={v} is outside its bounds [{s.lower}, {s.upper}]")
    stage = "joint"
    if two_stage:
        stage = "two_stage"
        theta0, free = _fit_base_first(law_obj, specs, obs, theta0, free, init, delta, grid, max_starts, agree_rtol,
                                       maxiter)
    theta, objective, n_starts, share, ok = _optimise(law_obj, specs, data, obs.value, theta0, free, delta, grid,
                                                      max_starts, _internal_starts(specs, theta0, init, free),
                                                      agree_rtol, maxiter)
    pred = law_obj.predict_batch(theta[None, :], data)[0]
    fitted = FittedLaw(
        law_name=law_obj.name, law_options=dict(law_obj.options), pools=pools,
        params={n: float(v) for n, v in zip(names, theta)}, fixed=tuple(sorted(fixed)), unit=obs.unit,
        objective=objective, delta=delta, n_obs=len(obs), n_runs=obs.n_runs, n_starts=n_starts,
        share_at_best=share, converged=ok, stage=stage, metrics=_metrics(pred, obs.value),
    )
    if n_starts >= 5 and share < 0.2:
        msg = f"only {share:.0%} of {n_starts} starts reached the best optimum; the fit may be fragile"
        fitted.notes.append(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    bounds_hit = [s.name for s, v, f in zip(specs, theta, np.array([n not in fixed for n in names]))
                  if f and (np.isclose(v, s.lower, rtol=1e-6, atol=0) or np.isclose(v, s.upper, rtol=1e-6, atol=0))]
    if bounds_hit:
        fitted.notes.append(f"at a bound: {', '.join(bounds_hit)}")
    if bootstrap:
        fitted = run_bootstrap(fitted, obs, n_boot=bootstrap, seed=seed, maxiter=maxiter)
    fitted.seconds = time.perf_counter() - t0
    return fitted


def _check_fit_options(observations: Observations, grid: str, delta: float, max_starts: int) -> None:
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
    if not delta > 0:
        raise ValueError("delta must be positive")
    if max_starts < 1:
        raise ValueError("max_starts must be at least 1")
    if len(observations) == 0:
        raise ValueError(f"{observations.source}: no observations to fit")
    observations.check_for_laws()
    if np.isnan(observations.value).any():
        raise ValueError(f"{observations.source}: every observation needs a measured value to be fitted")


def _internal_starts(specs: list[ParamSpec], theta: np.ndarray, values: Mapping[str, float],
                     mask: np.ndarray) -> list[np.ndarray]:
    """The user's start (`init`) in internal coordinates of the parameters in `mask`; others from `theta`."""
    if not values:
        return []
    z = [float(np.clip(s.to_internal(values.get(s.name, t)), *s.internal_bounds()))
         for s, t, f in zip(specs, theta, mask) if f]
    return [np.array(z)]


def _fit_base_first(law_obj: Law, specs: list[ParamSpec], obs: Observations, theta0: np.ndarray, free: np.ndarray,
                    init: Mapping[str, float], delta: float, grid: str, max_starts: int, agree_rtol: float,
                    maxiter: int) -> tuple[np.ndarray, np.ndarray]:
    """Stage one of a two-stage fit: base parameters on rows without repetition (repetition switched off).

    Returns the start values with the fitted base parameters in place, and the parameters left free
    for stage two (the repetition ones).
    """
    pools = tuple(obs.pools)
    rep = np.array([s.repetition for s in specs])
    no_rep = np.all(obs.epochs <= 1 + 1e-9, axis=1)
    stage1_free = free & ~rep
    if no_rep.sum() <= stage1_free.sum():
        raise ValueError(f"{obs.source}: two-stage fit needs more rows without repetition than base parameters "
                         f"({int(no_rep.sum())} rows for {int(stage1_free.sum())} parameters)")
    t1 = theta0.copy()
    for j, s in enumerate(specs):
        if rep[j] and free[j]:
            t1[j] = s.neutral if s.neutral is not None else t1[j]
    sub = obs.subset(no_rep)
    theta1, _, _, _, _ = _optimise(law_obj, specs, LawData.from_observations(sub, pools), sub.value, t1,
                                   stage1_free, delta, grid, max_starts, _internal_starts(specs, theta0, init, stage1_free),
                                   agree_rtol, maxiter)
    free = free & rep
    if free.sum() == 0:
        raise ValueError("two-stage fit: every repetition parameter is fixed")
    return np.where(stage1_free, theta1, theta0), free


def _drop_early(obs: Observations, frac: float) -> Observations:
    if not 0 <= frac < 1:
        raise ValueError("drop_early_frac must be in [0, 1)")
    if frac == 0:
        return obs
    runs = obs.run.astype(str)
    uniq, inv = np.unique(runs, return_inverse=True)
    last = np.zeros(len(uniq))
    np.maximum.at(last, inv, obs.seen)
    return obs.subset(obs.seen >= frac * last[inv])


def run_bootstrap(fitted: FittedLaw, observations: Observations, n_boot: int = 200, seed: int = 0,
                  maxiter: int = 3000) -> FittedLaw:
    """Refit on runs resampled with replacement (within each pool group); returns the fit with draws.

    Each replicate starts from the best fit, keeps fixed parameters fixed, and weights rows by how
    often their run was drawn.
    """
    if n_boot < 2:
        raise ValueError("n_boot must be at least 2")
    law = fitted.law
    pools = fitted.pools
    obs = observations
    specs = law.param_specs(pools, obs)
    data = LawData.from_observations(obs, pools)
    free = np.array([s.name not in fitted.fixed for s in specs])
    theta0 = fitted.theta
    runs = obs.run.astype(str)
    run_ids, inv = np.unique(runs, return_inverse=True)
    # Group runs by the pools they used, so every replicate keeps each pool's share of runs.
    first_row = np.zeros(len(run_ids), dtype=np.int64)
    first_row[inv[::-1]] = np.arange(len(runs))[::-1]
    signature = np.array(["|".join(np.asarray(pools)[obs.weights[i] > 0]) for i in first_row])
    groups = [np.flatnonzero(signature == s) for s in np.unique(signature)]
    rng = np.random.default_rng(seed)
    z0 = np.array([s.to_internal(v) for s, v, f in zip(specs, theta0, free) if f])
    bounds = [s.internal_bounds() for s, f in zip(specs, free) if f]
    z0 = np.clip(z0, [b[0] for b in bounds], [b[1] for b in bounds])
    draws = np.empty((n_boot, len(specs)))
    for r in range(n_boot):
        counts = np.zeros(len(run_ids))
        for g in groups:
            np.add.at(counts, rng.choice(g, size=len(g), replace=True), 1.0)
        row_w = counts[inv]
        obj = Objective(law, specs, data, obs.value, free, theta0, fitted.delta, row_w)
        res = _minimise(obj, z0, bounds, maxiter)
        draws[r] = obj.natural(res.x)[0]
    out = FittedLaw(**{**fitted.__dict__, "bootstrap": draws, "notes": list(fitted.notes)})
    return out
