"""Difficulty of labelled examples from short training runs: EL2N and forgetting counts.

EL2N (Paul et al. 2021) is the L2 error of the softmax output a few epochs into
training, averaged over several initialisations; forgetting counts (Toneva et
al. 2019) count correct -> incorrect flips over a run. Both need labels and a
training loop, so they suit labelled pools (classification sets, embeddings with
tags), not raw web text. The models are small scikit-learn MLPs trained with
`partial_fit`, one call per epoch, so the "early in training" point is explicit.
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier


def _check_xy(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(x, np.float64)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"features must be a non-empty 2-d array (n, d), got shape {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must be 1-d with one entry per row: features {x.shape}, labels {y.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"features row {int(np.flatnonzero(~np.all(np.isfinite(x), axis=1))[0])} has a NaN or infinite value")
    classes, codes = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise ValueError(f"labels must contain at least 2 classes, got {classes.tolist()}")
    return x, codes, classes


def _model(hidden: tuple[int, ...], batch_size: int, learning_rate: float, seed: int) -> MLPClassifier:
    if not hidden or any(h < 1 for h in hidden):
        raise ValueError(f"hidden must be a non-empty tuple of positive layer widths, got {hidden!r}")
    if batch_size < 1 or not learning_rate > 0:
        raise ValueError(f"batch_size must be >= 1 and learning_rate > 0, got {batch_size}, {learning_rate}")
    return MLPClassifier(
        hidden_layer_sizes=tuple(int(h) for h in hidden),
        batch_size=int(batch_size),
        learning_rate_init=float(learning_rate),
        random_state=int(seed),
        shuffle=True,
    )


def _epochs(model: MLPClassifier, x: np.ndarray, codes: np.ndarray, n_classes: int, epochs: int):
    """Yield the model after each epoch (one `partial_fit` pass over shuffled data)."""
    classes = np.arange(n_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(epochs):
            model.partial_fit(x, codes, classes=classes)
            yield model


def el2n_scores(
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_models: int = 5,
    epochs: int = 2,
    hidden: tuple[int, ...] = (64,),
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> np.ndarray:
    """Mean over `n_models` seeds of ||softmax(f(x)) - onehot(y)||_2 after `epochs` epochs; higher = harder.

    Paul et al. score at about a tenth of full training over ~10 inits; a couple
    of epochs of a small MLP is the analogue for feature matrices.
    """
    x, codes, classes = _check_xy(x, y)
    if n_models < 1 or epochs < 1:
        raise ValueError(f"n_models and epochs must be >= 1, got {n_models}, {epochs}")
    onehot = np.eye(classes.size)[codes]
    total = np.zeros(x.shape[0])
    for m in range(n_models):
        model = _model(hidden, min(batch_size, x.shape[0]), learning_rate, seed * 1000 + m)
        for _ in _epochs(model, x, codes, classes.size, epochs):  # trains `model` in place, epoch by epoch
            pass
        total += np.linalg.norm(model.predict_proba(x) - onehot, axis=1)
    return total / n_models


def forgetting_counts(
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 10,
    hidden: tuple[int, ...] = (64,),
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> np.ndarray:
    """Number of correct -> incorrect flips across epochs (checked after each epoch); inf if never learned.

    Toneva et al. rank never-learned examples as the most forgettable, hence inf;
    0 means learned once and never forgotten ("unforgettable", i.e. easy).
    """
    x, codes, classes = _check_xy(x, y)
    if epochs < 2:
        raise ValueError(f"forgetting needs at least 2 epochs, got {epochs}")
    start = _model(hidden, min(batch_size, x.shape[0]), learning_rate, seed)
    correct = np.zeros((epochs, x.shape[0]), bool)
    for e, model in enumerate(_epochs(start, x, codes, classes.size, epochs)):
        correct[e] = model.predict(x) == codes
    flips = np.count_nonzero(correct[:-1] & ~correct[1:], axis=0).astype(np.float64)
    flips[~correct.any(axis=0)] = np.inf
    return flips
