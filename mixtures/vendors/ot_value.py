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

from mixtures.coresets import kmeans_coreset
from mixtures.transport import EmbeddingSet, MixtureOT


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
    """OT improvement at each vendor share, with bootstrap replicates over vendor rows.

    Owned and target sets should already be small (see `reduce_set`); the vendor sample is
    subsampled to max_points rows so every replicate re-solves a small problem.
    """
    shares = np.clip(np.asarray(shares, dtype=np.float64), 0.0, 1.0)
    rng = np.random.default_rng(seed)
    vx, vl = vendor.x, vendor.labels
    if vx.shape[0] > max_points:
        keep = np.sort(rng.choice(vx.shape[0], max_points, replace=False))
        vx, vl = vx[keep], None if vl is None else vl[keep]
    use_labels = label_cost if (owned.labels is not None and vl is not None and target.labels is not None) else None

    def deltas(weights: np.ndarray | None) -> tuple[np.ndarray, float]:
        keep = np.ones(vx.shape[0], bool) if weights is None else weights > 0
        v = EmbeddingSet(vx[keep], labels=None if vl is None else vl[keep],
                         weights=None if weights is None else weights[keep], name="vendor")
        mot = MixtureOT([owned, v], target, solver=solver, reg=reg, label_cost=use_labels,
                        max_per_pool=max(max_points, owned.size, v.size), max_target=max(max_points, target.size),
                        seed=seed)
        base = mot.value(np.array([1.0, 0.0]))
        vals = np.array([mot.value(np.array([1.0 - r, r])) for r in shares])
        return base - vals, base

    delta, base = deltas(None)
    boot = np.empty((n_boot, shares.size))
    n = vx.shape[0]
    for b in range(n_boot):
        boot[b] = deltas(rng.multinomial(n, np.full(n, 1.0 / n)).astype(np.float64))[0]
    return OTValue(shares, delta, boot, float(base))
