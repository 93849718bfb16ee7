"""Text normalisation, word hashes and word n-gram shingle hashes, vectorised over a batch.

Near-duplicate detection should not see case, punctuation or digit changes, so
texts are NFKC-normalised, lower-cased, digit runs become "0" and everything that
is not a letter or digit becomes a word break (all in Arrow's C++ kernels). Words
are hashed straight from the UTF-8 buffer with a polynomial hash computed by
prefix sums (uint64 arithmetic wraps mod 2**64, and the odd base is invertible),
then mixed; an n-gram's hash chains its words' hashes. No Python loop runs per
document or per word.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_BASE = np.uint64(0x100000001B3)  # odd, so it has an inverse mod 2**64
_BASE_INV = np.uint64(pow(0x100000001B3, -1, 2**64))
_CHAIN = np.uint64(0xD6E8FEB86659FD93)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection on uint64 that spreads every input bit over the output."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def normalise(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Lower-cased NFKC text with digit runs as "0" and non-alphanumerics as spaces."""
    t = pc.utf8_normalize(texts, form="NFKC")
    t = pc.utf8_lower(t)
    t = pc.replace_substring_regex(t, r"\pN+", "0")
    t = pc.replace_substring_regex(t, r"[^\pL\pN\s]+|_", " ")
    return pc.utf8_trim_whitespace(t)


@dataclass(frozen=True)
class Words:
    """The words of a batch, flattened: `hashes[offsets[i]:offsets[i+1]]` belong to document i."""

    hashes: np.ndarray  # uint64
    offsets: np.ndarray  # int64, len = n_docs + 1

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)


def _string_hashes(words: pa.StringArray, chunk: int = 1 << 16) -> np.ndarray:
    """One mixed polynomial hash per string, from the array's offsets and data buffers."""
    if len(words) > chunk:  # cache-sized slices are much faster than one pass over a big buffer
        return np.concatenate([_string_hashes(words.slice(s, chunk), chunk) for s in range(0, len(words), chunk)])
    n = len(words)
    if n == 0:
        return np.zeros(0, np.uint64)
    bufs = words.buffers()
    off_dtype = np.int64 if pa.types.is_large_string(words.type) else np.int32
    offsets = np.frombuffer(bufs[1], dtype=off_dtype, count=words.offset + n + 1)[words.offset :].astype(np.int64)
    base = int(offsets[0])
    offsets = offsets - base
    total = int(offsets[-1])
    data = np.frombuffer(bufs[2], dtype=np.uint8, count=base + total)[base:] if total else np.zeros(0, np.uint8)
    with np.errstate(over="ignore"):
        pows = np.empty(total + 1, np.uint64)
        pows[0] = 1
        if total:
            pows[1:] = _BASE
            np.cumprod(pows, out=pows)
        inv = np.empty(total + 1, np.uint64)
        inv[0] = 1
        if total:
            inv[1:] = _BASE_INV
            np.cumprod(inv, out=inv)
        prefix = np.zeros(total + 1, np.uint64)
        if total:
            np.cumsum((data.astype(np.uint64) + np.uint64(1)) * pows[:-1], out=prefix[1:])
        start, stop = offsets[:-1], offsets[1:]
        poly = (prefix[stop] - prefix[start]) * inv[start]
        lengths = (stop - start).astype(np.uint64)
        return mix64(poly ^ (lengths * _GOLDEN))


def words(texts: pa.Array | pa.ChunkedArray) -> Words:
    """Normalised words of each text (a null text has none)."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    n = len(texts)
    split = pc.utf8_split_whitespace(normalise(texts))
    flat = pc.list_flatten(split)
    if len(flat) == 0:
        return Words(np.zeros(0, np.uint64), np.zeros(n + 1, np.int64))
    parent = pc.list_parent_indices(split).to_numpy()
    nonempty = pc.greater(pc.utf8_length(flat), 0).to_numpy(zero_copy_only=False)
    hashes = _string_hashes(flat)[nonempty]
    counts = np.bincount(parent[nonempty], minlength=n)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Words(hashes, offsets)


def shingles(texts: pa.Array | pa.ChunkedArray, ngram: int = 5) -> Words:
    """Hashes of each document's word n-grams (a document shorter than n words is one shingle).

    A shingle's hash chains its words' hashes through `mix64`, so it depends on
    word order; a document with no words has no shingles and never matches.
    """
    if ngram < 1:
        raise ValueError(f"ngram must be >= 1, got {ngram}")
    w = words(texts)
    counts = w.counts
    n_docs = len(counts)
    total = len(w.hashes)
    # window starts: positions j with j + ngram <= doc end, plus the first word of shorter (non-empty) docs
    per_doc = np.where(counts >= ngram, counts - ngram + 1, np.minimum(counts, 1))
    out_offsets = np.zeros(n_docs + 1, np.int64)
    np.cumsum(per_doc, out=out_offsets[1:])
    n_out = int(out_offsets[-1])
    if n_out == 0:
        return Words(np.zeros(0, np.uint64), out_offsets)
    doc_of = np.repeat(np.arange(n_docs), per_doc)
    starts = w.offsets[doc_of] + (np.arange(n_out) - out_offsets[doc_of])
    width = np.minimum(counts[doc_of], ngram)  # words in this shingle
    padded = np.concatenate([w.hashes, np.zeros(ngram, np.uint64)])
    with np.errstate(over="ignore"):
        h = mix64(padded[starts] ^ _CHAIN)
        for k in range(1, ngram):
            nxt = padded[np.minimum(starts + k, total)]
            h = np.where(k < width, mix64((h * _CHAIN) ^ nxt), h)
        h = mix64(h ^ (width.astype(np.uint64) * _GOLDEN))
    return Words(h, out_offsets)


def shingle_sets(texts: list[str], ngram: int = 5) -> list[np.ndarray]:
    """Sorted unique shingle hashes per text: the exact sets that Jaccard is measured on."""
    s = shingles(pa.array(texts, pa.string()), ngram)
    return [np.unique(s.hashes[s.offsets[i] : s.offsets[i + 1]]) for i in range(len(texts))]
