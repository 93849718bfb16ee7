"""Vendor value when the training run will repeat data: the utility law's marginal value.

The proxy pilots train on each row once. When the compute budget is larger than the unique
data (owned plus bought), rows are seen several times and their worth decays with repetition;
a utility law fitted on pilot runs that included the vendor's pool (`thresher.mixtures.fitting`)
prices that in. This wraps `planning.marginal_value` for the quantity under consideration.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from thresher.mixtures.fitted_law import FittedLaw
from thresher.mixtures.planning import Pool, marginal_value


def repetition_value(fitted: FittedLaw, owned: Sequence[Pool], vendor: str, unique: float, budget: float, *,
                     params: float | None = None, cost: float | None = None, level: float = 0.9) -> dict[str, Any]:
    """Predicted loss reduction from `unique` novel vendor units (rows or tokens, as the fit's unit).

    Returns {"gain", "interval", "vendor_weight", "vendor_epochs"}, or {"note"} when the vendor
    pool is not in the fit or nothing novel is bought.
    """
    if vendor not in fitted.pools:
        return {"note": f"vendor {vendor!r} is not a pool of the utility-law fit (pools: {list(fitted.pools)})"}
    if not unique > 0:
        return {"note": "no novel rows to value"}
    mv = marginal_value(fitted, list(owned), Pool(vendor, float(unique), cost=cost if cost else None), budget,
                        params=params, level=level)
    weight = mv["candidate_weight"]
    return {
        "gain": mv["gain"],
        "interval": mv["gain_interval"],
        "vendor_weight": weight,
        "vendor_epochs": weight * budget / float(unique),
        "budget": float(budget),
        "unit": fitted.unit,
    }
