"""MixtureOT against closed forms (1-D, translations, Gaussians) and its gradient against finite differences."""
from __future__ import annotations

import numpy as np
import ot
import pytest

from thresher.mixtures import transport_solvers as solvers
from thresher.mixtures.coresets import kmeans_coreset
from thresher.mixtures.transport import EmbeddingSet, MixtureOT, bures_wasserstein_matrix, gaussian_moments


def _pools(rng, dim=2, sizes=(40, 60, 50), shifts=(-1.0, 0.5, 2.0)):
    return [rng.normal(loc=s, size=(n, dim)) for s, n in zip(shifts, sizes)]


def _fd(model: MixtureOT, p: np.ndarray, d: np.ndarray, h: float) -> float:
    return (model.value(p + h * d) - model.value(p - h * d)) / (2 * h)


def test_one_dimensional_mixture_matches_sorted_quantile_formula():
    rng = np.random.default_rng(0)
    pools = _pools(rng, dim=1)
    target = rng.normal(0.3, 1.2, size=(70, 1))
    p = np.array([0.2, 0.5, 0.3])
    xs = np.concatenate([q[:, 0] for q in pools])
    a = np.concatenate([np.full(q.shape[0], pk / q.shape[0]) for q, pk in zip(pools, p)])
    expected = ot.wasserstein_1d(xs, target[:, 0], a, None, p=2)
    assert MixtureOT(pools, target, solver="exact").value(p) == pytest.approx(expected, rel=1e-10)
    # In 1-D every direction is +-1, so the sliced value is the same number.
    assert MixtureOT(pools, target, solver="sliced", n_projections=5).value(p) == pytest.approx(expected, rel=1e-10)


def test_equal_size_sorted_samples_closed_form():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 1))
    y = rng.exponential(size=(64, 1))
    expected = np.mean((np.sort(x[:, 0]) - np.sort(y[:, 0])) ** 2)
    halves = [x[:32], x[32:]]
    assert MixtureOT(halves, y, solver="exact").value([0.5, 0.5]) == pytest.approx(expected, rel=1e-10)


def test_translation_costs_squared_shift():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(120, 3))
    t = np.array([0.7, -0.2, 1.1])
    model = MixtureOT([x[:60], x[60:]], x + t, solver="exact")
    assert model.value([0.5, 0.5]) == pytest.approx(float(t @ t), rel=1e-9)


def test_gaussian_samples_approach_bures_wasserstein():
    rng = np.random.default_rng(3)
    m1, m2 = np.array([0.0, 0.0]), np.array([1.0, -0.5])
    c1 = np.array([[1.0, 0.3], [0.3, 0.5]])
    c2 = np.array([[0.4, -0.1], [-0.1, 1.5]])
    x = rng.multivariate_normal(m1, c1, size=1500)
    y = rng.multivariate_normal(m2, c2, size=1500)
    closed = float(ot.gaussian.bures_wasserstein_distance(m1, m2, c1, c2)) ** 2
    emd = MixtureOT([x[:700], x[700:]], y, solver="exact", max_per_pool=5000).value([700 / 1500, 800 / 1500])
    assert emd == pytest.approx(closed, rel=0.1)
    # Gelbrich: W2^2 of any two measures is at least the Gaussian bound of their moments.
    ex, ey = np.cov(x.T, bias=True), np.cov(y.T, bias=True)
    bound = float(ot.gaussian.bures_wasserstein_distance(x.mean(0), y.mean(0), ex, ey)) ** 2
    assert emd >= bound - 1e-9


def test_bures_wasserstein_matrix_matches_pot():
    rng = np.random.default_rng(4)
    means = rng.normal(size=(3, 4))
    covs = []
    for _ in range(3):
        a = rng.normal(size=(4, 4))
        covs.append(a @ a.T + 0.1 * np.eye(4))
    covs = np.stack(covs)
    mat = bures_wasserstein_matrix(means, covs)
    for i in range(3):
        for j in range(3):
            ref = float(ot.gaussian.bures_wasserstein_distance(means[i], means[j], covs[i], covs[j])) ** 2
            assert mat[i, j] == pytest.approx(ref, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("label_cost", [None, "gaussian", "onehot"])
def test_sinkhorn_gradient_matches_finite_differences(label_cost):
    rng = np.random.default_rng(5)
    pools = _pools(rng, dim=3)
    target = rng.normal(0.2, size=(80, 3))
    if label_cost:
        pools = [EmbeddingSet(x, labels=rng.integers(0, 3, x.shape[0])) for x in pools]
        target = EmbeddingSet(target, labels=rng.integers(0, 3, 80))
    model = MixtureOT(pools, target, solver="sinkhorn", reg=0.05, label_cost=label_cost or "gaussian")
    p = np.array([0.2, 0.5, 0.3])
    grad = model.grad(p)
    assert abs(grad.sum()) < 1e-12
    for d in (np.array([1.0, -1.0, 0.0]), np.array([0.3, 0.4, -0.7])):
        assert grad @ d == pytest.approx(_fd(model, p, d, 1e-5), rel=1e-5, abs=1e-9)


def test_sinkhorn_gradient_at_the_boundary_is_one_sided_derivative():
    rng = np.random.default_rng(6)
    model = MixtureOT(_pools(rng), rng.normal(size=(60, 2)), solver="sinkhorn", reg=0.1)
    p = np.array([0.0, 0.6, 0.4])
    d = np.array([1.0, -0.5, -0.5])
    h = 1e-6
    one_sided = (model.value(p + h * d) - model.value(p)) / h
    assert model.grad(p) @ d == pytest.approx(one_sided, rel=1e-3)


@pytest.mark.parametrize("solver", ["exact", "sliced"])
def test_lp_subgradients_match_finite_differences(solver):
    rng = np.random.default_rng(7)
    model = MixtureOT(_pools(rng, dim=3), rng.normal(size=(90, 3)), solver=solver, n_projections=50)
    p = np.array([0.25, 0.45, 0.3])
    d = np.array([1.0, -2.0, 1.0])
    # Piecewise linear in p: a small step stays on one piece, so the match is tight.
    assert model.grad(p) @ d == pytest.approx(_fd(model, p, d, 1e-7), rel=1e-3)


def test_sinkhorn_divergence_vanishes_on_the_target_and_tends_to_emd():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(100, 2))
    same = MixtureOT([x[:50], x[50:]], x, solver="sinkhorn", reg=0.05)
    assert abs(same.value([0.5, 0.5])) < 1e-8
    pools = _pools(rng)
    y = rng.normal(size=(80, 2))
    emd = MixtureOT(pools, y, solver="exact").value([0.3, 0.3, 0.4])
    fine = MixtureOT(pools, y, solver="sinkhorn", reg=0.002).value([0.3, 0.3, 0.4])
    coarse = MixtureOT(pools, y, solver="sinkhorn", reg=0.2).value([0.3, 0.3, 0.4])
    assert abs(fine - emd) < abs(coarse - emd)
    assert fine == pytest.approx(emd, rel=0.05)


def test_value_is_deterministic_and_vertex_values_are_single_pools():
    rng = np.random.default_rng(9)
    pools, y = _pools(rng), rng.normal(size=(50, 2))
    a = MixtureOT(pools, y)
    b = MixtureOT(pools, y)
    p = np.array([0.1, 0.6, 0.3])
    assert a.value(p) == b.value(p) == a.value(p.copy())
    # eps scales with the mean cost over all pools, so compare vertices with the exact solver.
    exact = MixtureOT(pools, y, solver="exact")
    single = MixtureOT([pools[1], pools[0]], y, solver="exact").value([1.0, 0.0])
    assert exact.vertex_values()[1] == pytest.approx(single, rel=1e-10)


def test_coreset_keeps_mass_and_labels_and_approximates_value():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(600, 2))
    labels = (x[:, 0] > 0).astype(int)
    centres, mass, lab = kmeans_coreset(x, 60, labels=labels)
    assert centres.shape[0] <= 60
    assert mass.sum() == pytest.approx(1.0)
    assert set(lab) == {0, 1}
    pools = [x[:300], x[300:] + 1.0]
    y = rng.normal(0.5, size=(200, 2))
    full = MixtureOT(pools, y, solver="exact", max_per_pool=1000).value([0.5, 0.5])
    small = MixtureOT(pools, y, solver="exact", max_per_pool=100, max_target=1000)
    assert small.n_points == (200, 200)
    assert small.value([0.5, 0.5]) == pytest.approx(full, rel=0.05)


def test_bad_inputs_raise_clear_errors():
    rng = np.random.default_rng(11)
    pools, y = _pools(rng), rng.normal(size=(30, 2))
    model = MixtureOT(pools, y)
    with pytest.raises(ValueError, match="sum to 1"):
        model.value([0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="3 pools"):
        model.value([0.5, 0.5])
    with pytest.raises(ValueError, match="dimension"):
        MixtureOT(pools, rng.normal(size=(30, 3)))
    with pytest.raises(ValueError, match="labels given"):
        MixtureOT([EmbeddingSet(pools[0], labels=np.zeros(40))] + pools[1:], y)
    with pytest.raises(ValueError, match="solver"):
        MixtureOT(pools, y, solver="magic")
    with pytest.raises(ValueError, match="non-finite"):
        EmbeddingSet(np.array([[0.0, np.nan]]), name="vendor")


def test_solver_potentials_satisfy_duality():
    rng = np.random.default_rng(12)
    c = ot.dist(rng.normal(size=(30, 2)), rng.normal(size=(20, 2)))
    a = rng.random(30)
    a[:5] = 0.0
    a /= a.sum()
    b = np.full(20, 1 / 20)
    sol = solvers.exact(c, a, b)
    assert sol.value == pytest.approx(a @ sol.f + b @ sol.g)
    assert (sol.f[:, None] + sol.g[None, :] - c).max() < 1e-9
    moments = gaussian_moments(rng.normal(size=(1, 3)), np.ones(1), diagonal=False)
    assert np.all(np.linalg.eigvalsh(moments[1]) >= 0)


def test_loo_linear_error_matches_refitting():
    from thresher.mixtures.transport import _loo_linear_error

    rng = np.random.default_rng(11)
    x = rng.normal(size=24)
    y = 2.0 - 0.7 * x + rng.normal(scale=0.3, size=24)
    groups = np.repeat([0, 1], 12)
    brute = []
    for i in range(24):
        keep = (groups == groups[i]) & (np.arange(24) != i)
        b, a = np.polyfit(x[keep], y[keep], 1)
        brute.append(abs(y[i] - (a + b * x[i])))
    assert _loo_linear_error(x, y, groups) == pytest.approx(np.mean(brute), rel=1e-10)


def test_label_weight_is_chosen_from_the_pilot_metric():
    from thresher.mixtures.transport import select_label_weight

    # Pools with the same features per class but different class balance: a metric driven by
    # the class balance alone should prefer a heavy label cost over a light one.
    rng = np.random.default_rng(12)
    centres = rng.normal(scale=0.6, size=(3, 2))

    def draw(props, n):
        lab = rng.choice(3, size=n, p=props)
        return EmbeddingSet(centres[lab] + rng.normal(scale=1.0, size=(n, 2)), labels=lab)

    pools = [draw([0.8, 0.1, 0.1], 60), draw([0.1, 0.8, 0.1], 60), draw([0.1, 0.1, 0.8], 60)]
    target = draw([1 / 3, 1 / 3, 1 / 3], 90)
    grid = np.array([[i, j, 4 - i - j] for i in range(5) for j in range(5 - i)], float) / 4
    props = grid @ np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    metric = 0.9 - 0.5 * np.abs(props - 1 / 3).sum(axis=1)
    choice = select_label_weight(pools, target, grid, metric, candidates=(0.05, 20.0), reg=0.1)
    assert choice.label_weight == 20.0
    assert choice.scores[20.0] < choice.scores[0.05]
    assert choice.ot.label_weight == 20.0
    with pytest.raises(ValueError, match="one finite metric value"):
        select_label_weight(pools, target, grid, metric[:-1])
    with pytest.raises(ValueError, match="positive"):
        select_label_weight(pools, target, grid, metric, candidates=(0.0, 1.0))


def test_overrelaxed_sinkhorn_reaches_the_same_fixed_point_in_fewer_steps():
    rng = np.random.default_rng(13)
    # Two far-apart clusters with mismatched masses: plain Sinkhorn crawls here.
    x = np.vstack([rng.normal(size=(60, 2)), rng.normal(loc=4.0, size=(60, 2))])
    y = np.vstack([rng.normal(size=(30, 2)), rng.normal(loc=4.0, size=(90, 2))])
    cost = ot.dist(x, y)
    a = np.full(120, 1 / 120)
    b = np.full(120, 1 / 120)
    eps = 0.05 * cost.mean()
    plain = solvers.sinkhorn(cost, a, b, eps, overrelax=1.0)
    fast = solvers.sinkhorn(cost, a, b, eps, overrelax=1.5)
    assert fast.value == pytest.approx(plain.value, rel=1e-9)
    assert np.allclose(fast.f - fast.f.mean(), plain.f - plain.f.mean(), atol=1e-6 * np.abs(plain.f).max())
    assert fast.iterations < plain.iterations / 2
    plan = ot.sinkhorn(a, b, cost, eps, method="sinkhorn_log", stopThr=1e-12, numItermax=100000)
    kl = float(np.sum(plan * np.log(np.maximum(plan, 1e-300) / np.outer(a, b))))
    assert fast.value == pytest.approx(float(np.sum(plan * cost)) + eps * kl, rel=1e-6)
    # An over-relaxation that overshoots falls back to plain steps and still converges.
    wild = solvers.sinkhorn(cost, a, b, eps, overrelax=1.95, max_iter=20000)
    assert wild.value == pytest.approx(plain.value, rel=1e-8)
    with pytest.raises(ValueError, match="overrelax"):
        solvers.sinkhorn(cost, a, b, eps, overrelax=2.0)


def test_cli_fit_chooses_the_label_weight_from_pilot_runs(tmp_path):
    import csv
    import json

    from thresher.jobs.cli import main

    rng = np.random.default_rng(14)
    xs = {n: rng.normal(loc=s, size=(40, 2)) for n, s in (("web", -1.0), ("code", 0.5), ("books", 2.0))}
    labs = {n: rng.choice(3, size=40, p=p) for n, p in (("web", [0.8, 0.1, 0.1]), ("code", [0.1, 0.8, 0.1]), ("books", [0.1, 0.1, 0.8]))}
    for n in xs:
        np.savez(tmp_path / f"{n}.npz", x=xs[n], labels=labs[n])
    tx, tl = rng.normal(loc=0.3, size=(50, 2)), rng.integers(0, 3, 50)
    np.savez(tmp_path / "val.npz", x=tx, labels=tl)
    truth = MixtureOT({n: EmbeddingSet(xs[n], labels=labs[n]) for n in xs}, EmbeddingSet(tx, labels=tl),
                      label_cost="onehot", label_weight=4.0)
    grid = [np.array([i, j, 5 - i - j]) / 5 for i in range(6) for j in range(6 - i)]
    with (tmp_path / "pilots.csv").open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["weight_web", "weight_code", "weight_books", "accuracy"])
        for w in grid:
            out.writerow([*w, 0.9 - 0.01 * truth.value(w)])
    pools = ["--pools", *(f"{n}={tmp_path / n}.npz" for n in xs), "--target", str(tmp_path / "val.npz")]
    args = ["mix", "fit", str(tmp_path / "pilots.csv"), "--value-column", "accuracy", "--form", "linear_ot",
            "--label-cost", "onehot", "--label-weight", "auto", *pools, "--out", str(tmp_path / "m.json"), "--n-boot", "0"]
    assert main(args) == 0
    assert json.loads((tmp_path / "m.json").read_text())["ot"]["label_weight"] == 4.0
    assert main(["mix", "ot", *pools, "--label-weight", "auto", "--out", str(tmp_path / "o.json")]) == 2
