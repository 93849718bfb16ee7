"""DCLM-style quality classifier: reference pool vs random raw documents.

DCLM's best filter is a fastText bigram classifier with curated text as positives
and random Common Crawl as negatives; documents are ranked by P(positive). We keep
the recipe (hashed word uni+bigrams, a linear model, the positive probability as
the score) with scikit-learn's logistic regression, so no fastText binary or
weights are needed, and save the model as JSON.
"""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from thresher.metrics.files import FormatError, JsonFormat, MiB, read_limited, write_bytes_atomic
from thresher.metrics.hashing import hashed_ngrams

FORMAT = JsonFormat("thresher.quality_classifier", 1, "quality classifier", max_bytes=256 * MiB, version_field=True)
MAX_FEATURES = 1 << 26  # hash buckets a saved model may declare (its coefficients are allocated densely)


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()).decode("ascii")


def _unb64(s: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)


class QualityClassifier:
    """Logistic regression on hashed word n-grams; score = P(document looks like the reference pool).

    Parameters
    ----------
    n_features: hash buckets (2**20 as in the fastText-style bigram models; fewer saves memory).
    ngram_range: word n-gram orders; (1, 2) is DCLM's unigram+bigram setting.
    C: inverse L2 strength of the logistic regression.
    max_chars: documents are truncated to this many characters before hashing.
    validation_fraction: held-out share (stratified) on which AUC and accuracy are reported.
    seed: controls the validation split and the solver.
    """

    def __init__(
        self,
        n_features: int = 2**20,
        ngram_range: tuple[int, int] = (1, 2),
        C: float = 4.0,
        max_iter: int = 1000,
        max_chars: int | None = 20_000,
        validation_fraction: float = 0.1,
        seed: int = 0,
    ):
        if not C > 0:
            raise ValueError(f"C must be positive, got {C}")
        if max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter}")
        if not 0 <= validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
        self.n_features = int(n_features)
        self.ngram_range = (int(ngram_range[0]), int(ngram_range[1]))
        self.C = float(C)
        self.max_iter = int(max_iter)
        self.max_chars = None if max_chars is None else int(max_chars)
        self.validation_fraction = float(validation_fraction)
        self.seed = int(seed)

    def features(self, texts: Sequence[str]):
        return hashed_ngrams(texts, self.n_features, self.ngram_range, max_chars=self.max_chars)

    def fit(self, positives: Sequence[str], negatives: Sequence[str]) -> QualityClassifier:
        """Train; `validation_` holds held-out AUC and accuracy when a validation share is set."""
        positives, negatives = list(positives), list(negatives)
        if len(positives) < 2 or len(negatives) < 2:
            raise ValueError(f"need at least 2 positive and 2 negative documents, got {len(positives)} and {len(negatives)}")
        x = self.features(positives + negatives)
        y = np.r_[np.ones(len(positives), int), np.zeros(len(negatives), int)]
        rng = np.random.default_rng(self.seed)
        val = np.zeros(y.size, bool)
        if self.validation_fraction > 0:
            for cls in (0, 1):
                idx = np.flatnonzero(y == cls)
                n_val = int(round(self.validation_fraction * idx.size))
                n_val = min(n_val, idx.size - 1)
                val[rng.permutation(idx)[:n_val]] = True
        lr = LogisticRegression(C=self.C, solver="liblinear", max_iter=self.max_iter, class_weight="balanced", random_state=self.seed)
        lr.fit(x[~val], y[~val])
        self.coef_ = lr.coef_.ravel().astype(np.float32)
        self.intercept_ = float(lr.intercept_[0])
        self.n_train_ = {"positives": int(((y == 1) & ~val).sum()), "negatives": int(((y == 0) & ~val).sum())}
        self.validation_: dict[str, float] | None = None
        if val.any() and len(set(y[val])) == 2:
            p = self._proba(x[val])
            self.validation_ = {
                "auc": float(roc_auc_score(y[val], p)),
                "accuracy": float(np.mean((p >= 0.5) == (y[val] == 1))),
                "n": int(val.sum()),
            }
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise RuntimeError("QualityClassifier is not fitted; call fit(positives, negatives) or QualityClassifier.load(path)")

    def _proba(self, x) -> np.ndarray:
        z = np.asarray(x @ self.coef_, float) + self.intercept_
        return 1.0 / (1.0 + np.exp(-z))

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        self._check_fitted()
        return np.asarray(self.features(texts) @ self.coef_, float) + self.intercept_

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """P(positive) per document, shape (n,)."""
        self._check_fitted()
        return self._proba(self.features(texts))

    # ---- the model file: JSON, read and written only here ------------------------------------------
    def to_dict(self) -> dict:
        """The saved form: base64 little-endian arrays of the non-zero coefficients (no pickle)."""
        self._check_fitted()
        nz = np.flatnonzero(self.coef_).astype(np.int32)
        return {
            **FORMAT.stamp(),
            "params": {
                "n_features": self.n_features,
                "ngram_range": list(self.ngram_range),
                "C": self.C,
                "max_iter": self.max_iter,
                "max_chars": self.max_chars,
                "validation_fraction": self.validation_fraction,
                "seed": self.seed,
            },
            "intercept": self.intercept_,
            "coef_index": _b64(nz),
            "coef_value": _b64(self.coef_[nz].astype(np.float32)),
            "n_train": self.n_train_,
            "validation": self.validation_,
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_dict()).encode()

    @classmethod
    def from_dict(cls, doc: Mapping, source: str = "classifier") -> QualityClassifier:
        """Rebuild a saved classifier; a FormatError naming `source` when `doc` is not one."""
        try:
            FORMAT.check(doc, source)
            p = doc["params"]
            if not 0 < int(p["n_features"]) <= MAX_FEATURES:
                raise ValueError(f"n_features {p['n_features']} is outside 1..{MAX_FEATURES}")
            model = cls(
                n_features=p["n_features"],
                ngram_range=tuple(p["ngram_range"]),
                C=p["C"],
                max_iter=p["max_iter"],
                max_chars=p["max_chars"],
                validation_fraction=p["validation_fraction"],
                seed=p["seed"],
            )
            idx = _unb64(doc["coef_index"], "int32")
            val = _unb64(doc["coef_value"], "float32")
            if idx.size != val.size or (idx.size and (idx.min() < 0 or idx.max() >= model.n_features)):
                raise ValueError("coefficient arrays are inconsistent")
            coef = np.zeros(model.n_features, np.float32)
            coef[idx] = val
            model.coef_ = coef
            model.intercept_ = float(doc["intercept"])
            model.n_train_ = doc.get("n_train", {})
            model.validation_ = doc.get("validation")
        except FormatError as exc:
            raise FormatError(source, f"not a readable quality classifier ({exc.reason})") from exc
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise FormatError(source, f"not a readable quality classifier ({exc})") from exc
        return model

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "classifier") -> QualityClassifier:
        try:
            doc = FORMAT.loads(data, source)
        except FormatError as exc:
            raise FormatError(source, f"not a readable quality classifier ({exc.reason})") from exc
        return cls.from_dict(doc, source)

    def save(self, path: str | PathLike) -> Path:
        """Write the model file atomically (see `to_dict`)."""
        return write_bytes_atomic(self.to_bytes(), path)

    @classmethod
    def load(cls, path: str | PathLike) -> QualityClassifier:
        data = read_limited(path, FORMAT.max_bytes, FORMAT.what, missing="train one with `thresher classifier train`")
        return cls.from_bytes(data, str(path))
