"""Text normalisation, word hashes and word n-gram shingle hashes, vectorised over a batch.

Near-duplicate detection should not see case, punctuation or digit changes, so
texts are NFKC-normalised, lower-cased, digit runs become "0" and everything that
is not a letter or digit becomes a word break. Only texts with non-ASCII characters
need Arrow's NFKC and lower-casing; letter and digit classes come from the regex
engine `normalise` uses, looked up per byte. Words are hashed straight from the UTF-8 buffer with a polynomial hash computed by
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

    @classmethod
    def from_counts(cls, hashes: np.ndarray, counts: np.ndarray) -> Words:
        offsets = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        return cls(hashes, offsets)


_POWERS = np.ones(1, np.uint64)
_INVERSE_POWERS = np.ones(1, np.uint64)


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """BASE**i and BASE**-i (mod 2**64) for i < n, computed once and grown on demand."""
    global _POWERS, _INVERSE_POWERS
    if len(_POWERS) < n:
        size = max(n, 2 * len(_POWERS), 1 << 18)
        with np.errstate(over="ignore"):
            pows = np.full(size, _BASE, np.uint64)
            pows[0] = 1
            inv = np.full(size, _BASE_INV, np.uint64)
            inv[0] = 1
            _POWERS, _INVERSE_POWERS = np.cumprod(pows), np.cumprod(inv)
    return _POWERS[:n], _INVERSE_POWERS[:n]


def _poly_hashes(data: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """The mixed polynomial hash of each byte range `data[starts[i]:stops[i]]` (uint8 data, int64 bounds)."""
    total = len(data)
    pows, inv = _powers(total + 1)
    with np.errstate(over="ignore"):
        prefix = np.zeros(total + 1, np.uint64)
        if total:
            np.cumsum((data.astype(np.uint64) + np.uint64(1)) * pows[:-1], out=prefix[1:])
        poly = (prefix[stops] - prefix[starts]) * inv[starts]
        lengths = (stops - starts).astype(np.uint64)
        return mix64(poly ^ (lengths * _GOLDEN))


def _string_hashes(words: pa.StringArray, chunk: int = 1 << 16) -> np.ndarray:
    """One mixed polynomial hash per string, from the array's offsets and data buffers."""
    if len(words) > chunk:  # cache-sized slices are much faster than one pass over a big buffer
        return np.concatenate([_string_hashes(words.slice(s, chunk), chunk) for s in range(0, len(words), chunk)])
    n = len(words)
    if n == 0:
        return np.zeros(0, np.uint64)
    offsets, data = _buffers(words)
    return _poly_hashes(data, offsets[:-1], offsets[1:])


def _buffers(strings: pa.StringArray) -> tuple[np.ndarray, np.ndarray]:
    """(int64 offsets starting at 0, uint8 data) of a string array, without copying the data."""
    n = len(strings)
    bufs = strings.buffers()
    off_dtype = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    offsets = np.frombuffer(bufs[1], dtype=off_dtype, count=strings.offset + n + 1)[strings.offset :].astype(np.int64)
    base = int(offsets[0])
    offsets -= base
    total = int(offsets[-1])
    data = np.frombuffer(bufs[2], dtype=np.uint8, count=base + total)[base:] if total else np.zeros(0, np.uint8)
    return offsets, data


# Bytes after `normalise`: ASCII letters lower-cased, every digit "0"; a byte's class says letter, number or break
_BREAK, _LETTER, _NUMBER = 0, 1, 2
_ASCII_CLASS = np.zeros(256, np.uint8)
_ASCII_CLASS[ord("a") : ord("z") + 1] = _LETTER
_ASCII_CLASS[ord("A") : ord("Z") + 1] = _LETTER
_ASCII_CLASS[ord("0") : ord("9") + 1] = _NUMBER
_ASCII_BYTE = np.arange(256, dtype=np.uint8)
_ASCII_BYTE[ord("A") : ord("Z") + 1] += 32
_CODEPOINT_CLASS: np.ndarray | None = None
_CLASSIFIED_PLANES = 0x40000  # planes 4 and up hold no letters or numbers


def _codepoint_class() -> np.ndarray:
    """Letter/number/break per code point, asked of the same regex engine `normalise` uses.

    Python's `unicodedata` follows another Unicode version than Arrow's RE2 (thousands
    of newer code points differ), so the table comes from RE2 itself, built once.
    """
    global _CODEPOINT_CLASS
    if _CODEPOINT_CLASS is None:
        cps = np.concatenate([np.arange(0xD800), np.arange(0xE000, _CLASSIFIED_PLANES)])  # no surrogates in UTF-8
        chars = pa.array([chr(c) for c in cps.tolist()], pa.string())
        table = np.zeros(_CLASSIFIED_PLANES, np.uint8)
        table[cps[pc.match_substring_regex(chars, r"^\pL$").to_numpy(zero_copy_only=False)]] = _LETTER
        table[cps[pc.match_substring_regex(chars, r"^\pN$").to_numpy(zero_copy_only=False)]] = _NUMBER
        _CODEPOINT_CLASS = table
    return _CODEPOINT_CLASS


def _byte_classes(data: np.ndarray) -> np.ndarray:
    """The class of every byte: its own for ASCII, its code point's for the bytes of a multi-byte character."""
    cls = _ASCII_CLASS[data]
    high = np.flatnonzero(data >= 0x80)
    if len(high) == 0:
        return cls
    is_lead = data[high] >= 0xC0
    lead = high[is_lead]
    cp = data[lead].astype(np.int64)
    width = np.where(cp >= 0xF0, 4, np.where(cp >= 0xE0, 3, 2))
    cp &= np.where(width == 2, 0x1F, np.where(width == 3, 0x0F, 0x07))
    for k in (1, 2, 3):
        more = width > k
        cp[more] = (cp[more] << 6) | (data[lead[more] + k] & 0x3F)
    table = _codepoint_class()
    lead_class = np.where(cp < len(table), table[np.minimum(cp, len(table) - 1)], _BREAK).astype(np.uint8)
    cls[high] = lead_class[np.cumsum(is_lead) - 1]  # continuation bytes follow their lead byte
    return cls


def _byte_words(texts: pa.StringArray) -> tuple[np.ndarray, np.ndarray]:
    """(word hashes, words per text) of NFKC-normalised, lower-cased texts, straight from the bytes.

    After that normalisation, `normalise` and a whitespace split leave exactly the
    maximal runs of letters and numbers, each number run replaced by one "0";
    hashing those runs here gives the same hashes without building any strings.
    """
    n = len(texts)
    offsets, data = _buffers(texts)
    if len(data) == 0:
        return np.zeros(0, np.uint64), np.zeros(n, np.int64)
    cls = _byte_classes(data)
    text_start = np.zeros(len(data), bool)
    text_start[offsets[:-1][offsets[:-1] < len(data)]] = True
    in_word = cls != _BREAK
    after_word = np.zeros(len(data), bool)  # the byte before is a letter or number of the same text
    after_word[1:] = in_word[:-1] & ~text_start[1:]
    keep = in_word.copy()
    keep[1:] &= ~((cls[1:] == _NUMBER) & (cls[:-1] == _NUMBER) & after_word[1:])  # a number run keeps one byte
    kept = np.flatnonzero(keep)
    if len(kept) == 0:
        return np.zeros(0, np.uint64), np.zeros(n, np.int64)
    first = np.flatnonzero(~after_word[kept])
    stops = np.append(first[1:], len(kept))
    out = _ASCII_BYTE[data[kept]]
    out[cls[kept] == _NUMBER] = ord("0")
    hashes = _poly_hashes(out, first, stops)
    text = np.searchsorted(offsets, kept[first], side="right") - 1
    return hashes, np.bincount(text, minlength=n).astype(np.int64)


_CHUNK_BYTES = 1 << 17


def words(texts: pa.Array | pa.ChunkedArray) -> Words:
    """Normalised words of each text (a null text has none).

    Only texts with non-ASCII characters go through Arrow's NFKC and lower-casing;
    then words are cut and hashed from the bytes, which gives the same hashes as
    `normalise` and a split about twice as fast.
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if pa.types.is_large_string(texts.type):
        texts = texts.cast(pa.string())
    n = len(texts)
    if n > 1 and texts.nbytes > _CHUNK_BYTES:  # cache-sized slices run much faster than one big pass
        offsets, _ = _buffers(texts)
        cuts = np.searchsorted(offsets, np.arange(_CHUNK_BYTES, offsets[-1], _CHUNK_BYTES), side="right") - 1
        cuts = np.unique(np.concatenate([[0], cuts[cuts > 0], [n]]))
        if len(cuts) > 2:
            pieces = [words(texts.slice(a, b - a)) for a, b in zip(cuts[:-1], cuts[1:])]
            return Words.from_counts(np.concatenate([p.hashes for p in pieces]), np.concatenate([p.counts for p in pieces]))
    if texts.null_count:
        texts = pc.fill_null(texts, "")
    wide = pc.invert(pc.string_is_ascii(texts))
    if pc.any(wide).as_py():
        texts = pc.replace_with_mask(texts, wide, pc.utf8_lower(pc.utf8_normalize(texts.filter(wide), form="NFKC")))
    return Words.from_counts(*_byte_words(texts))


def _words_unicode(texts: pa.Array | pa.ChunkedArray) -> Words:
    """Every text through Arrow's normalise and split: the definition the byte path is tested against."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    n = len(texts)
    split = pc.utf8_split_whitespace(normalise(texts))
    flat = pc.list_flatten(split)
    if len(flat) == 0:
        return Words.from_counts(np.zeros(0, np.uint64), np.zeros(n, np.int64))
    parent = pc.list_parent_indices(split).to_numpy()
    nonempty = pc.greater(pc.utf8_length(flat), 0).to_numpy(zero_copy_only=False)
    return Words.from_counts(_string_hashes(flat)[nonempty], np.bincount(parent[nonempty], minlength=n).astype(np.int64))


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
