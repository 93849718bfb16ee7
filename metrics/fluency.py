"""CCNet-style fluency: perplexity under an n-gram LM trained on a reference pool.

CCNet scores web text with a 5-gram KenLM trained on Wikipedia and buckets
documents into head / middle / tail by perplexity percentiles. KenLM weights and
its trainer are not a Python dependency we can count on, so this module trains
its own interpolated modified Kneser-Ney model over *hashed* word n-grams:

* Kneser-Ney because it is what KenLM uses and what makes perplexity a useful
  ranking signal at small reference sizes (continuation counts keep frequent but
  context-bound words like "Francisco" from dominating the unigram back-off).
* Hashed n-grams (64-bit splitmix of word ids) so counting and look-up are numpy
  `unique` / `searchsorted` over arrays instead of Python dicts; with 64-bit keys
  a collision among 10^8 n-grams has probability ~1e-4 and would move one count.

Perplexity is CCNet's document definition: each non-empty line is a sentence
with `<s>` ... `</s>`, and ppl = 10 ** (-sum(log10 p) / sum(words + 1)).
"""
from __future__ import annotations

import io
import json
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path
from typing import BinaryIO

import numpy as np

from thresher.metrics.files import FormatError, JsonFormat, MiB, open_limited, too_large, write_atomic
from thresher.metrics.ngram_arrays import (
    _FIRST_WORD,
    BOS,
    EOS,
    UNK,
    _discounts,
    _group_sum,
    _lookup,
    _ngram_hashes,
    _shift,
    _stream,
)

FORMAT = JsonFormat("thresher.fluency_lm", 1, "fluency model", max_bytes=2048 * MiB, version_field=True)
MAX_UNPACKED_BYTES = 16 * 1024 * MiB  # what a model file's arrays may unpack to
_ARRAYS = ("keys_", "adjusted_", "discounts_", "ctx_keys_", "ctx_denom_", "ctx_gamma_")  # one array per order each
_TOKEN = re.compile(r"\w+|[^\w\s]")
_DIGIT = re.compile(r"\d")
_COMBINING = re.compile(r"[\u0300-\u036f]")
BUCKETS = ("head", "middle", "tail")


def normalize(text: str) -> str:
    """CCNet's normalisation: lower case, accents stripped, every digit -> 0."""
    text = unicodedata.normalize("NFD", text.lower())
    return _DIGIT.sub("0", _COMBINING.sub("", text))


def tokenize_lines(text: str) -> list[list[str]]:
    """Non-empty lines of a document as lists of word / punctuation tokens."""
    lines = (_TOKEN.findall(line) for line in normalize(text).split("\n"))
    return [toks for toks in lines if toks]


class FluencyModel:
    """Interpolated modified Kneser-Ney n-gram LM over hashed word n-grams.

    Parameters
    ----------
    order: n-gram order (CCNet uses 5 with KenLM; 3 is the default here because
        a reference pool of a few MB cannot fill 5-gram statistics).
    min_count: words seen fewer times in the reference map to `<unk>`, which
        gives unknown words a learned probability instead of a guess.
    max_vocab: cap on the vocabulary (most frequent words kept).
    chunk_tokens: tokens counted per numpy pass while training (memory knob).
    """

    def __init__(self, order: int = 3, min_count: int = 2, max_vocab: int = 500_000, chunk_tokens: int = 2_000_000):
        if not isinstance(order, (int, np.integer)) or not 1 <= order <= 8:
            raise ValueError(f"order must be an integer in 1..8, got {order!r}")
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if max_vocab < 1:
            raise ValueError(f"max_vocab must be >= 1, got {max_vocab}")
        if chunk_tokens < 1000:
            raise ValueError(f"chunk_tokens must be >= 1000, got {chunk_tokens}")
        self.order = int(order)
        self.min_count = int(min_count)
        self.max_vocab = int(max_vocab)
        self.chunk_tokens = int(chunk_tokens)
        self.cutoffs_: np.ndarray | None = None
        self._index: dict[str, int] | None = None

    # ------------------------------------------------------------------ training
    def fit(self, texts: Iterable[str]) -> FluencyModel:
        """Train on reference documents (one pass; texts may be a generator)."""
        intern: dict[str, int] = {}
        chunks: list[np.ndarray] = []
        lines: list[np.ndarray] = []
        size = 0
        n_docs = 0
        for n_docs, text in enumerate(texts, 1):
            if not isinstance(text, str):
                raise ValueError(f"reference document {n_docs - 1} is {type(text).__name__}, expected str")
            for toks in tokenize_lines(text):
                lines.append(np.fromiter((intern.setdefault(t, len(intern) + _FIRST_WORD) for t in toks), np.int64, len(toks)))
                size += len(toks) + 2
            if size >= self.chunk_tokens:
                chunks.append(_stream(lines)[0])
                lines, size = [], 0
        if lines:
            chunks.append(_stream(lines)[0])
        if not chunks:
            raise ValueError(f"the reference pool has no tokens ({n_docs} documents); fluency needs real text to learn from")

        # Vocabulary: most frequent words (ties by first appearance, so the result is deterministic).
        freq = np.zeros(len(intern) + _FIRST_WORD, np.int64)
        for c in chunks:
            freq += np.bincount(c, minlength=freq.size)
        words = np.arange(_FIRST_WORD, freq.size)
        keep = words[freq[_FIRST_WORD:] >= self.min_count]
        keep = keep[np.argsort(-freq[keep], kind="stable")][: self.max_vocab]
        remap = np.full(freq.size, UNK, np.int64)
        remap[[BOS, EOS, UNK]] = [BOS, EOS, UNK]
        remap[keep] = np.arange(_FIRST_WORD, _FIRST_WORD + keep.size)
        by_id = {v: k for k, v in intern.items()}
        self.vocab_ = [by_id[int(i)] for i in keep]
        del intern, by_id

        tables: list[list[tuple[np.ndarray, ...]]] = [[] for _ in range(self.order)]
        for c in chunks:
            ids = remap[c]
            pos = np.arange(ids.size) - np.maximum.accumulate(np.where(ids == BOS, np.arange(ids.size), 0))
            hashes = _ngram_hashes(ids, self.order)
            for k in range(1, self.order + 1):
                valid = (pos >= k - 1) & (pos >= 1)
                key = hashes[k - 1][valid]
                if k == 1:
                    prefix = suffix = np.zeros(key.size, np.uint64)
                else:
                    prefix = _shift(hashes[k - 2])[valid]
                    suffix = hashes[k - 2][valid]
                tables[k - 1].append(self._count(key, prefix, suffix))
                if len(tables[k - 1]) >= 8:
                    tables[k - 1] = [self._merge(tables[k - 1])]
        merged = [self._merge(t) for t in tables]
        self._build(merged)
        return self

    @staticmethod
    def _count(key: np.ndarray, prefix: np.ndarray, suffix: np.ndarray) -> tuple[np.ndarray, ...]:
        uniq, first, counts = np.unique(key, return_index=True, return_counts=True)
        return uniq, counts.astype(np.int64), prefix[first], suffix[first]

    @staticmethod
    def _merge(parts: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
        if len(parts) == 1:
            return parts[0]
        key = np.concatenate([p[0] for p in parts])
        counts = np.concatenate([p[1] for p in parts])
        prefix = np.concatenate([p[2] for p in parts])
        suffix = np.concatenate([p[3] for p in parts])
        uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        return uniq, np.bincount(inverse, weights=counts).astype(np.int64), prefix[first], suffix[first]

    def _build(self, merged: list[tuple[np.ndarray, ...]]) -> None:
        """Adjusted counts, discounts and per-context back-off weights for every order."""
        self.keys_: list[np.ndarray] = []
        self.adjusted_: list[np.ndarray] = []
        self.discounts_: list[np.ndarray] = []
        self.ctx_keys_: list[np.ndarray] = []
        self.ctx_denom_: list[np.ndarray] = []
        self.ctx_gamma_: list[np.ndarray] = []
        for k in range(1, self.order + 1):
            key, raw, prefix, _ = merged[k - 1]
            if k == self.order:
                adjusted = raw
            else:
                # Continuation count = distinct left extensions; n-grams starting at <s> have none and keep raw counts.
                ext_keys, n_ext = np.unique(merged[k][3], return_counts=True)
                found, idx = _lookup(ext_keys, key)
                adjusted = np.where(found, n_ext[idx], raw)
            d = _discounts(adjusted)
            cls = np.minimum(adjusted, 3) - 1
            ones = np.ones(key.size)
            ctx, denom, n1, n2, n3 = _group_sum(prefix, adjusted.astype(float), (cls == 0) * ones, (cls == 1) * ones, (cls == 2) * ones)
            gamma = (d[0] * n1 + d[1] * n2 + d[2] * n3) / denom
            self.keys_.append(key)
            self.adjusted_.append(adjusted.astype(np.float64))
            self.discounts_.append(d)
            self.ctx_keys_.append(ctx)
            self.ctx_denom_.append(denom)
            self.ctx_gamma_.append(gamma)
        # Predictable types: words, <unk> and </s> (never <s>).
        self.n_types_ = len(self.vocab_) + 2
        self._index = None

    # ------------------------------------------------------------------- scoring
    def _check_fitted(self) -> None:
        if not hasattr(self, "keys_"):
            raise RuntimeError("FluencyModel is not fitted; call fit(reference_texts) or FluencyModel.load(path)")

    def _word_index(self) -> dict[str, int]:
        if self._index is None:
            self._index = {w: i for i, w in enumerate(self.vocab_, _FIRST_WORD)}
        return self._index

    def token_log10_probs(self, ids: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """log10 p of every predicted position (pos >= 1) of a <s>...</s> stream."""
        self._check_fitted()
        hashes = _ngram_hashes(ids, self.order)
        pred = pos >= 1
        n = int(pred.sum())
        # Unigram level, interpolated with the uniform distribution over predictable types.
        d = self.discounts_[0]
        denom = self.ctx_denom_[0][0] if self.ctx_denom_[0].size else 1.0
        gamma = self.ctx_gamma_[0][0] if self.ctx_gamma_[0].size else 1.0
        found, idx = _lookup(self.keys_[0], hashes[0][pred])
        a = np.where(found, self.adjusted_[0][idx], 0.0)
        p = np.where(found, np.maximum(a - d[np.clip(a, 1, 3).astype(int) - 1], 0) / denom, 0.0) + gamma / self.n_types_
        ppos = pos[pred]
        for k in range(2, self.order + 1):
            usable = ppos >= k - 1
            ctx = _shift(hashes[k - 2])[pred]
            cfound, cidx = _lookup(self.ctx_keys_[k - 1], ctx)
            cfound &= usable
            gfound, gidx = _lookup(self.keys_[k - 1], hashes[k - 1][pred])
            gfound &= cfound
            a = np.where(gfound, self.adjusted_[k - 1][gidx], 0.0)
            dk = self.discounts_[k - 1][np.clip(a, 1, 3).astype(int) - 1]
            top = np.where(gfound, np.maximum(a - dk, 0.0), 0.0)
            denom = np.where(cfound, self.ctx_denom_[k - 1][cidx], 1.0)
            gamma = np.where(cfound, self.ctx_gamma_[k - 1][cidx], 1.0)
            p = np.where(cfound, top / denom + gamma * p, p)
        assert p.size == n
        return np.log10(p)

    def _encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._check_fitted()
        index = self._word_index()
        lines: list[np.ndarray] = []
        line_doc: list[int] = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"document {i} is {type(text).__name__}, expected str")
            for toks in tokenize_lines(text):
                lines.append(np.fromiter((index.get(t, UNK) for t in toks), np.int64, len(toks)))
                line_doc.append(i)
        ids, pos = _stream(lines)
        lens = np.fromiter((len(x) + 2 for x in lines), np.int64, len(lines))
        doc = np.repeat(np.asarray(line_doc, np.int64), lens)
        return ids, pos, doc

    def log10_prob(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per document: (sum of log10 p, number of predicted tokens = words + lines)."""
        ids, pos, doc = self._encode(texts)
        if ids.size == 0:
            return np.zeros(len(texts)), np.zeros(len(texts), np.int64)
        lp = self.token_log10_probs(ids, pos)
        pdoc = doc[pos >= 1]
        return np.bincount(pdoc, weights=lp, minlength=len(texts)), np.bincount(pdoc, minlength=len(texts))

    def perplexity(self, texts: Sequence[str]) -> np.ndarray:
        """CCNet document perplexity; NaN for a document with no tokens."""
        total, count = self.log10_prob(texts)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(count > 0, 10.0 ** (-total / np.maximum(count, 1)), np.nan)

    # ------------------------------------------------------------------- buckets
    def calibrate(self, texts: Sequence[str], percentiles: tuple[float, float] = (30.0, 60.0)) -> FluencyModel:
        """Store head/middle/tail cutoffs measured on a sample of the pool to be bucketed (as CCNet does)."""
        self.cutoffs_ = fit_cutoffs(self.perplexity(texts), percentiles)
        return self

    # ------------------------------------------------- the model file: .npz, read and written only here
    def _write_npz(self, fh: BinaryIO) -> None:
        """Arrays per order plus a JSON header, compressed; no pickled objects."""
        self._check_fitted()
        meta = {
            **FORMAT.stamp(),
            "order": self.order,
            "min_count": self.min_count,
            "max_vocab": self.max_vocab,
            "n_types": self.n_types_,
            "cutoffs": None if self.cutoffs_ is None else [float(c) for c in self.cutoffs_],
        }
        arrays: dict[str, np.ndarray] = {
            "meta": np.frombuffer(json.dumps(meta).encode(), np.uint8),
            "vocab": np.frombuffer("\n".join(self.vocab_).encode("utf-8"), np.uint8),
        }
        for k in range(self.order):
            for name in _ARRAYS:
                arrays[f"{name}{k}"] = getattr(self, name)[k]
        np.savez_compressed(fh, **arrays)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        self._write_npz(buf)
        return buf.getvalue()

    def save(self, path: str | PathLike) -> Path:
        """Write the model file atomically (an .npz: see `_write_npz`)."""
        self._check_fitted()

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # a file object: numpy would add ".npz" to a temporary name
                self._write_npz(fh)

        return write_atomic(path, write)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "fluency model") -> FluencyModel:
        if len(data) > FORMAT.max_bytes:
            raise FormatError(source, f"{len(data)} bytes is over the limit for fluency model files")
        return cls._read_npz(io.BytesIO(data), source)

    @classmethod
    def from_file(cls, fh: BinaryIO, source: str = "fluency model") -> FluencyModel:
        """A model from an open, seekable binary file the caller opened (an object in a store, through
        `thresher.pipeline.storage`): no copy of a large model in memory. Its size is checked first, as `load`
        checks a path's; `source` names it in messages."""
        size = fh.seek(0, io.SEEK_END)
        fh.seek(0)
        if size > FORMAT.max_bytes:
            raise too_large(source, size, FORMAT.max_bytes, FORMAT.what)
        return cls._read_npz(fh, source)

    @classmethod
    def load(cls, path: str | PathLike) -> FluencyModel:
        with open_limited(path, FORMAT.max_bytes, FORMAT.what, missing="train one with `thresher fluency train`") as fh:
            return cls._read_npz(fh, str(path))

    @classmethod
    def _read_npz(cls, fh: BinaryIO, source: str) -> FluencyModel:
        """The one reader: never unpickles, and refuses archives that unpack beyond `MAX_UNPACKED_BYTES`."""
        try:
            with np.load(fh, allow_pickle=False) as z:
                unpacked = sum(info.file_size for info in z.zip.infolist())
                if unpacked > MAX_UNPACKED_BYTES:
                    raise FormatError(source, f"its arrays unpack to {unpacked} bytes, over the limit of "
                                              f"{MAX_UNPACKED_BYTES} for a fluency model")
                meta = FORMAT.check(json.loads(z["meta"].tobytes().decode()), source)
                model = cls(order=meta["order"], min_count=meta["min_count"], max_vocab=meta["max_vocab"])
                text = z["vocab"].tobytes().decode("utf-8")
                model.vocab_ = text.split("\n") if text else []
                model.n_types_ = int(meta["n_types"])
                model.cutoffs_ = None if meta["cutoffs"] is None else np.asarray(meta["cutoffs"], float)
                for name in _ARRAYS:
                    setattr(model, name, [z[f"{name}{k}"] for k in range(model.order)])
        except FormatError:
            raise
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise FormatError(source, "it holds a pickled object array, which Thresher never loads; "
                                          "train the model again with `thresher fluency train`") from None
            raise FormatError(source, f"not a readable fluency model ({exc})") from exc
        except (KeyError, TypeError, OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
            raise FormatError(source, f"not a readable fluency model ({exc})") from exc
        model._index = None
        return model


def fit_cutoffs(perplexities: np.ndarray, percentiles: tuple[float, float] = (30.0, 60.0)) -> np.ndarray:
    """Perplexity values at the head/middle and middle/tail percentiles (NaNs ignored)."""
    lo, hi = percentiles
    if not 0 < lo < hi < 100:
        raise ValueError(f"percentiles must satisfy 0 < low < high < 100, got {percentiles}")
    values = np.asarray(perplexities, float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("no finite perplexities to take percentiles of")
    return np.percentile(values, [lo, hi])


def buckets(perplexities: np.ndarray, cutoffs: Sequence[float]) -> np.ndarray:
    """'head' below the first cutoff, 'tail' at or above the second, else 'middle'; '' for NaN."""
    c = np.asarray(cutoffs, float)
    if c.shape != (2,) or not c[0] <= c[1]:
        raise ValueError(f"cutoffs must be two increasing numbers, got {cutoffs!r}")
    values = np.asarray(perplexities, float)
    out = np.array(BUCKETS, dtype=object)[np.searchsorted(c, values, side="right")]
    out[~np.isfinite(values)] = ""
    return out.astype(str)
