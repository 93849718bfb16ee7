"""Curation plans: which pools to train on, with what weights and how many epochs, for a budget.

A plan spends the whole budget (samples or tokens seen) on a mixture of pools. A pool's weight w
sets how much of the budget it gets; its epochs are w * budget / unique, which may exceed 1 (the
pool is repeated), but the distinct data drawn from a pool, min(w * budget, unique), never
exceeds what the pool holds. The search follows the quality-quantity tradeoff: first the nested
unions of the best pools (top-1, top-1+2, ...; a union is sampled uniformly, so weights follow
pool sizes), then the weight simplex from those starts, then the epoch breakpoints where the
law's kinks sit (a pool's epochs at a whole number); the search itself is `plan_search`.

Plans and frontiers are data: `to_dict` gives what `thresher.pipeline.plans` writes as
plan.json and frontier.json, and pools come in already read (`pools_from_dict`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thresher.mixtures.fitted_law import FittedLaw
from thresher.mixtures.plan_search import Evaluator, candidates, epoch_cap_ok, rank_pools


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


def pools_from_dict(d: Mapping[str, Any]) -> tuple[list[Pool], str]:
    """(pools, unit) from a pools.json structure, as `thresher.pipeline.pools.load_pools_json` reads and checks it."""
    pools = [Pool(name=str(p["name"]), unique=float(p["unique"]),
                  documents=None if p.get("documents") is None else int(p["documents"]),
                  cost=None if p.get("cost") is None else float(p["cost"]))
             for p in d["pools"]]
    return pools, d.get("unit", "tokens")


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
        """The plan as data; `thresher.pipeline.plans.write_plan` writes it as plan.json."""
        return {
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
    _check_plan_args(budget, pools, max_epochs, level)
    names = [p.name for p in pools]
    k = len(pools)
    ev = Evaluator(fitted, pools, budget, params)
    cands = candidates(ev, names, starts, max_epochs, simplex_starts, seed)
    W = np.array([w for _, w in cands])
    labels = [lab for lab, _ in cands]
    vals = ev(W)
    feasible = epoch_cap_ok(W, ev, max_epochs) & np.isfinite(vals)
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
        interval, stability = _bootstrap_spread(ev, W, feasible, best, level)
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


def _check_plan_args(budget: float, pools: Sequence[Pool], max_epochs: float | None, level: float) -> None:
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


def _bootstrap_spread(ev: Evaluator, W: np.ndarray, feasible: np.ndarray, best: int,
                      level: float) -> tuple[tuple[float, float] | None, float]:
    """The best plan's interval over bootstrap draws, and how often a draw picks the same plan."""
    interval = None
    s = ev.samples(W)
    q = (1 - level) / 2
    col = s[:, best]
    col = col[np.isfinite(col)]
    if len(col):
        interval = (float(np.quantile(col, q)), float(np.quantile(col, 1 - q)))
    s = np.where(np.isfinite(s) & feasible[None, :], s, np.inf)
    picks = np.argmin(s, axis=1)
    return interval, float(np.mean(np.abs(W[picks] - W[best][None, :]).sum(axis=1) <= 1e-3))


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
        """The frontier as data; `thresher.pipeline.plans.write_frontier` writes it as frontier.json."""
        return {
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
    ev = Evaluator(fitted, pools, float(budgets.min()), params)
    names = [p.name for p in pools]
    idx = [names.index(n) for n in order] if order is not None else list(rank_pools(ev))
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
        ev0 = Evaluator(fitted, pools, budget, params)
        ev1 = Evaluator(fitted, list(pools) + [candidate], budget, params)
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
