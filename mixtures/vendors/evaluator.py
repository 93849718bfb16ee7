"""From vendor samples and prices to what to buy: the acquisition evaluator.

Per vendor: duplicates against owned data, pilot runs of a proxy with growing slices of the
novel rows (or the user's own pilot runs), a gain curve over quantities with a bootstrap, an
optional OT second opinion, and a decision at the quantity where the predicted gain peaks
(among quantities at least as large as the revealed sample stands for, where the pilots say
the most). Vendors whose gain clears the threshold go into the budget optimiser, which may
buy fewer rows than the peak or none at all when the money does more elsewhere. The decisions
and the purchase are arithmetic on the curves (`thresher.mixtures.vendors.acquisition`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from thresher.mixtures.vendors.acquisition import (  # noqa: F401  (the results re-exported)
    Acquisition,
    VendorOffer,
    VendorResult,
    evaluate_vendors,
    quantity_grid,
)
from thresher.mixtures.vendors.decisions import GainSummary, summarise
from thresher.mixtures.vendors.gains import GainCurve


class AcquisitionEvaluator:
    """Value vendor samples with a proxy, then decide and optimise the purchase.

    Parameters
    ----------
    budget: money available (None = no money limit; quantity limits still hold).
    min_gain: smallest metric change worth paying for (the decision threshold).
    level: interval level (0.9 = a 90% interval).
    fractions, repeats, max_train: pilot design (slices of the novel rows, runs per slice,
        owned rows per run).
    n_boot: bootstrap replicates. grid_points, max_extrapolation: quantity menu per vendor.
    duplicate_radius: relative radius for "already owned" (see `embedding_duplicates`).
    ot: settings for the OT second opinion (keys of `ot_value`), or None to skip it.
    """

    def __init__(self, *, budget: float | None, min_gain: float = 0.0, level: float = 0.9,
                 fractions: Sequence[float] = (0.25, 0.5, 1.0), repeats: int = 4, max_train: int = 5000,
                 n_boot: int = 300, grid_points: int = 24, max_extrapolation: float = 20.0,
                 duplicate_radius: float = 0.05, ot: Mapping[str, Any] | None = None, seed: int = 0) -> None:
        if budget is not None and not (np.isfinite(budget) and budget >= 0):
            raise ValueError(f"budget must be a finite number >= 0, got {budget!r}")
        if not 0 < level < 1:
            raise ValueError(f"level must lie in (0, 1), got {level}")
        if max_extrapolation < 1:
            raise ValueError("max_extrapolation must be at least 1")
        self.budget, self.min_gain, self.level = budget, float(min_gain), float(level)
        self.fractions, self.repeats, self.max_train = tuple(fractions), int(repeats), int(max_train)
        self.n_boot, self.grid_points, self.max_extrapolation = int(n_boot), int(grid_points), float(max_extrapolation)
        self.duplicate_radius, self.ot, self.seed = float(duplicate_radius), ot, int(seed)
        self.curves_: dict[str, GainCurve] = {}
        self.masks_: dict[str, np.ndarray] = {}
        self.result_: Acquisition | None = None
        self._ot_sets: Mapping[str, Any] | None = None
        self._n_owned = 0

    def fit(self, proxy, owned: Any, offers: Sequence[VendorOffer], samples: Mapping[str, Any], *,
            duplicates: Mapping[str, np.ndarray] | None = None, pilot_runs: Mapping[str, Any] | None = None,
            owned_embeddings: np.ndarray | None = None, sample_embeddings: Mapping[str, np.ndarray] | None = None,
            ot_sets: Mapping[str, Any] | None = None) -> AcquisitionEvaluator:
        """Run pilots (or take `pilot_runs`), fit gain curves, decide.

        owned and samples[name]: proxy datasets ((x, y) arrays or object arrays of texts).
        duplicates[name]: mask of sample rows already owned; computed from embeddings when
        `owned_embeddings` and `sample_embeddings` are given, else taken as none.
        ot_sets: {"owned": EmbeddingSet, "target": EmbeddingSet, "vendors": {name: EmbeddingSet}},
        all already reduced to a few hundred points, for the OT second opinion.
        """
        from thresher.mixtures.vendors.duplicates import embedding_duplicates
        from thresher.mixtures.vendors.gains import zero_curve
        from thresher.mixtures.vendors.pilots import baseline_runs, run_pilots
        from thresher.mixtures.vendors.proxies import size, take

        masks: dict[str, np.ndarray] = {}
        for o in offers:
            n = size(samples[o.name])
            if duplicates is not None and o.name in duplicates:
                masks[o.name] = np.asarray(duplicates[o.name], dtype=bool)
            elif owned_embeddings is not None and sample_embeddings is not None and o.name in sample_embeddings:
                masks[o.name] = embedding_duplicates(sample_embeddings[o.name], owned_embeddings,
                                                     radius=self.duplicate_radius, seed=self.seed)
            else:
                masks[o.name] = np.zeros(n, dtype=bool)
            if masks[o.name].shape != (n,):
                raise ValueError(f"vendor {o.name!r}: duplicate mask has {masks[o.name].size} entries for {n} rows")
        base = None
        if pilot_runs is None:
            base = baseline_runs(proxy, owned, repeats=self.repeats, max_train=self.max_train, seed=self.seed)
        for o in offers:
            mask = masks[o.name]
            n = mask.size
            if pilot_runs is not None:
                if o.name not in pilot_runs:
                    raise ValueError(f"no pilot runs for vendor {o.name!r}")
                runs = pilot_runs[o.name]
            elif (~mask).sum() == 0:
                metric = getattr(proxy, "metric", "metric")
                bm = float(np.mean(base[0].sum(1) / base[1].sum(1)))
                self.curves_[o.name] = zero_curve(metric=metric, base_metric=bm, n_boot=self.n_boot)
                continue
            else:
                novel = take(samples[o.name], np.flatnonzero(~mask))
                runs = run_pilots(proxy, owned, novel, fractions=self.fractions, repeats=self.repeats,
                                  max_train=self.max_train, seed=self.seed, baseline=base)
            self.curves_[o.name] = GainCurve.fit(runs, duplicates=int(mask.sum()), revealed=n,
                                                 n_boot=self.n_boot, seed=self.seed)
        self.masks_ = masks
        self._ot_sets, self._n_owned = ot_sets, size(owned)
        ot_values = None
        if self.ot is not None and ot_sets is not None:
            ot_values = {o.name: self._ot_callable(o.name, ot_sets, masks[o.name], size(owned)) for o in offers}
        self.result_ = evaluate_vendors(offers, self.curves_, budget=self.budget, min_gain=self.min_gain,
                                        level=self.level, grid_points=self.grid_points,
                                        max_extrapolation=self.max_extrapolation, ot_values=ot_values)
        bought = {v.name: v.quantity for v in self.result_.vendors if v.quantity > 0}
        if pilot_runs is None and len(bought) >= 2:
            self.result_.joint_check = self.joint_check(proxy, owned, samples, bought, baseline=base)
            total = self.result_.total_gain
            if self.result_.joint_check.high < total.mean:
                self.result_.notes.append(
                    f"the vendors bought overlap: a joint pilot of the whole purchase predicts "
                    f"{self.result_.joint_check.mean:+.4g}, below the summed per-vendor gains {total.mean:+.4g}")
        return self

    def joint_check(self, proxy, owned: Any, samples: Mapping[str, Any], quantities: Mapping[str, float], *,
                    baseline: tuple[np.ndarray, np.ndarray] | None = None) -> GainSummary:
        """Gain of buying several vendors together, from pilots that mix their novel rows.

        Per-vendor gains are added by the optimiser, which overstates purchases whose vendors
        overlap (several selling the same missing classes). Here every pilot holds novel rows of
        each bought vendor in the purchase's proportions, so overlap shows up in the measured gain.
        """
        from thresher.mixtures.vendors.pilots import run_pilots
        from thresher.mixtures.vendors.proxies import concat, size, take

        n_own = size(owned)
        scale = n_own / min(n_own, self.max_train)
        novel = {n: np.flatnonzero(~self.masks_[n]) for n in quantities}
        units = {n: quantities[n] * (1.0 - self.curves_[n].duplicate_fraction) for n in quantities}
        units = {n: u for n, u in units.items() if u > 0 and novel[n].size}
        if not units:
            return GainSummary(0.0, 0.0, 0.0, 0.0)
        # Largest common scale at which every vendor's revealed novel rows cover its share.
        lam = min(1.0, min(novel[n].size * scale / units[n] for n in units))
        rng = np.random.default_rng(self.seed + 1)
        parts = []
        for n, u in units.items():
            k = max(1, int(round(lam * u / scale)))
            parts.append(take(samples[n], rng.choice(novel[n], min(k, novel[n].size), replace=False)))
        combined = parts[0]
        for part in parts[1:]:
            combined = concat(combined, part)
        combined = take(combined, rng.permutation(size(combined)))
        runs = run_pilots(proxy, owned, combined, fractions=self.fractions, repeats=self.repeats,
                          max_train=self.max_train, seed=self.seed, baseline=baseline)
        curve = GainCurve.fit(runs, n_boot=self.n_boot, seed=self.seed)
        total = float(sum(units.values()))
        return summarise(float(curve.predict(total)[0]), curve.samples(total)[:, 0], threshold=self.min_gain,
                         level=self.level)

    def ot_at(self, name: str, quantity: float, **settings: Any) -> dict[str, float] | None:
        """The OT second opinion for one vendor at a quantity (after `fit` with OT sets).

        settings override the evaluator's `ot` settings (keys of `ot_value`)."""
        if self._ot_sets is None:
            raise ValueError("fit was called without ot_sets")
        fn = self._ot_callable(name, self._ot_sets, self.masks_[name], self._n_owned, settings)
        return None if fn is None else fn(quantity)

    def _ot_callable(self, name: str, sets: Mapping[str, Any], mask: np.ndarray, n_owned: int,
                     overrides: Mapping[str, Any] | None = None):
        from thresher.mixtures.transport import EmbeddingSet
        from thresher.mixtures.vendors.ot_value import ot_value

        vendor = sets["vendors"].get(name)
        if vendor is None:
            return None
        keep = ~mask if mask.size == vendor.size else np.ones(vendor.size, bool)
        if keep.sum() == 0:
            return lambda q: {"share": 0.0, "delta": 0.0, "low": 0.0, "high": 0.0, "p_closer": 0.0}
        novel = EmbeddingSet(vendor.x[keep], labels=None if vendor.labels is None else vendor.labels[keep], name=name)
        dup = 1.0 - keep.mean()
        settings = {**(self.ot or {}), **(overrides or {})}
        level = self.level

        def at(q: float) -> dict[str, float]:
            u = q * (1.0 - dup)
            share = u / (n_owned + u)
            val = ot_value(sets["owned"], novel, sets["target"], np.array([share]), seed=self.seed, **settings)
            boot = val.delta_boot[:, 0]
            lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2]) if boot.size else (np.nan, np.nan)
            return {"share": float(share), "delta": float(val.delta[0]), "low": float(lo), "high": float(hi),
                    "p_closer": float(np.mean(boot > 0)) if boot.size else float("nan"),
                    "owned_ot": val.owned_ot}

        return at
