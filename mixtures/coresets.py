"""Weighted k-means coresets: shrink a pool to a fixed number of weighted points before OT.

OT cost grows with n*m, so pools above a cap are summarised by cluster centres weighted by
the mass they absorb. Clustering is done per label so every centre keeps a single label.
"""
from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans


def _allocate(counts: np.ndarray, k: int) -> np.ndarray:
    """Split k centres across strata in proportion to their counts, at least one each."""
    if k < counts.size:
        raise ValueError(f"a coreset of {k} points cannot keep {counts.size} labels; raise the cap")
    share = counts / counts.sum() * k
    alloc = np.maximum(1, np.floor(share)).astype(int)
    alloc = np.minimum(alloc, counts)
    while alloc.sum() < k and (alloc < counts).any():
        room = np.where(alloc < counts, share - alloc, -np.inf)
        alloc[int(np.argmax(room))] += 1
    while alloc.sum() > k:
        over = np.where(alloc > 1, alloc - share, -np.inf)
        alloc[int(np.argmax(over))] -= 1
    return alloc


def kmeans_coreset(
    x: np.ndarray,
    k: int,
    *,
    weights: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Centres, their masses (summing to the input mass) and labels; identity when n <= k."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=np.float64)
    if n <= k:
        return x, w, labels
    if labels is None:
        strata = [np.arange(n)]
        stratum_labels: list = [None]
    else:
        uniq = np.unique(labels)
        strata = [np.flatnonzero(labels == u) for u in uniq]
        stratum_labels = list(uniq)
    alloc = _allocate(np.array([s.size for s in strata]), k)
    centres, masses, out_labels = [], [], []
    for idx, kk, lab in zip(strata, alloc, stratum_labels):
        if kk >= idx.size:
            centres.append(x[idx])
            masses.append(w[idx])
            out_labels.append(np.full(idx.size, lab) if lab is not None else None)
            continue
        km = KMeans(n_clusters=int(kk), n_init=1, random_state=seed, max_iter=100)
        assign = km.fit_predict(x[idx], sample_weight=w[idx])
        mass = np.bincount(assign, weights=w[idx], minlength=kk)
        centres.append(km.cluster_centers_)
        masses.append(mass)
        out_labels.append(np.full(int(kk), lab) if lab is not None else None)
    centres_arr = np.vstack(centres)
    mass_arr = np.concatenate(masses)
    keep = mass_arr > 0
    lab_arr = np.concatenate(out_labels)[keep] if labels is not None else None
    return centres_arr[keep], mass_arr[keep], lab_arr
