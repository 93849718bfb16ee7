"""Cheap stand-ins for the real training run, scored per validation row.

A proxy trains on a set of rows and returns, for every validation row, a numerator and a
denominator: the metric of a run under validation-row weights w is sum(w * num) / sum(w * den).
Keeping rows separate lets the bootstrap resample the validation set without retraining.

- `ClassifierProxy`: a scikit-learn classifier on embeddings (labelled data); metric accuracy.
Other proxies (the n-gram language model for unlabelled text lives with the CLI, which may
import `metrics`) only need a `metric` name and `score(train, seed)`.
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np

CLASSIFIERS = ("logistic", "ridge", "knn", "nearest_centroid")


class Proxy(Protocol):
    metric: str

    def score(self, train: Any, seed: int) -> tuple[np.ndarray, np.ndarray]: ...


def take(data: Any, idx: np.ndarray) -> Any:
    """Rows `idx` of a dataset: (x, y) arrays or an object array of texts."""
    if isinstance(data, tuple):
        return tuple(None if a is None else a[idx] for a in data)
    return data[idx]


def concat(a: Any, b: Any) -> Any:
    if isinstance(a, tuple):
        return tuple(None if u is None else np.concatenate([u, v]) for u, v in zip(a, b))
    return np.concatenate([a, b])


def size(data: Any) -> int:
    return len(data[0]) if isinstance(data, tuple) else len(data)


class ClassifierProxy:
    """Accuracy of a small classifier trained on embeddings + labels, per target row.

    model: "logistic" (multinomial logistic regression), "ridge" (RidgeClassifier, fastest),
        "knn" (5 nearest neighbours) or "nearest_centroid".
    Features are standardised with the target's mean and scale, so every run sees one geometry.
    """

    metric = "accuracy"

    def __init__(self, target_x: np.ndarray, target_y: np.ndarray, *, model: str = "logistic",
                 max_iter: int = 200, C: float = 1.0) -> None:
        if model not in CLASSIFIERS:
            raise ValueError(f"proxy model must be one of {CLASSIFIERS}, got {model!r}")
        if not C > 0 or max_iter < 1:
            raise ValueError("C must be positive and max_iter at least 1")
        tx = np.asarray(target_x, dtype=np.float64)
        self.mean_ = tx.mean(axis=0)
        self.scale_ = tx.std(axis=0)
        self.scale_[self.scale_ == 0] = 1.0
        self.target_x = (tx - self.mean_) / self.scale_
        self.target_y = np.asarray(target_y)
        self.model, self.max_iter, self.C = model, int(max_iter), float(C)

    def _estimator(self, seed: int):
        from sklearn.linear_model import LogisticRegression, RidgeClassifier
        from sklearn.neighbors import KNeighborsClassifier, NearestCentroid

        if self.model == "logistic":
            return LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=seed)
        if self.model == "ridge":
            return RidgeClassifier(alpha=1.0 / self.C)
        if self.model == "knn":
            return KNeighborsClassifier(n_neighbors=5)
        return NearestCentroid()

    def score(self, train: tuple[np.ndarray, np.ndarray], seed: int) -> tuple[np.ndarray, np.ndarray]:
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        x, y = train
        x = (np.asarray(x, dtype=np.float64) - self.mean_) / self.scale_
        n = self.target_y.shape[0]
        classes = np.unique(y)
        if classes.size < 2:  # nothing to learn: predict the only class seen
            correct = (self.target_y == classes[0]).astype(np.float64) if classes.size else np.zeros(n)
            return correct, np.ones(n)
        est = self._estimator(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(x, y)
        return (est.predict(self.target_x) == self.target_y).astype(np.float64), np.ones(n)
