import numpy as np
import pytest

from thresher.metrics.difficulty import el2n_scores, forgetting_counts


def _noisy(seed=0, n=400, n_flip=40):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = (x[:, 0] > 0).astype(int)
    flip = rng.choice(n, n_flip, replace=False)
    y[flip] = 1 - y[flip]
    return x, y, flip


def test_el2n_ranks_mislabelled_examples_hardest():
    x, y, flip = _noisy()
    s = el2n_scores(x, y, n_models=3, epochs=5, learning_rate=0.01, seed=0)
    assert s.shape == (400,) and np.all((s >= 0) & (s <= np.sqrt(2) + 1e-9))
    clean = np.delete(s, flip)
    assert s[flip].mean() > clean.mean() + 0.3
    # Most of the 40 highest scores are the flipped labels.
    assert np.isin(np.argsort(-s)[:40], flip).mean() > 0.7


def test_el2n_deterministic_and_seed_sensitive():
    x, y, _ = _noisy()
    a = el2n_scores(x, y, n_models=2, epochs=2, seed=5)
    assert np.array_equal(a, el2n_scores(x, y, n_models=2, epochs=2, seed=5))
    assert not np.array_equal(a, el2n_scores(x, y, n_models=2, epochs=2, seed=6))


def test_el2n_handles_string_labels():
    x, y, _ = _noisy(n=100, n_flip=0)
    s = el2n_scores(x, np.where(y == 1, "cat", "dog"), n_models=1, epochs=1)
    assert s.shape == (100,) and np.all(np.isfinite(s))


def test_forgetting_counts():
    x, y, flip = _noisy()
    f = forgetting_counts(x, y, epochs=6, learning_rate=0.01, seed=0)
    assert f.shape == (400,)
    finite = f[np.isfinite(f)]
    assert np.all(finite == np.round(finite)) and finite.max() <= 5
    # Mislabelled points are never learned, or are forgotten once the model fits the clean rule.
    forgettable = f >= 1
    assert forgettable[flip].mean() > 0.9
    assert np.delete(forgettable, flip).mean() < 0.3
    assert np.array_equal(f, forgetting_counts(x, y, epochs=6, learning_rate=0.01, seed=0))


def test_validation():
    x, y, _ = _noisy(n=20, n_flip=0)
    with pytest.raises(ValueError, match="one entry per row"):
        el2n_scores(x, y[:-1])
    with pytest.raises(ValueError, match="at least 2 classes"):
        el2n_scores(x, np.zeros(20))
    with pytest.raises(ValueError, match="row 3"):
        x2 = x.copy()
        x2[3, 1] = np.nan
        el2n_scores(x2, y)
    with pytest.raises(ValueError, match="at least 2 epochs"):
        forgetting_counts(x, y, epochs=1)
    with pytest.raises(ValueError, match="hidden"):
        el2n_scores(x, y, hidden=())
