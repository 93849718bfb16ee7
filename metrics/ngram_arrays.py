"""Hashed n-gram arrays for the fluency LM: every count and look-up is a numpy array operation.

Word ids become 64-bit splitmix hashes of n-grams, so counting is `np.unique` and look-up is
`np.searchsorted` on sorted keys instead of Python dicts (see `thresher.metrics.fluency`).
Lines are streamed as `<s> ids </s>`; the modified Kneser-Ney discounts come from counts of
counts (Chen & Goodman 1998).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOS, EOS, UNK = 0, 1, 2
_FIRST_WORD = 3
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a bijective, well-spread 64-bit hash."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def _ngram_hashes(ids: np.ndarray, order: int) -> list[np.ndarray]:
    """h[k-1][i] = hash of tokens i-k+1..i (garbage where the n-gram crosses a line start; masked by callers)."""
    ids64 = ids.astype(np.uint64)
    hashes = [_mix(ids64 + np.uint64(1))]
    for _ in range(1, order):
        prev = np.empty_like(ids64)
        prev[0] = 0
        prev[1:] = hashes[-1][:-1]
        with np.errstate(over="ignore"):
            hashes.append(_mix(prev * _GOLDEN + ids64 + np.uint64(1)))
    return hashes


def _shift(a: np.ndarray) -> np.ndarray:
    out = np.empty_like(a)
    out[0] = 0
    out[1:] = a[:-1]
    return out


def _stream(lines: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate lines as <s> ids </s>; returns (ids, position within line)."""
    if not lines:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lens = np.fromiter((len(x) + 2 for x in lines), np.int64, len(lines))
    ids = np.empty(int(lens.sum()), np.int64)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    ids[starts] = BOS
    ids[starts + lens - 1] = EOS
    body = np.ones(ids.size, bool)
    body[starts] = False
    body[starts + lens - 1] = False
    ids[body] = np.concatenate(lines) if len(lines) else []
    pos = np.arange(ids.size) - np.repeat(starts, lens)
    return ids, pos


def _group_sum(keys: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sorted unique keys and per-key sums of each value array."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    if k.size == 0:
        return (k,) + tuple(v[:0] for v in values)
    first = np.flatnonzero(np.concatenate([[True], k[1:] != k[:-1]]))
    return (k[first],) + tuple(np.add.reduceat(v[order], first) for v in values)


def _lookup(sorted_keys: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(found mask, index) of each query key in a sorted key array."""
    if sorted_keys.size == 0:
        return np.zeros(query.shape, bool), np.zeros(query.shape, np.int64)
    idx = np.searchsorted(sorted_keys, query)
    idx = np.minimum(idx, sorted_keys.size - 1)
    return sorted_keys[idx] == query, idx


def _discounts(adjusted: np.ndarray) -> np.ndarray:
    """Modified Kneser-Ney discounts D1, D2, D3+ from counts-of-counts (Chen & Goodman 1998)."""
    n = np.array([np.count_nonzero(adjusted == c) for c in (1, 2, 3, 4)], float)
    if n[0] > 0 and n[1] > 0:
        y = n[0] / (n[0] + 2 * n[1])
        d = np.array([1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * (n[3] / n[2] if n[2] else 0.0)])
        if np.all(np.isfinite(d)) and np.all(d > 0) and np.all(d < np.array([1, 2, 3])):
            return d
    # Tiny or degenerate references: fall back to the classic single discount.
    return np.array([0.5, 0.75, 0.75]) if n[0] == 0 else np.full(3, min(max(n[0] / (n[0] + 2 * n[1]), 0.1), 0.9))
