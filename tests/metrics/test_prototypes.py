import numpy as np
import pytest

from thresher.metrics.prototypes import fit_prototypes, nearest_centroid, prototype_distance, select


def _blobs(seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    x = np.repeat(centers, 40, axis=0) + rng.normal(0, 0.15, (120, 3))
    return x, np.repeat(np.arange(3), 40)


def test_distance_is_cosine_to_the_nearest_centroid():
    x, truth = _blobs()
    p = fit_prototypes(x, 3, seed=0)
    # The three blobs are recovered exactly (up to label names).
    assert len({(t, c) for t, c in zip(truth, p.cluster)}) == 3
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    expected = 1 - np.max(u @ p.centroids.T, axis=1)
    assert np.allclose(p.distance, expected)
    assert np.allclose(np.linalg.norm(p.centroids, axis=1), 1.0)
    # Scale does not matter: cosine ignores norms.
    assert np.allclose(prototype_distance(3 * x, 3, seed=0), p.distance)


def test_outliers_are_hard():
    x, _ = _blobs()
    x = np.vstack([x, [[1.0, 1.0, 1.0]]])  # equidistant from all prototypes
    d = prototype_distance(x, 3, seed=0)
    assert d[-1] == d.max()


def test_deterministic_under_seed():
    x, _ = _blobs()
    assert np.array_equal(prototype_distance(x, 5, seed=1), prototype_distance(x, 5, seed=1))


def test_nearest_centroid_checks_dims():
    with pytest.raises(ValueError, match="dim"):
        nearest_centroid(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="row 1"):
        prototype_distance(np.array([[1.0, 0], [np.nan, 1]]), 1)
    with pytest.raises(ValueError, match="n_clusters"):
        prototype_distance(np.ones((3, 2)), 4)


def test_select_hard_easy_and_ties():
    s = np.array([0.1, 0.9, 0.5, 0.5, 0.7, 0.2])
    assert select(s, 0.5, "hard").tolist() == [1, 2, 4]
    assert select(s, 0.5, "easy").tolist() == [0, 2, 5]  # tie 2/3 broken by index
    assert select(s, 1.0, "hard").tolist() == list(range(6))
    assert select(s, 0.01, "easy").tolist() == [0]  # never empty


def test_select_with_clusters_keeps_each_cluster_in_proportion():
    rng = np.random.default_rng(0)
    clusters = np.repeat([0, 1, 2], [60, 30, 10])
    # Cluster 0 is all hard, so unbalanced selection would take only from it.
    scores = np.r_[rng.uniform(0.8, 1.0, 60), rng.uniform(0, 0.2, 30), rng.uniform(0.3, 0.4, 10)]
    kept = select(scores, 0.3, "hard", clusters)
    assert np.bincount(clusters[kept], minlength=3).tolist() == [18, 9, 3]
    unbalanced = select(scores, 0.3, "hard")
    assert np.bincount(clusters[unbalanced], minlength=3).tolist() == [30, 0, 0]
    # Within a cluster, the hardest members are the ones kept.
    in1 = kept[clusters[kept] == 1]
    assert set(in1) == set(np.flatnonzero(clusters == 1)[np.argsort(-scores[60:90])[:9]])


def test_select_rounding_hits_the_exact_total():
    clusters = np.repeat([0, 1, 2], [5, 5, 5])
    kept = select(np.arange(15.0), 0.2, "easy", clusters)
    assert kept.size == 3 and np.bincount(clusters[kept]).tolist() == [1, 1, 1]
    kept = select(np.arange(15.0), 0.3, "easy", clusters)  # 4.5 -> 4 (round half to even)
    assert kept.size == 4


def test_select_validates():
    with pytest.raises(ValueError, match="fraction"):
        select(np.ones(3), 0.0)
    with pytest.raises(ValueError, match="keep"):
        select(np.ones(3), 0.5, keep="middle")
    with pytest.raises(ValueError, match="one entry per score"):
        select(np.ones(3), 0.5, clusters=np.ones(2))
    with pytest.raises(ValueError, match="row 1 is NaN"):
        select(np.array([1.0, np.nan]), 0.5)
