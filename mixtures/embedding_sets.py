"""Embedding sets: the samples of a pool (or the target) an OT distance is taken over, and their Gaussians.

`EmbeddingSet` holds embeddings, optional labels and sample weights (normalised to one);
`gaussian_moments` and `bures_wasserstein_matrix` give OTDD's label distance between the
class-conditional Gaussians of the sets (see `thresher.mixtures.transport.MixtureOT`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class EmbeddingSet:
    """Samples of one pool (or the target): embeddings, optional labels and sample weights."""

    x: np.ndarray
    labels: np.ndarray | None = None
    weights: np.ndarray | None = None
    name: str = ""

    def __post_init__(self) -> None:
        what = self.name or "embedding set"
        self.x = np.asarray(self.x, dtype=np.float64)
        if self.x.ndim == 1:
            self.x = self.x[:, None]
        if self.x.ndim != 2 or self.x.shape[0] == 0:
            raise ValueError(f"{what}: embeddings must be a non-empty (n, d) array, got shape {self.x.shape}")
        if not np.all(np.isfinite(self.x)):
            bad = int(np.flatnonzero(~np.isfinite(self.x).all(axis=1))[0])
            raise ValueError(f"{what}: row {bad} has a non-finite embedding value")
        n = self.x.shape[0]
        if self.labels is not None:
            self.labels = np.asarray(self.labels)
            if self.labels.shape != (n,):
                raise ValueError(f"{what}: {self.labels.shape[0]} labels for {n} rows")
        if self.weights is None:
            self.weights = np.full(n, 1.0 / n)
        else:
            w = np.asarray(self.weights, dtype=np.float64)
            if w.shape != (n,) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
                raise ValueError(f"{what}: weights must be {n} nonnegative finite numbers with a positive sum")
            self.weights = w / w.sum()

    @property
    def size(self) -> int:
        return self.x.shape[0]


def as_set(obj: EmbeddingSet | np.ndarray, name: str) -> EmbeddingSet:
    if isinstance(obj, EmbeddingSet):
        if not obj.name:
            obj.name = name
        return obj
    return EmbeddingSet(np.asarray(obj), name=name)


def _sqrt_psd(c: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(c)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def gaussian_moments(
    x: np.ndarray, w: np.ndarray, *, diagonal: bool, ridge: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and covariance; a small ridge keeps one-sample classes well posed."""
    w = w / w.sum()
    mean = w @ x
    xc = x - mean
    if diagonal:
        cov = np.diag(w @ (xc * xc))
    else:
        cov = (xc * w[:, None]).T @ xc
    scale = max(np.trace(cov) / cov.shape[0], 1e-12)
    return mean, cov + ridge * scale * np.eye(cov.shape[0])


def bures_wasserstein_matrix(means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """Squared W2 between every pair of Gaussians N(means[i], covs[i]) (OTDD's label distance)."""
    g = means.shape[0]
    roots = np.stack([_sqrt_psd(c) for c in covs])
    traces = np.trace(covs, axis1=1, axis2=2)
    out = np.zeros((g, g))
    for i in range(g):
        for j in range(i + 1, g):
            mid = roots[i] @ covs[j] @ roots[i]
            cross = np.sqrt(np.clip(np.linalg.eigvalsh((mid + mid.T) / 2), 0.0, None)).sum()
            d = float(np.sum((means[i] - means[j]) ** 2) + traces[i] + traces[j] - 2.0 * cross)
            out[i, j] = out[j, i] = max(d, 0.0)
    return out
