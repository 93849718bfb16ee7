"""Performance models: known coefficients recovered, size projection formulas, gradients, JSON round trip."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.reference_data import reference_data_dir
from thresher.mixtures.mixture_observations import MixtureObservations, read_mixture_csv, read_regmix, write_mixture_csv
from thresher.mixtures.performance import PerformanceModel
from thresher.mixtures.performance_forms import FORMS
from thresher.mixtures.transport import MixtureOT


def _grid(m: int, steps: int) -> np.ndarray:
    pts = [c for c in np.ndindex(*(steps + 1,) * (m - 1)) if sum(c) <= steps]
    return np.array([[*c, steps - sum(c)] for c in pts], dtype=float) / steps


@pytest.fixture(scope="module")
def mixture_ot() -> MixtureOT:
    rng = np.random.default_rng(0)
    pools = [rng.normal(loc=s, size=(40, 2)) for s in (-1.0, 0.5, 2.0)]
    return MixtureOT(pools, rng.normal(0.4, size=(60, 2)), reg=0.1)


def test_linear_ot_recovers_coefficients(mixture_ot):
    p = _grid(3, 6)
    o = mixture_ot.values(p)
    y = 0.9 - 0.3 * o
    model = PerformanceModel("linear_ot", ot=mixture_ot, alpha=0.0, n_boot=0).fit(p, y)
    assert model.stage1_[0].coef[0] == pytest.approx(-0.3, rel=1e-8)
    assert model.stage1_[0].intercept == pytest.approx(0.9, rel=1e-8)
    assert model.predict(p[:4]) == pytest.approx(y[:4], rel=1e-8)


def test_two_sizes_use_projektors_log_projection():
    p = _grid(3, 5)
    rng = np.random.default_rng(1)
    y0 = 0.6 + 0.2 * p[:, 0] + 0.01 * rng.normal(size=len(p))
    y1 = 0.7 + 0.1 * p[:, 1] + 0.01 * rng.normal(size=len(p))
    weights = np.vstack([p, p])
    sizes = np.r_[np.full(len(p), 1000.0), np.full(len(p), 1500.0)]
    model = PerformanceModel("p_linear", alpha=0.0, n_boot=0).fit(weights, np.r_[y0, y1], sizes=sizes)
    assert model.law_ == "log"
    q = p[:3]
    l0 = model.stage1_[0].predict(q, np.zeros(3))
    l1 = model.stage1_[1].predict(q, np.zeros(3))
    n = 10000.0
    expected = (np.log(n / 1000) * l1 - np.log(n / 1500) * l0) / np.log(1500 / 1000)
    assert model.predict(q, n) == pytest.approx(expected, rel=1e-10)
    assert model.predict(q, 1000.0) == pytest.approx(l0, rel=1e-10)


def test_three_sizes_fit_a_power_law_in_size():
    p = _grid(3, 4)
    sizes = [100.0, 200.0, 400.0, 800.0]
    e = 0.9 - 0.1 * p[:, 0]
    amp = 1.5 + p[:, 1]
    rows, ys, ns = [], [], []
    for n in sizes:
        rows.append(p)
        ys.append(e - amp * n**-0.4)
        ns.append(np.full(len(p), n))
    model = PerformanceModel("p_quadratic", alpha=0.0, n_boot=0).fit(np.vstack(rows), np.concatenate(ys), sizes=np.concatenate(ns))
    assert model.law_ == "power"
    assert model.size_alpha_ == pytest.approx(0.4, rel=0.03)
    assert model.predict(p, 10000.0) == pytest.approx(e - amp * 10000.0**-0.4, abs=2e-3)


def test_mixing_law_recovers_its_own_curve():
    p = _grid(3, 8)
    y = 2.0 + np.exp(0.3 - 1.2 * p[:, 0] + 0.5 * p[:, 1])
    model = PerformanceModel("mixing_law", n_boot=0).fit(p, y)
    assert model.predict(p) == pytest.approx(y, abs=2e-3)


@pytest.mark.parametrize("form", ["linear_ot", "pq_ot", "p_linear", "p_quadratic", "mixing_law", "mixing_law_log"])
def test_gradient_matches_finite_differences(form, mixture_ot):
    p = _grid(3, 6)
    rng = np.random.default_rng(2)
    o = mixture_ot.values(p)
    y = 0.8 - 0.2 * o + 0.1 * p[:, 0] * p[:, 1] + 0.005 * rng.normal(size=len(p))
    sizes = np.r_[np.full(len(p), 500.0), np.full(len(p), 900.0)]
    y2 = np.r_[y, y + 0.03 + 0.02 * p[:, 2]]
    model = PerformanceModel(form, ot=mixture_ot, n_boot=0).fit(np.vstack([p, p]), y2, sizes=sizes)
    q = np.array([0.3, 0.45, 0.25])
    d = np.array([1.0, -0.4, -0.6])
    h = 1e-5
    fd = (model.predict(q + h * d, 2000.0)[0] - model.predict(q - h * d, 2000.0)[0]) / (2 * h)
    assert model.gradient(q, 2000.0) @ d == pytest.approx(fd, rel=1e-4, abs=1e-8)
    value, grad = model.value_and_gradient(q, 2000.0)
    assert value == pytest.approx(model.predict(q, 2000.0)[0], rel=1e-12)
    assert grad == pytest.approx(model.gradient(q, 2000.0), rel=1e-12, abs=1e-14)


def test_value_and_gradient_solve_the_transport_once():
    class CountingOT:
        def __init__(self):
            self.solves = 0

        def value(self, p):
            self.solves += 1
            return float(p @ [1.0, 2.0, 4.0])

        def value_and_grad(self, p):
            self.solves += 1
            return float(p @ [1.0, 2.0, 4.0]), np.array([1.0, 2.0, 4.0]) - 7.0 / 3

    p = _grid(3, 4)
    counting = CountingOT()
    model = PerformanceModel("linear_ot", ot=counting, n_boot=0).fit(p, 0.9 - 0.1 * (p @ [1.0, 2.0, 4.0]))
    counting.solves = 0
    model.value_and_gradient(np.array([0.2, 0.3, 0.5]))
    assert counting.solves == 1


@pytest.mark.parametrize("form", FORMS)
def test_json_round_trip_predicts_the_same(form, mixture_ot, tmp_path):
    p = _grid(3, 6)
    rng = np.random.default_rng(3)
    y = 0.5 + 0.2 * p[:, 0] - 0.1 * p[:, 1] ** 2 + 0.01 * rng.normal(size=len(p))
    model = PerformanceModel(form, ot=mixture_ot, n_boot=8, goal="max").fit(p, y, pools=["a", "b", "c"])
    path = model.save(tmp_path / "model.json")
    text = path.read_text()
    assert "pickle" not in text
    again = PerformanceModel.load(path, ot=mixture_ot)
    q = p[::5]
    assert again.predict(q) == pytest.approx(model.predict(q), rel=1e-12)
    assert again.pools == ["a", "b", "c"] and again.goal == "max"
    mean, lo, hi = again.predict_interval(q)
    assert np.all(lo <= mean + 1e-9) and np.all(mean <= hi + 1e-9)
    assert json.loads(text)["form"] == form


def test_interval_widens_with_noise():
    p = _grid(3, 8)
    rng = np.random.default_rng(4)
    clean = 0.5 + 0.3 * p[:, 0]
    widths = []
    for noise in (0.001, 0.05):
        y = clean + noise * rng.normal(size=len(p))
        _, lo, hi = PerformanceModel("p_linear", n_boot=100).fit(p, y).predict_interval(p[:5])
        widths.append(np.mean(hi - lo))
    assert widths[1] > 10 * widths[0]


def _far_coverage(model: PerformanceModel, p: np.ndarray, n: float, truth: np.ndarray) -> tuple[float, float]:
    _, lo, hi = model.predict_interval(p, n)
    return float(np.mean((truth >= lo) & (truth <= hi))), float(np.mean(hi - lo))


def test_power_law_intervals_carry_the_size_exponent():
    # Noisy pilots at 100/200/400, projected 8x past the largest: the exponent is uncertain, so
    # replicates that refit it must give wider intervals that cover the truth far more often.
    p = _grid(3, 4)
    e, amp, true_alpha, far = 0.9 - 0.1 * p[:, 0], 1.0 + p[:, 1], 0.5, 3200.0
    truth = e - amp * far**-true_alpha
    refit_cov, fixed_cov, alphas = [], [], []
    for trial in range(6):
        rng = np.random.default_rng(100 + trial)
        rows, ys, ns = [], [], []
        for n in (100.0, 200.0, 400.0):
            for _ in range(3):  # three training seeds, one row each
                rows.append(p)
                ys.append(e - amp * n**-true_alpha + 0.01 * rng.normal(size=len(p)))
                ns.append(np.full(len(p), n))
        model = PerformanceModel("p_quadratic", n_boot=60, seed=trial).fit(
            np.vstack(rows), np.concatenate(ys), sizes=np.concatenate(ns)
        )
        assert len(model.boot_alpha_) == 60
        alphas.append(np.std(model.boot_alpha_))
        cov, width = _far_coverage(model, p, far, truth)
        refit_cov.append(cov)
        restored = PerformanceModel.from_json(model.to_json())
        assert restored.boot_alpha_ == pytest.approx(model.boot_alpha_)
        assert _far_coverage(restored, p, far, truth) == pytest.approx((cov, width))
        model.boot_alpha_ = []  # the old behaviour: every replicate reuses the point exponent
        cov_fixed, width_fixed = _far_coverage(model, p, far, truth)
        fixed_cov.append(cov_fixed)
        assert width > width_fixed
    assert min(alphas) > 0.01
    assert np.mean(refit_cov) >= 0.75
    assert np.mean(refit_cov) > np.mean(fixed_cov) + 0.2


def test_mixture_intervals_cover_what_the_form_misses():
    # A surface p_linear cannot follow: the mean interval is tight around the wrong plane for
    # individual mixtures, the mixture interval adds their residuals and covers them.
    p = _grid(3, 8)
    rng = np.random.default_rng(5)
    truth = 0.6 + 0.2 * p[:, 0] + 0.03 * np.sin(9.0 * p[:, 1])
    y = np.concatenate([truth + 0.002 * rng.normal(size=len(p)) for _ in range(3)])  # three seeds
    model = PerformanceModel("p_linear", n_boot=200).fit(np.vstack([p, p, p]), y)
    _, lo_m, hi_m = model.predict_interval(p, kind="mean")
    _, lo, hi = model.predict_interval(p, kind="mixture")
    assert model.misfit_.shape == (len(p),)  # one residual per distinct mixture, seeds averaged
    inside_mean = np.mean((truth >= lo_m) & (truth <= hi_m))
    inside = np.mean((truth >= lo) & (truth <= hi))
    assert inside >= 0.8 and inside > inside_mean + 0.3
    again = PerformanceModel.from_json(model.to_json())
    assert again.predict_interval(p, kind="mixture")[1] == pytest.approx(lo)
    with pytest.raises(ValueError, match="kind must be"):
        model.predict_interval(p, kind="run")


def test_mixture_misfit_is_out_of_fold():
    # Boosted trees nearly interpolate their pilots; held-out mixtures show the real misfit.
    p = _grid(3, 8)
    rng = np.random.default_rng(6)
    y = 0.6 + 0.2 * p[:, 0] + 0.03 * np.sin(9.0 * p[:, 1]) + 0.01 * rng.normal(size=len(p))
    model = PerformanceModel("gbm", n_boot=20).fit(p, y)
    in_sample = y - model.predict(p)
    model.predict_interval(p[:3], kind="mixture")
    assert np.mean(np.abs(model.misfit_)) > 1.5 * np.mean(np.abs(in_sample))


def test_bad_use_raises_clear_errors(mixture_ot):
    p = _grid(3, 4)
    y = p[:, 0]
    with pytest.raises(ValueError, match="form must be"):
        PerformanceModel("magic")
    with pytest.raises(ValueError, match="needs OT values"):
        PerformanceModel("linear_ot").fit(p, y)
    model = PerformanceModel("p_linear", n_boot=0).fit(p, y, sizes=np.full(len(p), 100.0))
    with pytest.raises(ValueError, match="one size"):
        model.predict(p, 1000.0)
    with pytest.raises(ValueError, match="sums to"):
        model.predict([[0.5, 0.6, 0.2]])
    with pytest.raises(ValueError, match="not a performance model"):
        PerformanceModel.from_json('{"format": "other"}')


def test_model_file_limits_and_version(tmp_path, monkeypatch):
    import dataclasses

    from thresher.metrics.files import FormatError
    from thresher.mixtures import performance_file

    p = _grid(3, 4)
    model = PerformanceModel("p_linear", n_boot=0).fit(p, 0.5 + 0.2 * p[:, 0], pools=["a", "b", "c"])
    path = model.save(tmp_path / "model.json")
    assert path.read_bytes() == model.to_json().encode() and not list(tmp_path.glob(".*"))
    d = json.loads(path.read_text())
    d["version"] = 2
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(d))
    with pytest.raises(FormatError, match=r"newer\.json: performance model format version 2 is not one"):
        PerformanceModel.load(newer)
    del d["form"]
    d["version"] = 1
    newer.write_text(json.dumps(d))
    with pytest.raises(FormatError, match=r"newer\.json: malformed performance model: missing or bad field 'form'"):
        PerformanceModel.load(newer)
    monkeypatch.setattr(performance_file, "FORMAT", dataclasses.replace(performance_file.FORMAT, max_bytes=100))
    with pytest.raises(FormatError, match=r"model\.json: .* is over the 100 bytes limit for performance model files"):
        PerformanceModel.load(path)


def test_wide_csv_round_trip_and_row_errors(tmp_path):
    obs = MixtureObservations(["web", "code"], np.array([[0.3, 0.7], [1.0, 0.0]]), {"loss": np.array([2.0, 2.5])},
                              sizes=np.array([100.0, 200.0]))
    path = write_mixture_csv(obs, tmp_path / "obs.csv", extra={"predicted": np.array([2.1, 2.4])})
    back = read_mixture_csv(path, value_columns=["loss"])
    assert back.pools == ["web", "code"]
    assert back.weights == pytest.approx(obs.weights)
    assert back.sizes == pytest.approx(obs.sizes)
    bad = tmp_path / "bad.csv"
    bad.write_text("weight_a,weight_b,loss\n0.5,0.5,1.0\n0.5,0.7,1.0\n")
    with pytest.raises(ValueError, match=r"bad.csv, line 3: weights sum to 1.2"):
        read_mixture_csv(bad)
    bad.write_text("weight_a,weight_b,loss\n0.5,0.5,oops\n")
    with pytest.raises(ValueError, match=r"line 2, column 'loss'"):
        read_mixture_csv(bad)


def _regmix_dir():
    root = reference_data_dir()
    if root is None or not (root / "regmix" / "train_mixture_1m.csv").exists():
        pytest.skip("RegMix tables not found in ../shared/data/regmix (set THRESHER_REFERENCE_DATA)")
    return root / "regmix"


def test_regmix_tables_load_joined_on_index():
    d = _regmix_dir()
    train, test = read_regmix(d, "train"), read_regmix(d, "test")
    assert train.weights.shape == (512, 17) and test.weights.shape == (256, 17)
    assert "pile_cc" in train.pools
    assert len(train.values) == 13
    assert np.allclose(train.weights.sum(axis=1), 1.0)
    same = read_mixture_csv(d / "train_mixture_1m.csv", values_path=d / "train_pile_loss_1m.csv", join="index",
                            weight_prefix="train_the_pile_")
    assert same.value("metric/the_pile_pile_cc_val_loss") == pytest.approx(train.value("metric/the_pile_pile_cc_val_loss"))


def test_regmix_pile_cc_rank_correlation_with_a_smooth_form():
    from scipy.stats import spearmanr

    d = _regmix_dir()
    col = "metric/the_pile_pile_cc_val_loss"
    train, test = read_regmix(d, "train"), read_regmix(d, "test")
    model = PerformanceModel("mixing_law_log", n_boot=0).fit(train, col)
    rho = spearmanr(model.predict(test.weights), test.value(col))[0]
    assert rho >= 0.99
