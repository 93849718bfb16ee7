"""Decisions and the purchase from gain curves: pure arithmetic, no pilots run here.

Per vendor, a menu of quantities with the predicted gain, its interval and cost; the decision
(buy / skip / ask) at the quantity where the predicted gain peaks (among quantities at least
as large as the revealed sample stands for); then the budget optimiser shares the money among
the vendors worth buying. `AcquisitionEvaluator` (`thresher.mixtures.vendors.evaluator`)
runs the pilots that make the curves and calls `evaluate_vendors`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thresher.mixtures.vendors.decisions import GainSummary, decide, more_samples_needed, summarise
from thresher.mixtures.vendors.gains import GainCurve
from thresher.mixtures.vendors.prices import PriceSchedule
from thresher.mixtures.vendors.purchase import Menu, optimise_purchase


@dataclass
class VendorOffer:
    """What a vendor sells: a revealed sample (rows), the stock, and the price schedule.

    max_quantity: the buyer's own cap on rows from this vendor (None = the whole stock).
    """

    name: str
    revealed: int
    available: int
    price: PriceSchedule
    max_quantity: int | None = None

    def __post_init__(self) -> None:
        if self.revealed < 0 or self.available < 0:
            raise ValueError(f"vendor {self.name!r}: revealed and available must be >= 0")
        if self.max_quantity is not None and self.max_quantity < 0:
            raise ValueError(f"vendor {self.name!r}: max_quantity must be >= 0")

    @property
    def limit(self) -> int:
        return int(self.available if self.max_quantity is None else min(self.available, self.max_quantity))


@dataclass
class VendorResult:
    name: str
    decision: str
    reason: str
    quantity: float
    cost: float
    gain: GainSummary
    evaluated_quantity: float
    gain_per_money: float | None
    marginal_gain_per_money: float | None
    more_samples: int | None
    duplicate_fraction: float
    extrapolation: float
    curve: dict[str, list[float]]
    pilots: dict[str, Any]
    ot: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "decision": self.decision,
            "reason": self.reason,
            "quantity": self.quantity,
            "cost": self.cost,
            "gain": self.gain.to_dict(),
            "evaluated_quantity": self.evaluated_quantity,
            "gain_per_money": self.gain_per_money,
            "marginal_gain_per_money": self.marginal_gain_per_money,
            "more_samples": self.more_samples,
            "duplicate_fraction": self.duplicate_fraction,
            "extrapolation": self.extrapolation,
            "curve": self.curve,
            "pilots": self.pilots,
            "ot": self.ot,
        }


@dataclass
class Acquisition:
    vendors: list[VendorResult]
    quantities: dict[str, float]
    total_cost: float
    total_gain: GainSummary
    budget: float | None
    min_gain: float
    level: float
    metric: str
    base_metric: float
    notes: list[str] = field(default_factory=list)
    joint_check: GainSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "base_metric": self.base_metric,
            "budget": self.budget,
            "min_gain": self.min_gain,
            "level": self.level,
            "purchase": {
                "quantities": self.quantities,
                "total_cost": self.total_cost,
                "predicted_gain": self.total_gain.to_dict(),
                "joint_check": None if self.joint_check is None else self.joint_check.to_dict(),
            },
            "vendors": [v.to_dict() for v in self.vendors],
            "notes": list(self.notes),
        }


def quantity_grid(offer: VendorOffer, curve: GainCurve, budget: float | None, *, points: int = 24,
                  max_extrapolation: float = 20.0) -> tuple[np.ndarray, float]:
    """Candidate quantities (rows) and the reference quantity the revealed sample stands for."""
    novel_share = max(1.0 - curve.duplicate_fraction, 1e-12)
    reference = float(curve.levels[-1] / novel_share)
    upper = float(offer.limit)
    if budget is not None:
        upper = min(upper, np.floor(offer.price.max_rows(budget) + 1e-9))
    upper = min(upper, max(1.0, np.floor(max_extrapolation * reference)))
    if upper < 1:
        return np.zeros(0), reference
    lower = max(1.0, upper / 100.0)
    grid = np.unique(np.round(np.geomspace(lower, upper, points)))
    if reference <= upper:
        grid = np.unique(np.concatenate([grid, [np.round(reference)]]))
    grid = grid[(grid >= 1) & (grid <= upper)]
    # Rounding must not break the limits: keep only affordable quantities.
    if budget is not None:
        grid = grid[np.asarray(offer.price.cost(grid)) <= budget]
    return grid, reference


def evaluate_vendors(
    offers: Sequence[VendorOffer],
    curves: Mapping[str, GainCurve],
    *,
    budget: float | None,
    min_gain: float = 0.0,
    level: float = 0.9,
    grid_points: int = 24,
    max_extrapolation: float = 20.0,
    ot_values: Mapping[str, Any] | None = None,
    resolution: int = 4000,
) -> Acquisition:
    """Decisions per vendor and the best purchase under the budget (pure arithmetic on the curves)."""
    if not offers:
        raise ValueError("no vendors to evaluate")
    names = [o.name for o in offers]
    if len(set(names)) != len(names):
        raise ValueError(f"vendor names must be unique, got {names}")
    missing = [n for n in names if n not in curves]
    if missing:
        raise ValueError(f"no gain curve for vendors {missing}")
    pre = {o.name: _first_decision(o, curves[o.name], budget, min_gain, level, grid_points, max_extrapolation)
           for o in offers}
    purchase = optimise_purchase([info["menu"] for info in pre.values() if "menu" in info], budget,
                                 resolution=resolution)
    results: list[VendorResult] = []
    total_samples = None
    for o in offers:
        result, samples = _final_decision(o, pre[o.name], purchase.quantities.get(o.name, 0.0), min_gain, level,
                                          ot_values)
        results.append(result)
        if samples is not None:
            total_samples = samples.copy() if total_samples is None else total_samples + samples
    if total_samples is None:
        total = GainSummary(0.0, 0.0, 0.0, 0.0)
    else:
        total = summarise(purchase.total_gain, total_samples, threshold=min_gain, level=level)
    any_curve = next(iter(curves.values()))
    notes = ["gains of different vendors are assumed to add up when several are bought"]
    far = [r.name for r in results if r.extrapolation > 4]
    if far:
        notes.append(f"predictions for {far} reach more than 4x beyond the revealed sample; ask for more rows to firm them up")
    quantities = {r.name: r.quantity for r in results}
    total_cost = float(sum(r.cost for r in results))
    if budget is not None and total_cost > budget:
        raise AssertionError(f"purchase costs {total_cost} > budget {budget}")
    return Acquisition(results, quantities, total_cost, total, budget, float(min_gain), float(level),
                       any_curve.metric, any_curve.base_metric, notes)


def _first_decision(o: VendorOffer, curve: GainCurve, budget: float | None, min_gain: float, level: float,
                    grid_points: int, max_extrapolation: float) -> dict[str, Any]:
    """A vendor's quantity menu and its decision at the peak, before the budget is shared out.

    A "buy" adds `menu`: the quantities whose whole interval clears the threshold, for the optimiser.
    """
    grid, reference = quantity_grid(o, curve, budget, points=grid_points, max_extrapolation=max_extrapolation)
    info: dict[str, Any] = {"grid": grid, "reference": reference, "curve": curve}
    if grid.size == 0:
        info.update(decision="skip", reason="no row is affordable within the budget and limits", j=None)
        return info
    mean = curve.predict(grid)
    samples = curve.samples(grid)
    costs = np.asarray(o.price.cost(grid), dtype=np.float64)
    q = (1.0 - level) / 2.0
    low, high = np.quantile(samples, q, axis=0), np.quantile(samples, 1.0 - q, axis=0)
    eligible = grid >= min(reference, grid[-1]) - 1e-9
    j = int(np.flatnonzero(eligible)[np.argmax(mean[eligible])])
    summ = summarise(float(mean[j]), samples[:, j], threshold=min_gain, level=level)
    decision = decide(summ, min_gain)
    info.update(mean=mean, samples=samples, costs=costs, low=low, high=high, j=j, summary=summ, decision=decision)
    if decision == "buy":
        ok = low > min_gain
        info["menu"] = Menu(o.name, grid[ok], costs[ok], mean[ok])
        info["reason"] = f"{level:.0%} interval above {min_gain:g} at {int(grid[j])} rows"
    elif decision == "skip":
        info["reason"] = f"{level:.0%} interval at or below {min_gain:g} at {int(grid[j])} rows"
    else:
        info["reason"] = f"{level:.0%} interval straddles {min_gain:g} at {int(grid[j])} rows"
    return info


def _final_decision(o: VendorOffer, info: dict[str, Any], bought: float, min_gain: float, level: float,
                    ot_values: Mapping[str, Any] | None) -> tuple[VendorResult, np.ndarray | None]:
    """The vendor's result once the purchase is known, and its gain draws when it is bought."""
    curve: GainCurve = info["curve"]
    pilots = {"levels": curve.levels.tolist(), "level_gains": curve.level_gains.tolist(),
              "base_metric": curve.base_metric}
    if info["j"] is None:
        return VendorResult(o.name, "skip", info["reason"], 0.0, 0.0, GainSummary(0.0, 0.0, 0.0, 0.0), 0.0,
                            None, None, None, curve.duplicate_fraction, 1.0, {}, pilots), None
    grid, mean, costs = info["grid"], info["mean"], info["costs"]
    decision, reason, j = info["decision"], info["reason"], info["j"]
    samples = None
    if decision == "buy":
        if bought > 0:
            j = int(np.flatnonzero(grid == bought)[0])
            samples = info["samples"][:, j]
        else:
            decision = "skip"
            reason = "gain is real but the budget does more with other vendors"
    summ = summarise(float(mean[j]), info["samples"][:, j], threshold=min_gain, level=level)
    more = None
    if decision == "ask":
        more = more_samples_needed(summ, o.revealed or 1, threshold=min_gain, limit=o.limit)
        reason += (f"; about {more} more revealed rows would settle it" if more is not None
                   else "; no affordable sample size is likely to settle it")
    nxt = j + 1 if j + 1 < grid.size else j - 1
    marginal = None
    if 0 <= nxt < grid.size and nxt != j and costs[nxt] != costs[j]:
        marginal = float((mean[nxt] - mean[j]) / (costs[nxt] - costs[j]))
    ot_info = None
    if ot_values and o.name in ot_values and ot_values[o.name] is not None:
        ot_info = ot_values[o.name](grid[j]) if callable(ot_values[o.name]) else ot_values[o.name]
    result = VendorResult(
        name=o.name,
        decision=decision,
        reason=reason,
        quantity=float(grid[j]) if decision == "buy" else 0.0,
        cost=float(costs[j]) if decision == "buy" else 0.0,
        gain=summ,
        evaluated_quantity=float(grid[j]),
        gain_per_money=float(mean[j] / costs[j]) if costs[j] > 0 else None,
        marginal_gain_per_money=marginal,
        more_samples=more,
        duplicate_fraction=curve.duplicate_fraction,
        extrapolation=curve.extrapolation(float(grid[j])),
        curve={"quantity": grid.tolist(), "mean": mean.tolist(), "low": info["low"].tolist(),
               "high": info["high"].tolist(), "cost": costs.tolist()},
        pilots=pilots,
        ot=ot_info,
    )
    return result, samples
