"""MinHash signatures and LSH band keys, vectorised over all shingles of a batch.

Permutation i maps the top 32 bits x of a shingle hash to a*x + b (mod 2**32)
with odd a, a bijection; shingle hashes are already well mixed, so the minimum
over a document's shingles behaves as a min-wise sample, and 32-bit lanes halve
the memory traffic of the hot loop (two values agree by chance with probability
2**-32, far below LSH's own error). The parameters come from a counter-based
hash of the seed, not a numpy random stream, so every machine and numpy version
gets the same permutations. Signatures are computed in blocks of shingles
(memory stays at block x num_perm words) and reduced per document with
`np.minimum.reduceat`.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.pipeline.dedupe.shingles import Words, mix64, shingles

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_CHAIN = np.uint64(0xD6E8FEB86659FD93)
EMPTY = np.iinfo(np.uint32).max


def _counter_hash(seed: int, stream: int, n: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        i = np.arange(n, dtype=np.uint64) + np.uint64(stream) * np.uint64(1 << 32)
        return mix64(mix64(i * _GOLDEN + np.uint64(seed)) ^ np.uint64(0x5851F42D4C957F2D))


class MinHasher:
    """num_perm min-wise permutations; `signatures` turns shingle hashes into (n_docs, num_perm) uint32."""

    def __init__(self, num_perm: int = 128, seed: int = 1, block: int = 8192):
        if int(num_perm) != num_perm or num_perm < 1:
            raise ValueError(f"num_perm must be a positive integer, got {num_perm!r}")
        if block < 1:
            raise ValueError(f"block must be positive, got {block}")
        self.num_perm = int(num_perm)
        self.seed = int(seed)
        self.block = int(block)
        self.a = (_counter_hash(self.seed, 1, self.num_perm) >> np.uint64(32)).astype(np.uint32) | np.uint32(1)
        self.b = (_counter_hash(self.seed, 2, self.num_perm) >> np.uint64(32)).astype(np.uint32)

    def signatures(self, sh: Words) -> np.ndarray:
        """Row i = min over document i's shingles of each permutation; all-EMPTY for a document with none."""
        n_docs = len(sh.offsets) - 1
        sig = np.full((n_docs, self.num_perm), EMPTY, np.uint32)
        total = len(sh.hashes)
        if total == 0:
            return sig
        doc_of = np.repeat(np.arange(n_docs), np.diff(sh.offsets))
        a, b = self.a[:, None], self.b[:, None]
        top = (sh.hashes >> np.uint64(32)).astype(np.uint32)
        # permutations x shingles layout: the per-document reduction runs along contiguous rows
        with np.errstate(over="ignore"):
            for s in range(0, total, self.block):
                x = top[None, s : s + self.block]
                d = doc_of[s : s + self.block]
                v = np.multiply(a, x)
                v += b
                starts = np.flatnonzero(np.concatenate(([True], d[1:] != d[:-1])))
                mins = np.minimum.reduceat(v, starts, axis=1).T
                docs = d[starts]
                sig[docs] = np.minimum(sig[docs], mins)
        return sig


def text_signatures(texts: pa.Array | pa.ChunkedArray, hasher: MinHasher, ngram: int = 5,
                    chunk_chars: int = 1 << 18) -> np.ndarray:
    """Signatures of texts, computed in slices of about `chunk_chars` characters.

    Small slices keep every temporary array in cache and below the allocator's
    mmap threshold; on large batches that is several times faster than one pass.
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    n = len(texts)
    lengths = pc.fill_null(pc.utf8_length(texts), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    ends = np.cumsum(lengths)
    out = np.empty((n, hasher.num_perm), np.uint32)
    start = 0
    while start < n:
        # at least one document per slice, then as many as fit in chunk_chars
        base = ends[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, base + chunk_chars, side="right")))
        out[start:stop] = hasher.signatures(shingles(texts.slice(start, stop - start), ngram))
        start = stop
    return out


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n_docs, bands) uint64: one hash per band of `rows` signature values, salted by the band index.

    Two documents share a key in band i exactly when their `rows` values in that
    band agree (up to a 2**-64 collision chance), so buckets are groups of equal keys.
    """
    n, p = sig.shape
    if bands * rows > p:
        raise ValueError(f"bands*rows = {bands * rows} exceeds the signature length {p}")
    cube = sig[:, : bands * rows].reshape(n, bands, rows)
    with np.errstate(over="ignore"):
        h = np.broadcast_to(mix64(np.arange(bands, dtype=np.uint64) + _GOLDEN), (n, bands)).copy()
        for j in range(rows):
            h = mix64((h * _CHAIN) ^ cube[:, :, j])
    return h


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Fraction of agreeing permutations, the MinHash estimate of Jaccard similarity."""
    return np.mean(np.asarray(sig_a) == np.asarray(sig_b), axis=-1)
