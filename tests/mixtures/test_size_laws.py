"""Size laws: the exponent prior (MAP against the pilots' profile likelihood) and its calibration."""
from __future__ import annotations

import numpy as np
import pytest

from thresher.mixtures.performance import PerformanceModel
from thresher.mixtures.size_laws import check_prior, fit_size_exponent, observed_means, size_exponent_prior, size_weights

PILOTS = np.array([200.0, 400.0, 800.0])


def _curves(rows: int, sizes: np.ndarray, alpha: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    e = rng.uniform(0.7, 0.8, rows)
    a = rng.uniform(2.0, 4.0, rows)
    return e[:, None] - a[:, None] * sizes[None, :] ** -alpha + noise * rng.normal(size=(rows, sizes.size))


def _project(table: np.ndarray, sizes: np.ndarray, alpha: float, n: float) -> np.ndarray:
    return table @ size_weights(sizes, np.array([n]), "power", alpha)[0]


def test_prior_steadies_noisy_short_pilots():
    # Three noisy pilot sizes, projected 4x past the largest: the least-squares exponent wanders,
    # a prior centred on the truth (SD 0.05) does as well as knowing the exponent.
    errs_free, errs_prior, errs_known = [], [], []
    for trial in range(30):
        rng = np.random.default_rng(trial)
        clean = _curves(20, np.r_[PILOTS, 3200.0], 0.5, 0.0, rng)
        pilots = clean[:, :3] + 0.006 * rng.normal(size=(20, 3))
        for alpha, errs in ((fit_size_exponent(pilots, PILOTS), errs_free),
                            (fit_size_exponent(pilots, PILOTS, prior=(0.5, 0.05)), errs_prior)):
            errs.append(np.mean(np.abs(_project(pilots, PILOTS, alpha, 3200.0) - clean[:, 3])))
        errs_known.append(np.mean(np.abs(_project(pilots, PILOTS, 0.5, 3200.0) - clean[:, 3])))
    assert np.mean(errs_prior) < 0.85 * np.mean(errs_free)
    assert np.mean(errs_prior) < 1.05 * np.mean(errs_known)


def test_informative_data_overrule_a_wrong_prior():
    rng = np.random.default_rng(3)
    sizes = np.array([100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0])
    table = _curves(30, sizes, 0.5, 0.001, rng)
    assert fit_size_exponent(table, sizes) == pytest.approx(0.5, abs=0.03)
    # A prior at 0.9 with SD 0.1 is four SDs away; thirty clean six-point curves outweigh it.
    assert fit_size_exponent(table, sizes, prior=(0.9, 0.1)) == pytest.approx(0.5, abs=0.05)
    # A nearly flat prior gives the least-squares exponent; a pinpoint prior gives its mean.
    assert fit_size_exponent(table, sizes, prior=(0.9, 100.0)) == pytest.approx(fit_size_exponent(table, sizes), abs=0.015)
    assert fit_size_exponent(table, sizes, prior=(0.9, 1e-4)) == pytest.approx(0.9, abs=0.02)


def test_no_residual_freedom_returns_the_prior_mean():
    rng = np.random.default_rng(4)
    two = np.array([400.0, 800.0])
    assert fit_size_exponent(_curves(5, two, 0.5, 0.01, rng), two, prior=(0.62, 0.1)) == 0.62
    assert fit_size_exponent(np.zeros((0, 3)), PILOTS, prior=(0.62, 0.1)) == 0.62


def test_bad_priors_are_rejected():
    for bad in ((0.5, 0.0), (-0.5, 0.1), (np.nan, 0.1), (0.5,), "0.5", (5.0, 0.1)):
        with pytest.raises(ValueError, match="size prior"):
            check_prior(bad)
    with pytest.raises(ValueError, match="size prior"):
        PerformanceModel("p_linear", size_prior=(0.5, -1.0))
    with pytest.raises(ValueError, match="power law"):
        PerformanceModel("p_linear", size_law="log", size_prior=(0.5, 0.1))


def test_size_exponent_prior_from_sweeps():
    rng = np.random.default_rng(5)
    sizes = np.array([200.0, 400.0, 800.0, 1600.0, 3200.0])
    sweeps = [(_curves(15, sizes, a, 0.0005, rng), sizes) for a in (0.4, 0.5, 0.6)]
    mean, sd = size_exponent_prior(sweeps)
    assert mean == pytest.approx(0.5, abs=0.02)
    assert sd == pytest.approx(0.1, abs=0.02)
    with pytest.raises(ValueError, match="at least two sweeps"):
        size_exponent_prior(sweeps[:1])
    with pytest.raises(ValueError, match="sweep 1: needs three or more distinct sizes"):
        size_exponent_prior([sweeps[0], (sweeps[1][0][:, :2], sizes[:2])])
    with pytest.raises(ValueError, match="sweep 0: need a finite"):
        size_exponent_prior([(np.full((3, 5), np.nan), sizes), sweeps[1]])
    with pytest.raises(ValueError, match="identical"):
        size_exponent_prior([sweeps[0], sweeps[0]])


def test_observed_means_keep_mixtures_seen_at_every_size():
    w = np.array([[1, 0], [1, 0], [0, 1], [1, 0], [0.5, 0.5], [0, 1]], dtype=float)
    y = np.array([1.0, 3.0, 5.0, 7.0, 9.0, 11.0])
    g = np.array([0, 0, 0, 1, 1, 1])
    table = observed_means(w, y, g, 2)
    # [0.5, 0.5] was run at one size only and is dropped; rows follow np.unique's order.
    assert table.tolist() == [[5.0, 11.0], [2.0, 7.0]]
    # Weights that agree to nine decimals are one mixture.
    third = np.array([[1 / 3, 2 / 3], [0.3333333333, 0.6666666667]])
    assert observed_means(third, np.array([1.0, 2.0]), np.array([0, 1]), 2).tolist() == [[1.0, 2.0]]
    assert observed_means(np.zeros((0, 2)), np.zeros(0), np.zeros(0, int), 2).shape == (0, 2)


def _pilot_rows(p: np.ndarray, sizes: tuple[float, ...], seeds: int, alpha: float, noise: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    e, amp = 0.9 - 0.1 * p[:, 0], 2.0 + p[:, 1]
    rows, ys, ns = [], [], []
    for n in sizes:
        for _ in range(seeds):
            rows.append(p)
            ys.append(e - amp * n**-alpha + noise * rng.normal(size=len(p)))
            ns.append(np.full(len(p), n))
    return np.vstack(rows), np.concatenate(ys), np.concatenate(ns), (e, amp)


def test_model_with_a_prior_on_two_sizes_and_round_trip():
    p = np.array([[i / 4, 1 - i / 4] for i in range(5)])
    w, y, n, (e, amp) = _pilot_rows(p, (400.0, 800.0), 3, 0.5, 0.002, np.random.default_rng(6))
    plain = PerformanceModel("p_linear", n_boot=0).fit(w, y, sizes=n)
    assert plain.law_ == "log"
    model = PerformanceModel("p_linear", size_prior=(0.5, 0.05), n_boot=80).fit(w, y, sizes=n)
    assert model.law_ == "power" and model.size_alpha_ == 0.5
    # Two sizes leave the data no say in the exponent: the replicates spread like the prior.
    assert np.std(model.boot_alpha_) == pytest.approx(0.05, rel=0.3)
    assert model.predict(p, 6400.0) == pytest.approx(e - amp * 6400.0**-0.5, abs=0.01)
    restored = PerformanceModel.from_json(model.to_json())
    assert restored.size_prior == (0.5, 0.05)
    for got, want in zip(restored.predict_interval(p, 6400.0), model.predict_interval(p, 6400.0)):
        assert got == pytest.approx(want)
    with pytest.raises(ValueError, match="three or more pilot sizes, or a size prior"):
        PerformanceModel("p_linear", size_law="power", n_boot=0).fit(w, y, sizes=n)
    with pytest.raises(ValueError, match="two or more sizes"):
        PerformanceModel("p_linear", size_prior=(0.5, 0.05), n_boot=0).fit(w[:5], y[:5])
    # Model files written before the prior existed load without one.
    old = model.to_dict()
    del old["size_prior"]
    assert PerformanceModel.from_dict(old).size_prior is None


def test_prior_bootstrap_resamples_pilot_means():
    # Three sizes: each replicate refits the exponent on its own resampled pilot means against a
    # drawn prior mean, so the exponents vary, less than without the prior, and the far intervals
    # still contain the truth.
    grid = np.array([[i / 4, j / 4, 1 - (i + j) / 4] for i in range(5) for j in range(5 - i)])
    w, y, n, (e, amp) = _pilot_rows(grid, (100.0, 200.0, 400.0), 3, 0.5, 0.02, np.random.default_rng(7))
    free = PerformanceModel("p_quadratic", n_boot=60).fit(w, y, sizes=n)
    prior = PerformanceModel("p_quadratic", size_prior=(0.5, 0.05), n_boot=60).fit(w, y, sizes=n)
    assert np.std(prior.boot_alpha_) > 0.01
    assert np.std(prior.boot_alpha_) < 0.5 * np.std(free.boot_alpha_)
    _, lo, hi = prior.predict_interval(grid, 3200.0)
    truth = e - amp * 3200.0**-0.5
    assert np.mean((truth >= lo) & (truth <= hi)) >= 0.8


def test_prior_near_the_grid_floor_bootstraps():
    # Replicates draw the prior's mean; draws below the exponent grid must not break the fit.
    p = np.array([[i / 4, 1 - i / 4] for i in range(5)])
    w, y, n, _ = _pilot_rows(p, (100.0, 200.0, 400.0), 3, 0.05, 0.01, np.random.default_rng(9))
    model = PerformanceModel("p_linear", size_prior=(0.02, 0.05), n_boot=50).fit(w, y, sizes=n)
    assert min(model.boot_alpha_) >= 0.01


def test_prior_needs_mixtures_run_at_every_size():
    # RegMix-style pilots (fresh mixtures at each size) leave no pilot means to weigh the prior
    # against; the prior must not silently replace the data.
    rng = np.random.default_rng(8)
    w = rng.dirichlet(np.ones(3), size=60)
    n = np.repeat([100.0, 200.0, 400.0], 20)
    y = 0.9 - (1.0 + w[:, 0]) * n**-0.5 + 0.01 * rng.normal(size=60)
    assert PerformanceModel("p_linear", n_boot=0).fit(w, y, sizes=n).law_ == "power"
    with pytest.raises(ValueError, match="no mixture was run at all 3 sizes"):
        PerformanceModel("p_linear", size_prior=(0.5, 0.05), n_boot=0).fit(w, y, sizes=n)


def test_model_prior_uses_pilot_means_and_beats_least_squares_far_out():
    # Noisy three-size pilots with five seeds each, projected 8x: with a prior the exponent comes
    # from the mixtures' means weighed against it, and the far projection is closer to the truth.
    grid = np.array([[i / 4, j / 4, 1 - (i + j) / 4] for i in range(5) for j in range(5 - i)])
    errs_free, errs_prior, errs_known = [], [], []
    for trial in range(8):
        rng = np.random.default_rng(20 + trial)
        w, y, n, (e, amp) = _pilot_rows(grid, (100.0, 200.0, 400.0), 5, 0.5, 0.02, rng)
        truth = e - amp * 3200.0**-0.5
        free = PerformanceModel("p_quadratic", n_boot=0).fit(w, y, sizes=n)
        prior = PerformanceModel("p_quadratic", size_prior=(0.5, 0.05), n_boot=0).fit(w, y, sizes=n)
        errs_free.append(np.mean(np.abs(free.predict(grid, 3200.0) - truth)))
        errs_prior.append(np.mean(np.abs(prior.predict(grid, 3200.0) - truth)))
        prior.size_alpha_ = 0.5
        errs_known.append(np.mean(np.abs(prior.predict(grid, 3200.0) - truth)))
    assert np.mean(errs_prior) < 0.9 * np.mean(errs_free)
    assert np.mean(errs_prior) < 1.05 * np.mean(errs_known)
