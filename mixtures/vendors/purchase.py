"""Best purchase under a money budget: one quantity per vendor (multiple-choice knapsack).

Each vendor offers a menu of quantities (0 included) with a cost and a predicted gain; gains
of different vendors are assumed to add. Dynamic programming over the budget cut into
`resolution` cells, with every cost rounded UP to whole cells, so whatever the DP picks costs
at most the budget: the limit holds exactly, and the optimum is missed by at most one cell's
worth of money per vendor.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Menu:
    """A vendor's options: quantities (rows), their costs and predicted gains."""

    name: str
    quantities: np.ndarray
    costs: np.ndarray
    gains: np.ndarray

    def __post_init__(self) -> None:
        q, c, g = (np.asarray(a, dtype=np.float64) for a in (self.quantities, self.costs, self.gains))
        if not (q.ndim == 1 and q.shape == c.shape == g.shape):
            raise ValueError(f"vendor {self.name!r}: quantities, costs and gains must be equal-length vectors")
        if not (np.all(np.isfinite(c)) and (c >= 0).all() and (q >= 0).all()):
            raise ValueError(f"vendor {self.name!r}: costs and quantities must be finite and nonnegative")
        object.__setattr__(self, "quantities", q)
        object.__setattr__(self, "costs", c)
        object.__setattr__(self, "gains", np.where(np.isfinite(g), g, -np.inf))


@dataclass(frozen=True)
class Purchase:
    quantities: dict[str, float]
    costs: dict[str, float]
    gains: dict[str, float]
    total_cost: float
    total_gain: float
    budget: float | None


def optimise_purchase(menus: Sequence[Menu], budget: float | None, *, resolution: int = 4000) -> Purchase:
    """Quantities maximising the summed gain with total cost <= budget (None: no money limit).

    Not buying (quantity 0, cost 0, gain 0) is always an option, so the answer always exists.
    """
    if budget is not None and not (np.isfinite(budget) and budget >= 0):
        raise ValueError(f"budget must be a finite number >= 0, got {budget!r}")
    if resolution < 1:
        raise ValueError("resolution must be at least 1")
    options = []
    for m in menus:
        q = np.concatenate([[0.0], m.quantities])
        c = np.concatenate([[0.0], m.costs])
        g = np.concatenate([[0.0], m.gains])
        options.append((q, c, g))
    choice: list[int] = []
    if budget is None:
        choice = [int(np.argmax(g)) for _, _, g in options]
    else:
        cells = resolution
        # best[c]: top summed gain of the vendors so far spending at most c cells; it stays
        # nondecreasing in c because the empty prefix is worth 0 at every c.
        best = np.zeros(cells + 1)
        tables, all_units = [], []
        for q, c, g in options:
            if budget > 0:
                units = np.ceil(c / budget * cells)
            else:
                units = np.where(c > 0, cells + 1, 0)
            units = np.where(c > 0, np.maximum(units, 1), 0).astype(np.int64)
            new = np.full(cells + 1, -np.inf)
            arg = np.zeros(cells + 1, dtype=np.int64)
            for j in range(q.size):
                u = int(units[j])
                if u > cells or not np.isfinite(g[j]):
                    continue
                cand = np.full(cells + 1, -np.inf)
                cand[u:] = best[: cells + 1 - u] + g[j]
                better = cand > new
                new[better] = cand[better]
                arg[better] = j
            best = new
            tables.append(arg)
            all_units.append(units)
        c_left = cells
        for v in range(len(options) - 1, -1, -1):
            j = int(tables[v][c_left])
            choice.append(j)
            c_left -= int(all_units[v][j])
        choice.reverse()
    names = [m.name for m in menus]
    qty = {n: float(o[0][j]) for n, o, j in zip(names, options, choice)}
    cost = {n: float(o[1][j]) for n, o, j in zip(names, options, choice)}
    gain = {n: float(o[2][j]) for n, o, j in zip(names, options, choice)}
    total = float(sum(cost.values()))
    if budget is not None and total > budget:  # cannot happen with rounded-up cells; guard anyway
        raise AssertionError(f"purchase costs {total} > budget {budget}")
    return Purchase(qty, cost, gain, total, float(sum(gain.values())), budget)
