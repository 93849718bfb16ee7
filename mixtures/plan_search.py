"""The plan search: predicted values of many mixtures at one budget, and the candidates tried.

Candidates follow the quality-quantity tradeoff: the nested unions of the best pools, each pool
alone, given starts, an epoch-capped fill, local searches over the weight simplex from the best
of those, and the epoch breakpoints around the search's best (see `thresher.mixtures.planning`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import minimize

from thresher.mixtures.fitted_law import FittedLaw

if TYPE_CHECKING:
    from thresher.mixtures.planning import Pool

WEIGHT_FLOOR = 1e-4  # weights below this are dropped from a plan


class Evaluator:
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


def normalise(w: np.ndarray) -> np.ndarray:
    w = np.where(w < WEIGHT_FLOOR, 0.0, w)
    return w / w.sum()


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def epoch_cap_ok(w: np.ndarray, ev: Evaluator, max_epochs: float | None) -> np.ndarray:
    if max_epochs is None:
        return np.ones(np.atleast_2d(w).shape[0], bool)
    return np.all(np.atleast_2d(w) * ev.budget / ev.unique <= max_epochs * (1 + 1e-9), axis=1)


def rank_pools(ev: Evaluator) -> np.ndarray:
    """Pool order, best first: each pool alone for as much as it holds (no repetition), capped by budget."""
    n0 = min(ev.budget, float(ev.unique.min()))
    eye = np.eye(len(ev.unique))
    full, unique, _ = ev._arrays(eye)
    vals = ev.fitted.predict_arrays(full, unique, np.full(len(eye), n0), ev.params)
    return np.argsort(np.where(np.isfinite(vals), vals, np.inf), kind="stable")


def simplex_search(ev: Evaluator, starts: list[np.ndarray], max_epochs: float | None) -> list[np.ndarray]:
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
        ends.append(normalise(_softmax(res.x)))
    return ends


def breakpoints(w: np.ndarray, ev: Evaluator) -> list[np.ndarray]:
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


def candidates(ev: Evaluator, names: list[str], starts: Sequence[Mapping[str, float]], max_epochs: float | None,
               simplex_starts: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """(label, weights) of every mixture a plan considers, in a fixed order."""
    k = len(names)
    budget = ev.budget
    order = rank_pools(ev)
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
        search_from = [base[i] for i in np.argsort(values)[: max(1, simplex_starts // 2)]]
        search_from += list(rng.dirichlet(np.ones(k), size=max(0, simplex_starts - len(search_from))))
        for w in simplex_search(ev, search_from, max_epochs):
            cands.append(("simplex", w))
        best_w = min(cands[len(base):], key=lambda c: float(ev(c[1])[0]))[1]
        for w in breakpoints(best_w, ev):
            cands.append(("epoch breakpoint", normalise(w)))
    return cands
