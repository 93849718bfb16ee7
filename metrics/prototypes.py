"""Self-supervised prototypes (Sorscher et al. 2022): difficulty = cosine distance to the nearest k-means centroid.

Near a centroid means prototypical ("easy"). The paper's rule: keep the hard
examples when data is abundant, the easy ones when it is scarce, and balance the
kept set across clusters because any difficulty metric skews the class mix.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import MiniBatchKMeans


@dataclass(frozen=True)
class Prototypes:
    """Per-example distance and cluster, plus the unit-norm centroids (to score new data later)."""

    distance: np.ndarray
    cluster: np.ndarray
    centroids: np.ndarray


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _check_embeddings(embeddings: np.ndarray) -> np.ndarray:
    x = np.asarray(embeddings)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"embeddings must be a non-empty 2-d array (n, dim), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(x), axis=1))[0])
        raise ValueError(f"embeddings row {bad} has a NaN or infinite value")
    return x


def nearest_centroid(embeddings: np.ndarray, centroids: np.ndarray, batch_rows: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """(cosine distance to the nearest centroid, its index) for each row, in bounded memory."""
    x = _check_embeddings(embeddings)
    c = _unit_rows(_check_embeddings(centroids))
    if c.shape[1] != x.shape[1]:
        raise ValueError(f"centroids have dim {c.shape[1]} but embeddings have dim {x.shape[1]}")
    dist = np.empty(x.shape[0])
    label = np.empty(x.shape[0], np.int64)
    for s in range(0, x.shape[0], batch_rows):
        sim = _unit_rows(x[s : s + batch_rows]) @ c.T
        label[s : s + batch_rows] = sim.argmax(1)
        dist[s : s + batch_rows] = 1.0 - sim.max(1)
    return np.clip(dist, 0.0, 2.0), label


def fit_prototypes(embeddings: np.ndarray, n_clusters: int, seed: int = 0, batch_size: int = 4096, n_init: int = 3) -> Prototypes:
    """Spherical-style mini-batch k-means on unit-normalised embeddings."""
    x = _check_embeddings(embeddings)
    if not isinstance(n_clusters, (int, np.integer)) or not 1 <= n_clusters <= x.shape[0]:
        raise ValueError(f"n_clusters must be an integer in 1..{x.shape[0]} (the number of rows), got {n_clusters!r}")
    u = _unit_rows(x)
    km = MiniBatchKMeans(n_clusters=int(n_clusters), random_state=seed, batch_size=batch_size, n_init=n_init)
    km.fit(u)
    centroids = _unit_rows(km.cluster_centers_)
    dist, label = nearest_centroid(u, centroids)
    return Prototypes(distance=dist, cluster=label, centroids=centroids)


def prototype_distance(embeddings: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    """Sorscher's self-supervised prototype score: 1 - cosine(x, nearest centroid); higher = harder."""
    return fit_prototypes(embeddings, n_clusters, seed).distance


def _quota(sizes: np.ndarray, n_keep: int) -> np.ndarray:
    """Split n_keep across groups in proportion to their sizes (largest remainder, ties to the lower index)."""
    exact = sizes * (n_keep / sizes.sum())
    q = np.floor(exact).astype(np.int64)
    short = n_keep - int(q.sum())
    if short > 0:
        order = np.lexsort((np.arange(sizes.size), -(exact - q)))
        q[order[:short]] += 1
    return np.minimum(q, sizes)


def select(scores: np.ndarray, fraction: float, keep: str = "hard", clusters: np.ndarray | None = None) -> np.ndarray:
    """Sorted indices of the kept examples: the highest (`hard`) or lowest (`easy`) scores.

    With `clusters`, every cluster keeps the same fraction of its members
    (largest-remainder rounding), so pruning cannot empty a cluster or skew the
    mix. Ties break by index, so the result is deterministic.
    """
    s = np.asarray(scores, np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-d, got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError(f"scores row {int(np.flatnonzero(np.isnan(s))[0])} is NaN")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if keep not in ("hard", "easy"):
        raise ValueError(f"keep must be 'hard' or 'easy', got {keep!r}")
    n = s.size
    if n == 0:
        return np.zeros(0, np.int64)
    n_keep = max(1, int(round(fraction * n)))
    key = -s if keep == "hard" else s
    if clusters is None:
        order = np.lexsort((np.arange(n), key))
        return np.sort(order[:n_keep])
    g = np.asarray(clusters)
    if g.shape != s.shape:
        raise ValueError(f"clusters must have one entry per score: {g.shape} vs {s.shape}")
    _, gid = np.unique(g, return_inverse=True)
    sizes = np.bincount(gid)
    quota = _quota(sizes, n_keep)
    # Rank within cluster: sort by (cluster, key, index), then take each cluster's first `quota` rows.
    order = np.lexsort((np.arange(n), key, gid))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.arange(n) - np.repeat(starts, sizes)
    kept = order[rank < np.repeat(quota, sizes)]
    return np.sort(kept)
