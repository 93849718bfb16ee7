"""OT-based value of a vendor: how much closer the training distribution moves to the target.

With owned data O, novel vendor rows V and target T, buying u novel rows makes the training
set the mixture (1 - r) O + r V with r = u / (n_owned + u). The OT value is
OT(O, T) - OT((1 - r) O + r V, T) (positive = closer to the target), computed with `MixtureOT`
on fixed, weighted samples (label-aware OTDD cost when labels exist). It needs no training
run, so it is a second opinion next to the proxy, and the only one for vendors whose labels
the proxy cannot use. The bootstrap resamples vendor rows (multinomial weights).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thresher.mixtures.coresets import kmeans_coreset
from thresher.mixtures.transport import EmbeddingSet, MixtureOT


@dataclass
class OTValue:
    shares: np.ndarray       # vendor share r of the training set at each quantity
    delta: np.ndarray        # OT(owned) - OT(mixture) at each share
    delta_boot: np.ndarray   # (B, G)
    owned_ot: float


def reduce_set(x: np.ndarray, labels: np.ndarray | None, max_points: int, seed: int, name: str) -> EmbeddingSet:
    """A weighted k-means summary (stratified by label) of at most max_points rows."""
    cx, cw, cl = kmeans_coreset(x, max_points, labels=labels, seed=seed)
    return EmbeddingSet(cx, labels=cl, weights=cw, name=name)


def _subset(s: EmbeddingSet, idx: np.ndarray, weights: np.ndarray | None, name: str) -> EmbeddingSet:
    w = None if weights is None else weights[idx]
    return EmbeddingSet(s.x[idx], labels=None if s.labels is None else s.labels[idx], weights=w, name=name)


def ot_value(
    owned: EmbeddingSet,
    vendor: EmbeddingSet,
    target: EmbeddingSet,
    shares: np.ndarray,
    *,
    n_boot: int = 20,
    solver: str = "sinkhorn",
    reg: float = 0.05,
    label_cost: str | None = "gaussian",
    max_points: int = 500,
    seed: int = 0,
) -> OTValue:
    """OT improvement at each vendor share, with bootstrap replicates.

    Owned and vendor rows enter as raw samples of the same size (at most max_points): in high
    dimension the OT between two samples of one distribution is dominated by sampling noise,
    so a coreset or a larger sample on one side would look closer to the target than raw rows
    on the other for no real reason. Every replicate draws a fresh owned subsample and a
    bootstrap of the vendor rows. The target (common to both sides) may be a coreset.
    """
    shares = np.clip(np.asarray(shares, dtype=np.float64), 0.0, 1.0)
    rng = np.random.default_rng(seed)
    n = int(min(max_points, vendor.size, owned.size))
    use_labels = label_cost if (owned.labels is not None and vendor.labels is not None and target.labels is not None) else None

    def deltas(own: EmbeddingSet, ven: EmbeddingSet) -> tuple[np.ndarray, float]:
        mot = MixtureOT([own, ven], target, solver=solver, reg=reg, label_cost=use_labels,
                        max_per_pool=max(own.size, ven.size), max_target=max(max_points, target.size), seed=seed)
        base = mot.value(np.array([1.0, 0.0]))
        vals = np.array([mot.value(np.array([1.0 - r, r])) for r in shares])
        return base - vals, base

    own0 = _subset(owned, np.sort(rng.choice(owned.size, n, replace=False)), None, "owned")
    ven0 = _subset(vendor, np.sort(rng.choice(vendor.size, n, replace=False)), None, "vendor")
    delta, base = deltas(own0, ven0)
    boot = np.empty((n_boot, shares.size))
    for b in range(n_boot):
        own_b = _subset(owned, np.sort(rng.choice(owned.size, n, replace=False)), None, "owned")
        pick = rng.choice(vendor.size, n, replace=True)
        counts = np.bincount(pick, minlength=vendor.size).astype(np.float64)
        keep = np.flatnonzero(counts > 0)
        boot[b] = deltas(own_b, _subset(vendor, keep, counts, "vendor"))[0]
    return OTValue(shares, delta, boot, float(base))
