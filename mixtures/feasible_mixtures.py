"""The feasible mixtures: p >= 0, sum(p) = 1, p_i <= cap_i, and a price budget, with exact projection.

The set is convex, so the Euclidean projection onto it (nested bisection on the KKT
multipliers of the sum and budget constraints) turns any smooth performance model into
projected gradient ascent (`thresher.mixtures.optimize`).
"""
from __future__ import annotations

import numpy as np

_BISECT = 60


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
