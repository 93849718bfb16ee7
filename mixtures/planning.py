"""Curation plans: which pools to train on, with what weights and how many epochs, for a budget.

A plan spends the whole budget (samples or tokens seen) on a mixture of pools. A pool's weight w
sets how much of the budget it gets; its epochs are w * budget / unique, which may exceed 1 (the
pool is repeated), but the distinct data drawn from a pool, min(w * budget, unique), never
exceeds what the pool holds. The search follows the quality-quantity tradeoff: first the nested
unions of the best pools (top-1, top-1+2, ...; a union is sampled uniformly, so weights follow
pool sizes), then the weight simplex from those starts, then the epoch breakpoints where the
law's kinks sit (a pool's epochs at a whole number).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.optimize import minimize

from thresher.mixtures.fitted_law import FittedLaw

PLAN_FORMAT = "thresher.plan/1"
POOLS_FORMAT = "thresher.pools/1"
_WEIGHT_FLOOR = 1e-4  # weights below this are dropped from a plan


@dataclass(frozen=True)
class Pool:
    """A pool on offer: its name (as in the fit), unique size, and optionally documents and cost."""

    name: str
    unique: float
    documents: int | None = None
    cost: float | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a pool needs a name")
        if not (np.isfinite(self.unique) and self.unique > 0):
            raise ValueError(f"pool {self.name!r}: unique size must be positive, got {self.unique!r}")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "unique": self.unique}
        if self.documents is not None:
            d["documents"] = self.documents
        if self.cost is not None:
            d["cost"] = self.cost
        return d


def pools_from_dict(d: Mapping[str, Any], source: str = "pools") -> tuple[list[Pool], str]:
    """Parse the pools.json structure -> (pools, unit)."""
    if not isinstance(d, Mapping) or not isinstance(d.get("pools"), list):
        raise ValueError(f"{source}: expected an object with a \"pools\" list")
    unit = d.get("unit", "tokens")
    if unit not in ("tokens", "samples"):
        raise ValueError(f"{source}: unit must be \"tokens\" or \"samples\", got {unit!r}")
    pools, seen = [], set()
    for i, p in enumerate(d["pools"]):
        where = f"{source}: pools[{i}]"
        if not isinstance(p, Mapping):
            raise ValueError(f"{where}: expected an object with name and unique")
        for key in ("name", "unique"):
            if key not in p:
                raise ValueError(f"{where}: missing {key!r}")
        try:
            pool = Pool(name=str(p["name"]), unique=float(p["unique"]),
                        documents=None if p.get("documents") is None else int(p["documents"]),
                        cost=None if p.get("cost") is None else float(p["cost"]))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from exc
        if pool.name in seen:
            raise ValueError(f"{where}: duplicate pool name {pool.name!r}")
        seen.add(pool.name)
        pools.append(pool)
    if not pools:
        raise ValueError(f"{source}: no pools listed")
    return pools, unit


def load_pools(path: str | Path) -> tuple[list[Pool], str]:
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such pools file")
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from exc
    return pools_from_dict(d, str(path))


def pools_to_dict(pools: Sequence[Pool], unit: str = "tokens") -> dict[str, Any]:
    return {"format": POOLS_FORMAT, "unit": unit, "pools": [p.to_dict() for p in pools]}


@dataclass
class Plan:
    """The chosen mixture for one budget, with its prediction, interval and runner-ups."""

    budget: float
    unit: str
    pools: list[Pool]
    weights: np.ndarray
    predicted: float
    label: str
    params: float | None = None
    interval: tuple[float, float] | None = None
    level: float = 0.9
    stability: float | None = None
    runner_ups: list[dict[str, Any]] = field(default_factory=list)
    candidates: int = 0
    law: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs(self) -> np.ndarray:
        return self.weights * self.budget / np.array([p.unique for p in self.pools])

    @property
    def seen_per_pool(self) -> np.ndarray:
        return self.weights * self.budget

    @property
    def unique_used(self) -> np.ndarray:
        return np.minimum(self.seen_per_pool, [p.unique for p in self.pools])

    def pool_rows(self) -> list[dict[str, Any]]:
        return [
            {**p.to_dict(), "weight": float(w), "epochs": float(e), "seen": float(s), "unique_used": float(u)}
            for p, w, e, s, u in zip(self.pools, self.weights, self.epochs, self.seen_per_pool, self.unique_used)
            if w > 0
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "budget": self.budget,
            "unit": self.unit,
            "params": self.params,
            "compute_flops": None if self.params is None else 6.0 * self.params * self.budget,
            "pools": self.pool_rows(),
            "label": self.label,
            "predicted": {
                "value": self.predicted,
                "low": None if self.interval is None else self.interval[0],
                "high": None if self.interval is None else self.interval[1],
                "level": self.level if self.interval is not None else None,
            },
            "stability": self.stability,
            "runner_ups": self.runner_ups,
            "candidates_evaluated": self.candidates,
            "law": self.law,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


class _Evaluator:
    """Predicted value of many weight vectors at one budget, aligned to the fit's pools."""

    def __init__(self, fitted: FittedLaw, pools: Sequence[Pool], budget: float, params: float | None) -> None:
        unknown = [p.name for p in pools if p.name not in fitted.pools]
        if unknown:
            raise ValueError(f"pools {unknown} are not in the fit (fitted pools: {list(fitted.pools)}); "
                             "fit the law on pilot runs of every pool you want to plan over")
        if fitted.law.needs_params and params is None:
            raise ValueError(f"law {fitted.law_name!r} needs the model size: pass params (model parameters)")
        self.fitted = fitted
        self.budget = float(budget)
        self.params = params
        self.index = np.array([fitted.pools.index(p.name) for p in pools])
        self.unique = np.array([p.unique for p in pools], dtype=np.float64)
        self.full_unique = np.ones(len(fitted.pools))
        self.full_unique[self.index] = self.unique

    def _arrays(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        w = np.atleast_2d(w)
        full = np.zeros((w.shape[0], len(self.fitted.pools)))
        full[:, self.index] = w
        return full, np.broadcast_to(self.full_unique, full.shape), np.full(w.shape[0], self.budget)

    def __call__(self, w: np.ndarray) -> np.ndarray:
        full, unique, seen = self._arrays(w)
        out = self.fitted.predict_arrays(full, unique, seen, self.params)
        return np.where(np.isfinite(out), out, np.inf)

    def samples(self, w: np.ndarray) -> np.ndarray:
        """(n_boot, c) predictions under bootstrap draws."""
        full, unique, seen = self._arrays(w)
        return self.fitted.predict_arrays(full, unique, seen, self.params, samples=True)[1:]


def _normalise(w: np.ndarray) -> np.ndarray:
    w = np.where(w < _WEIGHT_FLOOR, 0.0, w)
    return w / w.sum()


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _epoch_cap_ok(w: np.ndarray, ev: _Evaluator, max_epochs: float | None) -> np.ndarray:
    if max_epochs is None:
        return np.ones(np.atleast_2d(w).shape[0], bool)
    return np.all(np.atleast_2d(w) * ev.budget / ev.unique <= max_epochs * (1 + 1e-9), axis=1)


def _rank_pools(ev: _Evaluator) -> np.ndarray:
    """Pool order, best first: each pool alone for as much as it holds (no repetition), capped by budget."""
    n0 = min(ev.budget, float(ev.unique.min()))
    eye = np.eye(len(ev.unique))
    full, unique, _ = ev._arrays(eye)
    vals = ev.fitted.predict_arrays(full, unique, np.full(len(eye), n0), ev.params)
    return np.argsort(np.where(np.isfinite(vals), vals, np.inf), kind="stable")


def _simplex_search(ev: _Evaluator, starts: list[np.ndarray], max_epochs: float | None) -> list[np.ndarray]:
    """Local searches over softmax(z) from each start; returns the end points."""
    k = len(ev.unique)
    h = 1e-5

    def objective(z: np.ndarray) -> tuple[float, np.ndarray]:
        pts = np.repeat(z[None, :], 2 * k + 1, axis=0)
        idx = np.arange(k)
        pts[1 + idx, idx] += h
        pts[1 + k + idx, idx] -= h
        w = _softmax(pts)
        f = ev(w)
        if max_epochs is not None:  # smooth price for breaking the epoch cap keeps the search inside
            excess = np.maximum(w * ev.budget / ev.unique - max_epochs, 0.0)
            f = f + 10.0 * np.abs(f) * excess.sum(axis=1)
        g = (f[1 : 1 + k] - f[1 + k :]) / (2 * h)
        return float(f[0]), np.where(np.isfinite(g), g, 0.0)

    ends = []
    for w0 in starts:
        z0 = np.log(np.maximum(w0, 1e-6))
        res = minimize(objective, z0, jac=True, method="L-BFGS-B", bounds=[(-20.0, 20.0)] * k,
                       options={"maxiter": 300})
        ends.append(_normalise(_softmax(res.x)))
    return ends


def _breakpoints(w: np.ndarray, ev: _Evaluator) -> list[np.ndarray]:
    """Move each pool's epochs to the neighbouring whole numbers, rescaling the others."""
    out = []
    epochs = w * ev.budget / ev.unique
    for i in np.flatnonzero(w > 0):
        for e in {np.floor(epochs[i]), np.ceil(epochs[i])}:
            if e < 1:
                continue
            wi = e * ev.unique[i] / ev.budget
            if not 0 < wi < 1:
                continue
            rest = w.copy()
            rest[i] = 0.0
            if rest.sum() <= 0:
                continue
            cand = rest * (1 - wi) / rest.sum()
            cand[i] = wi
            out.append(cand)
    return out


def _law_record(fitted: FittedLaw, fit_path: str | None) -> dict[str, Any]:
    rec: dict[str, Any] = {"name": fitted.law_name, "options": fitted.law_options, "fit_sha256": fitted.sha256()}
    if fit_path == "":  # recorded elsewhere
        return rec
    if fit_path is not None:
        rec["fit_path"] = fit_path
    else:
        rec["fit"] = fitted.to_dict()
    return rec


def plan(
    fitted: FittedLaw,
    pools: Sequence[Pool],
    budget: float,
    *,
    params: float | None = None,
    max_epochs: float | None = None,
    unit: str | None = None,
    level: float = 0.9,
    n_runner_ups: int = 3,
    simplex_starts: int = 6,
    seed: int = 0,
    fit_path: str | None = None,
    starts: Sequence[Mapping[str, float]] = (),
) -> Plan:
    """The best plan for `budget` (seen, in the fit's unit) over `pools`, with runner-ups.

    params: model size, required by laws with a model-size term. max_epochs: optional cap on any
    pool's epochs. fit_path: record this path (plus the fit's hash) instead of embedding the fit.
    starts: extra candidate mixtures ({pool name: weight}) to evaluate and search from.
    """
    budget = float(budget)
    if not (np.isfinite(budget) and budget > 0):
        raise ValueError(f"budget must be a positive number, got {budget!r}")
    if not pools:
        raise ValueError("no pools to plan over")
    names = [p.name for p in pools]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate pool names in {names}")
    if max_epochs is not None and not max_epochs > 0:
        raise ValueError("max_epochs must be positive")
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    ev = _Evaluator(fitted, pools, budget, params)
    k = len(pools)
    order = _rank_pools(ev)
    cands: list[tuple[str, np.ndarray]] = []
    for top in range(1, k + 1):
        w = np.zeros(k)
        w[order[:top]] = ev.unique[order[:top]]
        cands.append((f"top-{top} union" if top > 1 else f"top-1 ({names[order[0]]})", w / w.sum()))
    for i in order[1:]:
        cands.append((f"only {names[i]}", np.eye(k)[i]))
    for j, st in enumerate(starts):
        w = np.array([float(st.get(n, 0.0)) for n in names])
        if not (np.all(w >= 0) and w.sum() > 0):
            raise ValueError(f"start {j}: weights must be non-negative with a positive sum")
        cands.append(("given start", w / w.sum()))
    if max_epochs is not None:
        # Unions ignore the cap; give the simplex a feasible start: fill pools up to the cap in rank order.
        w, left = np.zeros(k), budget
        for i in order:
            take = min(left, max_epochs * ev.unique[i])
            w[i], left = take, left - take
        if left > 0:
            raise ValueError(f"budget {budget:g} exceeds what the pools can supply at {max_epochs} epochs each "
                             f"({max_epochs * ev.unique.sum():g})")
        cands.append(("epoch-capped fill", w / budget))
    base = [w for _, w in cands]
    values = ev(np.array(base))
    if k > 1:
        rng = np.random.default_rng(seed)
        starts = [base[i] for i in np.argsort(values)[: max(1, simplex_starts // 2)]]
        starts += list(rng.dirichlet(np.ones(k), size=max(0, simplex_starts - len(starts))))
        for w in _simplex_search(ev, starts, max_epochs):
            cands.append(("simplex", w))
        best_w = min(cands[len(base):], key=lambda c: float(ev(c[1])[0]))[1]
        for w in _breakpoints(best_w, ev):
            cands.append(("epoch breakpoint", _normalise(w)))
    W = np.array([w for _, w in cands])
    labels = [lab for lab, _ in cands]
    vals = ev(W)
    feasible = _epoch_cap_ok(W, ev, max_epochs) & np.isfinite(vals)
    if not feasible.any():
        raise ValueError("no feasible plan: every candidate breaks the epoch cap or has no finite prediction")
    rank = [i for i in np.argsort(np.where(feasible, vals, np.inf), kind="stable") if feasible[i]]
    chosen: list[int] = []
    for i in rank:  # distinct plans only
        if all(np.abs(W[i] - W[j]).sum() > 1e-2 for j in chosen):
            chosen.append(i)
        if len(chosen) > n_runner_ups:
            break
    best = chosen[0]
    interval = stability = None
    if fitted.bootstrap is not None:
        s = ev.samples(W)
        q = (1 - level) / 2
        col = s[:, best]
        col = col[np.isfinite(col)]
        if len(col):
            interval = (float(np.quantile(col, q)), float(np.quantile(col, 1 - q)))
        s = np.where(np.isfinite(s) & feasible[None, :], s, np.inf)
        picks = np.argmin(s, axis=1)
        stability = float(np.mean(np.abs(W[picks] - W[best][None, :]).sum(axis=1) <= 1e-3))
    out = Plan(budget=budget, unit=unit or fitted.unit, pools=list(pools), weights=W[best], predicted=float(vals[best]),
               label=labels[best], params=params, interval=interval, level=level, stability=stability,
               candidates=len(W), law=_law_record(fitted, fit_path))
    for i in chosen[1:]:
        ep = W[i] * budget / ev.unique
        out.runner_ups.append({
            "label": labels[i],
            "predicted": float(vals[i]),
            "pools": [{"name": names[j], "weight": float(W[i, j]), "epochs": float(ep[j])} for j in range(k) if W[i, j] > 0],
        })
    return out


@dataclass
class Frontier:
    """Best plan per budget, plus every nested union's predicted value (the QQT picture)."""

    budgets: np.ndarray
    plans: list[Plan]
    unions: dict[str, np.ndarray]  # label -> predicted value per budget
    law: dict[str, Any] = field(default_factory=dict)

    def flips(self) -> list[dict[str, Any]]:
        """Budgets where the best nested union changes."""
        labels = list(self.unions)
        best = np.argmin(np.array([self.unions[k] for k in labels]), axis=0)
        return [{"budget": float(self.budgets[i]), "from": labels[best[i - 1]], "to": labels[best[i]]}
                for i in range(1, len(best)) if best[i] != best[i - 1]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "thresher.frontier/1",
            "budgets": self.budgets.tolist(),
            "plans": [p.to_dict() for p in self.plans],
            "unions": {k: v.tolist() for k, v in self.unions.items()},
            "flips": self.flips(),
            "law": self.law,
        }


def union_values(fitted: FittedLaw, pools: Sequence[Pool], budgets: Sequence[float], params: float | None = None,
                 order: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Predicted value of every nested top-k union at each budget (order: by single-pool quality)."""
    budgets = np.asarray(budgets, dtype=np.float64)
    ev = _Evaluator(fitted, pools, float(budgets.min()), params)
    names = [p.name for p in pools]
    idx = [names.index(n) for n in order] if order is not None else list(_rank_pools(ev))
    out: dict[str, np.ndarray] = {}
    for top in range(1, len(pools) + 1):
        w = np.zeros(len(pools))
        w[idx[:top]] = ev.unique[idx[:top]]
        label = "+".join(names[i] for i in idx[:top])
        full, unique, _ = ev._arrays(np.repeat((w / w.sum())[None, :], len(budgets), axis=0))
        out[label] = fitted.predict_arrays(full, unique, budgets, params)
    return out


def frontier(fitted: FittedLaw, pools: Sequence[Pool], budgets: Sequence[float], *, params: float | None = None,
             max_epochs: float | None = None, level: float = 0.9, fit_path: str | None = None) -> Frontier:
    """Best plan for each budget (the Pareto curve of value against budget)."""
    budgets = np.sort(np.asarray(budgets, dtype=np.float64))
    if len(budgets) == 0 or not np.all(np.isfinite(budgets) & (budgets > 0)):
        raise ValueError("budgets must be positive numbers")
    plans = [plan(fitted, pools, b, params=params, max_epochs=max_epochs, level=level, n_runner_ups=1,
                  fit_path=fit_path or "") for b in budgets]
    for p in plans:  # the law is recorded once, on the frontier
        p.law = {}
    return Frontier(budgets=budgets, plans=plans, unions=union_values(fitted, pools, budgets, params),
                    law=_law_record(fitted, fit_path))


def marginal_value(fitted: FittedLaw, pools: Sequence[Pool], candidate: Pool, budget: float, *,
                   params: float | None = None, cost: float | None = None, level: float = 0.9) -> dict[str, Any]:
    """Predicted gain from adding `candidate` to `pools`: best plan without it minus best plan with it.

    Positive gain = lower predicted loss or error. With a cost (argument or `candidate.cost`), also
    the gain per unit cost. Bootstrap draws of the fit give an interval for the gain (both plans held).
    """
    if candidate.name in [p.name for p in pools]:
        raise ValueError(f"candidate {candidate.name!r} is already among the pools")
    without = plan(fitted, pools, budget, params=params, n_runner_ups=0, level=level)
    with_c = plan(fitted, list(pools) + [candidate], budget, params=params, n_runner_ups=0, level=level,
                  starts=[{p.name: float(w) for p, w in zip(pools, without.weights)}])
    gain = without.predicted - with_c.predicted
    out: dict[str, Any] = {
        "candidate": candidate.to_dict(),
        "budget": float(budget),
        "value_without": without.predicted,
        "value_with": with_c.predicted,
        "gain": float(gain),
        "gain_interval": None,
        "candidate_weight": float(with_c.weights[-1]),
        "plan_with": with_c.pool_rows(),
    }
    if fitted.bootstrap is not None:
        ev0 = _Evaluator(fitted, pools, budget, params)
        ev1 = _Evaluator(fitted, list(pools) + [candidate], budget, params)
        g = ev0.samples(without.weights)[:, 0] - ev1.samples(with_c.weights)[:, 0]
        g = g[np.isfinite(g)]
        q = (1 - level) / 2
        if len(g):
            out["gain_interval"] = [float(np.quantile(g, q)), float(np.quantile(g, 1 - q))]
    c = cost if cost is not None else candidate.cost
    if c is not None:
        if not c > 0:
            raise ValueError("cost must be positive")
        out["cost"] = float(c)
        out["gain_per_cost"] = float(gain / c)
    return out
