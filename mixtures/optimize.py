"""Choose mixture weights: best predicted metric on the simplex under per-pool caps and a price budget.

Feasible set: p >= 0, sum(p) = 1, p_i <= cap_i (cap = available_i / N when counts are given),
and n * sum_i price_i p_i <= budget (without n, prices are per unit of weight). The set is
convex, so exact Euclidean projection (nested bisection on the KKT multipliers) turns any
smooth model into projected gradient ascent; several starts guard against local optima.
Models without a gradient (gbm) are optimised RegMix-style: score many sampled feasible
mixtures and average the best ones (the average of feasible points is feasible).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thresher.mixtures.feasible_mixtures import FeasibleMixtures


def _per_pool(values: Sequence[float] | Mapping[str, float] | np.ndarray | None, pools: Sequence[str], what: str,
              default: float) -> np.ndarray:
    m = len(pools)
    if values is None:
        return np.full(m, default, dtype=np.float64)
    if isinstance(values, Mapping):
        unknown = sorted(set(values) - set(pools))
        if unknown:
            raise ValueError(f"{what}: unknown pools {unknown}; pools are {list(pools)}")
        return np.array([float(values.get(name, default)) for name in pools])
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.shape != (m,):
        raise ValueError(f"{what}: {arr.size} values for {m} pools")
    return arr


@dataclass
class MixtureChoice:
    """The chosen mixture, its predicted metric with an interval, and the binding constraints."""

    pools: list[str]
    weights: np.ndarray
    predicted: float
    lower: float
    upper: float
    n: float | None
    cost: float | None
    goal: str
    method: str
    active: list[dict[str, Any]] = field(default_factory=list)
    runners_up: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def num(x: float | None) -> float | None:
            return None if x is None or not np.isfinite(x) else float(x)

        return {
            "pools": list(self.pools),
            "weights": {name: float(w) for name, w in zip(self.pools, self.weights)},
            "predicted": float(self.predicted),
            "interval": [num(self.lower), num(self.upper)],
            "n": num(self.n),
            "cost": num(self.cost),
            "goal": self.goal,
            "method": self.method,
            "active_constraints": self.active,
            "runners_up": self.runners_up,
        }


def _ascend(objective, feasible: FeasibleMixtures, start: np.ndarray, max_iter: int, tol: float,
            rel_tol: float = 1e-10) -> tuple[np.ndarray, float]:
    """Projected gradient ascent with Armijo backtracking; objective returns (value, gradient).

    Stops when a step moves no weight by more than `tol` or improves the value by less than
    `rel_tol` of itself.
    """
    p = feasible.project(start)
    f, g = objective(p)
    step = 0.1 / max(float(np.linalg.norm(g - g.mean())), 1e-12)
    for _ in range(max_iter):
        improved = False
        while step > 1e-14:
            q = feasible.project(p + step * g)
            fq, gq = objective(q)
            if fq >= f + 1e-4 * float(g @ (q - p)) and fq >= f:
                improved = fq - f > rel_tol * max(abs(f), 1e-12) and float(np.abs(q - p).max()) > tol
                p, f, g = q, fq, gq
                step *= 2.0
                break
            step *= 0.5
        if not improved:
            break
    return p, f


def _active_constraints(
    p: np.ndarray,
    grad: np.ndarray | None,
    feasible: FeasibleMixtures,
    pools: Sequence[str],
    tol: float = 1e-6,
) -> list[dict[str, Any]]:
    """Binding constraints with shadow prices from the KKT conditions at p (when a gradient exists).

    For maximising J: g_i = lam + mu * c_i + nu_i - kappa_i, with mu, nu, kappa >= 0. lam and mu
    come from least squares on the coordinates strictly inside their bounds.
    """
    at_zero = p <= tol
    at_cap = (p >= feasible.caps - tol) & (feasible.caps < 1.0)
    budget_active = feasible.costs is not None and feasible.costs @ p >= feasible.budget - tol * max(1.0, feasible.budget)
    lam = mu = None
    if grad is not None:
        free = ~at_zero & ~at_cap
        cols = [np.ones(int(free.sum()))]
        if budget_active:
            cols.append(feasible.costs[free])
        a = np.column_stack(cols)
        if free.sum() >= a.shape[1]:
            sol = np.linalg.lstsq(a, grad[free], rcond=None)[0]
            lam = float(sol[0])
            mu = float(sol[1]) if budget_active else 0.0
    out: list[dict[str, Any]] = []
    base = None if lam is None else lam + (mu or 0.0) * (feasible.costs if feasible.costs is not None else 0.0)
    if budget_active:
        out.append({
            "constraint": "budget",
            "limit": float(feasible.budget),
            "shadow_price": mu,
            "note": "objective gain per extra unit of money",
        })
    for i in np.flatnonzero(at_cap):
        out.append({
            "constraint": "cap",
            "pool": pools[i],
            "limit": float(feasible.caps[i]),
            "shadow_price": None if base is None else float(grad[i] - np.broadcast_to(base, p.shape)[i]),
            "note": "objective gain per unit of extra weight allowed",
        })
    for i in np.flatnonzero(at_zero):
        out.append({
            "constraint": "nonnegative",
            "pool": pools[i],
            "limit": 0.0,
            "shadow_price": None if base is None else float(np.broadcast_to(base, p.shape)[i] - grad[i]),
            "note": "objective loss per unit of weight forced onto this pool",
        })
    return out


def optimize_mixture(
    model,
    n: float | None = None,
    *,
    caps: Sequence[float] | Mapping[str, float] | None = None,
    available: Sequence[float] | Mapping[str, float] | None = None,
    prices: Sequence[float] | Mapping[str, float] | None = None,
    budget: float | None = None,
    goal: str | None = None,
    starts: int = 8,
    max_iter: int = 200,
    n_candidates: int = 20000,
    top_k: int = 128,
    level: float = 0.9,
    interval: str = "mean",
    seed: int = 0,
) -> MixtureChoice:
    """Best mixture for a fitted `PerformanceModel` at training size n.

    caps: maximum weight per pool; available: unique samples per pool (cap = available / n);
    prices: price per sample (per unit of weight when n is None); budget: money for the
    n * sum(price * p) samples. goal: "min"/"max", defaulting to the model's goal.
    interval: "mean" or "mixture" (see `PerformanceModel.predict_interval`).
    """
    pools = list(model.pools)
    goal = goal or model.goal
    if goal not in ("min", "max"):
        raise ValueError(f"goal must be 'min' or 'max', got {goal!r}")
    if starts < 1 or max_iter < 1:
        raise ValueError("starts and max_iter must be at least 1")
    feasible, costs = _feasible_set(pools, n, caps, available, prices, budget)
    sign = 1.0 if goal == "max" else -1.0
    rng = np.random.default_rng(seed)
    if model.has_gradient:
        best, grad, method, runners = _by_gradient(model, feasible, n, sign, starts, max_iter, rng)
    else:
        best, grad, method, runners = _by_search(model, feasible, n, sign, n_candidates, top_k, rng)
    best = np.clip(best, 0.0, None)
    mean, lo, hi = model.predict_interval(best[None, :], n, level=level, kind=interval)
    active = _active_constraints(best, grad, feasible, pools)
    return MixtureChoice(
        pools=pools,
        weights=best,
        predicted=float(mean[0]),
        lower=float(lo[0]),
        upper=float(hi[0]),
        n=None if n is None else float(n),
        cost=None if costs is None else float(costs @ best),
        goal=goal,
        method=method,
        active=active,
        runners_up=runners,
    )


PerPool = Sequence[float] | Mapping[str, float] | None


def _feasible_set(pools: list[str], n: float | None, caps: PerPool, available: PerPool, prices: PerPool,
                  budget: float | None) -> tuple[FeasibleMixtures, np.ndarray | None]:
    """The allowed mixtures (caps, availability, budget) and the cost of each pool's full weight."""
    cap = _per_pool(caps, pools, "caps", 1.0)
    if available is not None:
        if n is None:
            raise ValueError("available counts need the training size n (cap = available / n)")
        cap = np.minimum(cap, _per_pool(available, pools, "available", np.inf) / float(n))
    unit = float(n) if n is not None else 1.0
    costs = None
    if prices is not None or budget is not None:
        if prices is None or budget is None:
            raise ValueError("prices and budget go together: give both or neither")
        costs = _per_pool(prices, pools, "prices", 0.0) * unit
    return FeasibleMixtures(cap, costs, budget), costs


def _by_gradient(model, feasible: FeasibleMixtures, n: float | None, sign: float, starts: int, max_iter: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str, list[dict[str, Any]]]:
    """Projected gradient ascent from several starts (models with a gradient)."""
    pools = list(model.pools)
    m = len(pools)

    def objective(p: np.ndarray) -> tuple[float, np.ndarray]:
        v, g = model.value_and_gradient(p, n)
        return sign * v, sign * g

    inits = [np.full(m, 1.0 / m)]
    if m <= starts - 1:
        inits += list(np.eye(m))
    if not model.uses_ot:
        cand = feasible.sample(2000, rng)
        scores = sign * model.predict(cand, n)
        inits += list(cand[np.argsort(-scores)[: max(1, starts // 2)]])
    while len(inits) < starts:
        inits.append(rng.dirichlet(np.ones(m)))
    # Each OT evaluation is a transport solve: stop at weights good to 1e-6, far below any
    # difference a training run could resolve; closed-form models run until the weights move
    # less than 1e-10. (A value test would stop them early: near a smooth optimum the value
    # changes with the square of the distance, so 1e-10 of the value is 1e-5 of a weight.)
    tol, rel_tol = (1e-6, 1e-8) if model.uses_ot else (1e-10, 0.0)
    results = [_ascend(objective, feasible, s, max_iter, tol, rel_tol) for s in inits[:max(starts, len(inits))]]
    results.sort(key=lambda r: -r[1])
    best = results[0][0]
    runners = [{"weights": {k: float(w) for k, w in zip(pools, r[0])}, "predicted": float(sign * r[1])}
               for r in results[1:4]]
    return best, sign * model.gradient(best, n), f"projected gradient, {len(results)} starts", runners


def _by_search(model, feasible: FeasibleMixtures, n: float | None, sign: float, n_candidates: int, top_k: int,
               rng: np.random.Generator) -> tuple[np.ndarray, None, str, list[dict[str, Any]]]:
    """The mean of the best sampled mixtures, projected back (models without a gradient, such as gbm)."""
    pools = list(model.pools)
    cand = feasible.sample(n_candidates, rng)
    scores = sign * model.predict(cand, n)
    order = np.argsort(-scores)
    k = max(1, min(top_k, cand.shape[0]))
    best = feasible.project(cand[order[:k]].mean(axis=0))
    runners = [{"weights": {kk: float(w) for kk, w in zip(pools, cand[i])}, "predicted": float(sign * scores[i])}
               for i in order[:3]]
    return best, None, f"search: mean of the top {k} of {cand.shape[0]} sampled mixtures", runners
