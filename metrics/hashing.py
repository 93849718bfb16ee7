"""Hashed word n-gram features shared by the quality classifier and the default embedder.

Feature hashing needs no vocabulary, so a trained model is just coefficients and
the hashing parameters, and two machines always build identical features
(scikit-learn's signed 32-bit MurmurHash3, seed 0, is stable across versions).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize

TOKEN_PATTERN = r"(?u)\b\w+\b"


def hashed_ngrams(
    texts: Sequence[str],
    n_features: int = 2**20,
    ngram_range: tuple[int, int] = (1, 2),
    *,
    stop_words: str | None = None,
    max_chars: int | None = None,
    alternate_sign: bool = False,
) -> sp.csr_matrix:
    """Sparse (n_docs, n_features) float32 matrix: log(1 + tf) of hashed word n-grams, rows L2-normalised.

    Sublinear tf keeps one repeated boilerplate line from owning a document's
    vector; `max_chars` bounds the cost of pathological documents.
    """
    if n_features < 2 or n_features > 2**31 - 1:
        raise ValueError(f"n_features must be in [2, 2**31), got {n_features}")
    lo, hi = ngram_range
    if not 1 <= lo <= hi:
        raise ValueError(f"ngram_range must satisfy 1 <= low <= high, got {ngram_range}")
    if max_chars is not None and max_chars < 1:
        raise ValueError(f"max_chars must be positive or None, got {max_chars}")
    docs = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"document {i} is {type(t).__name__}, expected str")
        docs.append(t[:max_chars] if max_chars else t)
    vec = HashingVectorizer(
        n_features=n_features,
        ngram_range=(lo, hi),
        token_pattern=TOKEN_PATTERN,
        lowercase=True,
        stop_words=stop_words,
        alternate_sign=alternate_sign,
        norm=None,
        dtype=np.float32,
    )
    x = vec.transform(docs).tocsr()
    x.data = np.sign(x.data) * np.log1p(np.abs(x.data))
    return normalize(x, norm="l2", copy=False)
