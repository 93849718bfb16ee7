"""Which vendor rows the owner already has.

Rows that duplicate owned data add nothing when bought, however well they match the target;
a proxy trained on a small owned subsample would not notice (the duplicates look like fresh
data to it). So duplicates are found first, against all owned rows, and every gain is
computed on the novel rows only and then scaled by the novel fraction.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from sklearn.neighbors import NearestNeighbors


def _median_nn_distance(x: np.ndarray, max_rows: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    sub = x if x.shape[0] <= max_rows else x[rng.choice(x.shape[0], max_rows, replace=False)]
    if sub.shape[0] < 2:
        return 0.0
    d, _ = NearestNeighbors(n_neighbors=2).fit(sub).kneighbors(sub)
    return float(np.median(d[:, 1]))


def embedding_duplicates(
    vendor: np.ndarray,
    owned: np.ndarray,
    *,
    radius: float = 0.05,
    reference_rows: int = 2000,
    seed: int = 0,
) -> np.ndarray:
    """Boolean mask: vendor rows within `radius` x (median owned nearest-neighbour distance) of an owned row.

    The scale is relative so one setting works for pixels and unit-norm text embeddings alike;
    radius 0 flags exact copies only.
    """
    vendor = np.asarray(vendor, dtype=np.float64)
    owned = np.asarray(owned, dtype=np.float64)
    if vendor.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    if radius < 0:
        raise ValueError(f"duplicate radius must be >= 0, got {radius}")
    scale = _median_nn_distance(owned, reference_rows, seed)
    d, _ = NearestNeighbors(n_neighbors=1).fit(owned).kneighbors(vendor)
    return d[:, 0] <= radius * scale + 1e-12 * max(1.0, scale)


def _text_key(text: str) -> bytes:
    return hashlib.blake2b(" ".join(text.lower().split()).encode("utf-8"), digest_size=16).digest()


def text_duplicates(vendor: Sequence[str], owned: Sequence[str]) -> np.ndarray:
    """Boolean mask: vendor documents equal to an owned one after case and whitespace folding."""
    owned_keys = {_text_key(t) for t in owned}
    return np.array([_text_key(t) in owned_keys for t in vendor], dtype=bool)
