"""Choose mixture weights: best predicted metric on the simplex under per-pool caps and a price budget.

Feasible set: p >= 0, sum(p) = 1, p_i <= cap_i (cap = available_i / N when counts are given),
and n * sum_i price_i p_i <= budget (without n, prices are per unit of weight). The set is
convex, so exact Euclidean projection (nested bisection on the KKT multipliers) turns any
smooth model into projected gradient ascent; several starts guard against local optima.
Models without a gradient (gbm) are optimised RegMix-style: score many sampled feasible
mixtures and average the best ones (the average of feasible points is feasible).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

_BISECT = 60


def _per_pool(values: Sequence[float] | Mapping[str, float] | np.ndarray | None, pools: Sequence[str], what: str, default: float) -> np.ndarray:
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


def _box_sum_projection(z: np.ndarray, caps: np.ndarray, total: float) -> np.ndarray:
    """Rows of z projected onto {0 <= p <= caps, sum p = total}: p = clip(z - t, 0, caps).

    sum(clip(z - t, 0, caps)) is piecewise linear and nonincreasing in t with breakpoints
    z_i and z_i - cap_i, so the shift t is found exactly by evaluating it at the sorted
    breakpoints and interpolating inside the bracketing segment.
    """
    z = z - z.mean(axis=1, keepdims=True)  # the shift absorbs constants: keep magnitudes small
    k, m = z.shape
    bps = np.sort(np.concatenate([z, z - caps], axis=1), axis=1)  # (k, 2m)
    sums = np.clip(z[:, None, :] - bps[:, :, None], 0.0, caps).sum(axis=2)  # nonincreasing
    # First breakpoint whose sum is <= total; the shift lies between it and the one before.
    j = np.argmax(sums <= total, axis=1)
    j = np.clip(j, 1, 2 * m - 1)
    rows = np.arange(k)
    t0, t1 = bps[rows, j - 1], bps[rows, j]
    s0, s1 = sums[rows, j - 1], sums[rows, j]
    frac = np.where(s0 - s1 > 0, (s0 - total) / np.where(s0 - s1 > 0, s0 - s1, 1.0), 0.0)
    t = t0 + np.clip(frac, 0.0, 1.0) * (t1 - t0)
    p = np.clip(z - t[:, None], 0.0, caps)
    # Put the last rounding error of the sum on the coordinates strictly inside their box.
    free = (p > 0) & (p < caps)
    nfree = free.sum(axis=1)
    resid = total - p.sum(axis=1)
    fix = np.where(nfree > 0, resid / np.maximum(nfree, 1), 0.0)
    return np.clip(p + free * fix[:, None], 0.0, caps)


class FeasibleMixtures:
    """{p : p >= 0, sum p = 1, p <= caps, costs @ p <= budget} with exact projection."""

    def __init__(self, caps: np.ndarray, costs: np.ndarray | None = None, budget: float | None = None) -> None:
        self.caps = np.minimum(np.asarray(caps, dtype=np.float64), 1.0)
        m = self.caps.size
        if not np.all(np.isfinite(self.caps)) or (self.caps < 0).any():
            raise ValueError("caps must be finite and nonnegative")
        if self.caps.sum() < 1.0 - 1e-12:
            raise ValueError(f"infeasible: the caps sum to {self.caps.sum():.6g} < 1, so no mixture fits; raise caps or add pools")
        self.costs = None if costs is None else np.asarray(costs, dtype=np.float64)
        self.budget = None if budget is None else float(budget)
        if (self.costs is None) != (self.budget is None):
            raise ValueError("prices and budget go together: give both or neither")
        if self.costs is not None:
            if self.costs.shape != (m,) or not np.all(np.isfinite(self.costs)) or (self.costs < 0).any():
                raise ValueError("prices must be finite and nonnegative, one per pool")
            cheapest = self.min_cost()
            if cheapest > self.budget * (1 + 1e-12) + 1e-12:
                raise ValueError(
                    f"infeasible: the cheapest mixture within the caps costs {cheapest:.6g} > budget {self.budget:.6g}"
                )

    @property
    def n_pools(self) -> int:
        return self.caps.size

    def min_cost(self) -> float:
        """Cost of the cheapest feasible mixture: fill the cheapest pools up to their caps."""
        order = np.argsort(self.costs, kind="stable")
        left, total = 1.0, 0.0
        for i in order:
            take = min(self.caps[i], left)
            total += take * self.costs[i]
            left -= take
            if left <= 0:
                break
        return total

    def contains(self, p: np.ndarray, tol: float = 1e-9) -> bool:
        p = np.asarray(p, dtype=np.float64)
        ok = (p >= -tol).all() and abs(p.sum() - 1.0) <= tol and (p <= self.caps + tol).all()
        if self.costs is not None:
            ok = ok and self.costs @ p <= self.budget + tol * max(1.0, abs(self.budget))
        return bool(ok)

    def _simplex_box(self, z: np.ndarray) -> np.ndarray:
        return _box_sum_projection(z, self.caps, 1.0)

    def _budget_is_tight(self) -> bool:
        return self.budget <= self.min_cost() + 1e-12 * max(1.0, abs(self.budget))

    def _cheapest_face(self, y: np.ndarray) -> np.ndarray:
        """Projection when the budget only admits the cheapest mixtures.

        Then every pool cheaper than the marginal price sits at its cap, every dearer pool at
        zero, and only the pools at the marginal price share the remaining mass; the Lagrange
        multiplier of the budget is infinite there, so the general search cannot reach it.
        """
        order = np.argsort(self.costs, kind="stable")
        left = 1.0
        fixed = np.zeros(self.n_pools)
        marginal_price = self.costs[order[-1]]
        for i in order:
            if left <= self.caps[i]:
                marginal_price = self.costs[i]
                break
            left -= self.caps[i]
        cheaper = self.costs < marginal_price
        at_margin = self.costs == marginal_price
        fixed[cheaper] = self.caps[cheaper]
        rest = max(0.0, 1.0 - fixed.sum())
        out = np.repeat(fixed[None, :], y.shape[0], axis=0)
        if rest > 0:
            out[:, at_margin] = _box_sum_projection(y[:, at_margin], self.caps[at_margin], rest)
        return out

    def project(self, y: np.ndarray) -> np.ndarray:
        """Euclidean projection of each row of y (or one vector) onto the feasible set."""
        y = np.asarray(y, dtype=np.float64)
        single = y.ndim == 1
        y2 = np.atleast_2d(y)
        p = self._simplex_box(y2)
        if self.costs is not None:
            over = p @ self.costs > self.budget
            if over.any() and self._budget_is_tight():
                p[over] = self._cheapest_face(y2[over])
            elif over.any():
                yo = y2[over]
                mu_lo = np.zeros(yo.shape[0])
                mu_hi = np.ones(yo.shape[0])
                for _ in range(200):
                    bad = self._simplex_box(yo - mu_hi[:, None] * self.costs) @ self.costs > self.budget
                    if not bad.any():
                        break
                    mu_hi = np.where(bad, mu_hi * 4.0, mu_hi)
                for _ in range(_BISECT):
                    mid = 0.5 * (mu_lo + mu_hi)
                    bad = self._simplex_box(yo - mid[:, None] * self.costs) @ self.costs > self.budget
                    mu_lo = np.where(bad, mid, mu_lo)
                    mu_hi = np.where(bad, mu_hi, mid)
                po = self._simplex_box(yo - mu_hi[:, None] * self.costs)
                # A multiplier too large for float64 to resolve: the face of cheapest mixtures.
                lost = po @ self.costs > self.budget + 1e-12 * max(1.0, abs(self.budget))
                po[lost] = self._cheapest_face(yo[lost])
                p[over] = po
        return p[0] if single else p

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Feasible mixtures from Dirichlet draws of mixed concentration, projected."""
        m = self.n_pools
        conc = rng.choice([0.1, 0.3, 1.0, 3.0], size=count)
        draws = rng.gamma(np.repeat(conc[:, None], m, axis=1))
        draws /= np.maximum(draws.sum(axis=1, keepdims=True), 1e-300)
        draws = np.nan_to_num(draws, nan=1.0 / m)
        return self.project(draws)


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
    m = len(pools)
    goal = goal or model.goal
    if goal not in ("min", "max"):
        raise ValueError(f"goal must be 'min' or 'max', got {goal!r}")
    if starts < 1 or max_iter < 1:
        raise ValueError("starts and max_iter must be at least 1")
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
    feasible = FeasibleMixtures(cap, costs, budget)
    sign = 1.0 if goal == "max" else -1.0
    rng = np.random.default_rng(seed)

    if model.has_gradient:
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
        # difference a training run could resolve; closed-form models run to 1e-10.
        tol, rel_tol = (1e-6, 1e-8) if model.uses_ot else (1e-10, 1e-10)
        results = [_ascend(objective, feasible, s, max_iter, tol, rel_tol) for s in inits[:max(starts, len(inits))]]
        results.sort(key=lambda r: -r[1])
        best = results[0][0]
        grad = sign * model.gradient(best, n)
        method = f"projected gradient, {len(results)} starts"
        runners = [
            {"weights": {k: float(w) for k, w in zip(pools, r[0])}, "predicted": float(sign * r[1])}
            for r in results[1:4]
        ]
    else:
        cand = feasible.sample(n_candidates, rng)
        scores = sign * model.predict(cand, n)
        order = np.argsort(-scores)
        k = max(1, min(top_k, cand.shape[0]))
        best = feasible.project(cand[order[:k]].mean(axis=0))
        grad = None
        method = f"search: mean of the top {k} of {cand.shape[0]} sampled mixtures"
        runners = [
            {"weights": {kk: float(w) for kk, w in zip(pools, cand[i])}, "predicted": float(sign * scores[i])}
            for i in order[:3]
        ]
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
