"""Fitting: recovery on synthetic runs, the published two-stage refit, JSON round trip, bootstrap."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.reference_data import reference_data_dir
from thresher.mixtures import FittedLaw, fit
from thresher.mixtures.fitting import huber, run_bootstrap
from thresher.mixtures.laws import GoyalLaw, LawData
from thresher.mixtures.laws.muennighoff import PUBLISHED
from thresher.mixtures.observations import Observations, load_observations


def synthetic_goyal(noise: float = 0.0, seed: int = 0) -> tuple[Observations, dict[str, float]]:
    """Two pools, checkpoints every half epoch up to 8 epochs, values from known parameters."""
    truth = {"a": 0.02, "d": 0.1, "b[hq]": -0.18, "b[lq]": -0.09, "tau[hq]": 3.0, "tau[lq]": 8.0}
    rng = np.random.default_rng(seed)
    rows = []
    for pool in ("hq", "lq"):
        for size in (5e6, 10e6):
            for seen in size * np.arange(0.5, 8.01, 0.5):
                rows.append((pool, size, seen, f"{pool}-{size:g}"))
    pools = ("hq", "lq")
    w = np.array([[1.0, 0.0] if r[0] == "hq" else [0.0, 1.0] for r in rows])
    u = np.array([[r[1], r[1]] for r in rows])
    seen = np.array([r[2] for r in rows])
    data = LawData(w, u, seen, np.full(len(rows), np.nan))
    y = GoyalLaw().predict(truth, data, pools) * np.exp(noise * rng.standard_normal(len(rows)))
    obs = Observations.from_arrays(seen=seen, value=y, unique=u, weights=w, pools=pools, run=[r[3] for r in rows],
                                   unit="samples")
    return obs, truth


def test_huber_is_quadratic_then_linear() -> None:
    r = np.array([0.0, 5e-4, -1e-3, 0.01])
    np.testing.assert_allclose(huber(r, 1e-3), [0.0, 0.5 * 25e-8, 0.5e-6, 1e-3 * (0.01 - 0.5e-3)])


def test_fit_recovers_goyal_parameters_from_noiseless_runs() -> None:
    obs, truth = synthetic_goyal()
    fitted = fit(obs, "goyal", max_starts=6)
    for k, v in truth.items():
        assert fitted.params[k] == pytest.approx(v, rel=1e-3), k
    assert fitted.metrics["mape"] < 1e-5
    assert 0 < fitted.share_at_best <= 1
    assert fitted.n_starts == 6 and fitted.n_runs == 4


def test_fixed_parameters_stay_fixed_and_unknown_names_fail() -> None:
    obs, truth = synthetic_goyal()
    fitted = fit(obs, "goyal", fixed={"d": 0.1, "a": 0.02}, max_starts=3)
    assert fitted.params["d"] == 0.1 and fitted.params["a"] == 0.02
    assert fitted.fixed == ("a", "d")
    assert fitted.params["tau[hq]"] == pytest.approx(3.0, rel=1e-4)
    with pytest.raises(ValueError, match="no parameter 'tau'"):
        fit(obs, "goyal", fixed={"tau": 1.0})
    with pytest.raises(ValueError, match="outside its bounds"):
        fit(obs, "goyal", fixed={"tau[hq]": 1000.0})


def test_json_round_trip_predicts_identically(tmp_path) -> None:
    obs, _ = synthetic_goyal(noise=0.01)
    fitted = fit(obs, "goyal", max_starts=3, bootstrap=5, seed=1)
    path = fitted.save(tmp_path / "fit.json")
    again = FittedLaw.load(path)
    assert again.params == fitted.params
    np.testing.assert_array_equal(again.predict(obs), fitted.predict(obs))
    np.testing.assert_array_equal(again.bootstrap, fitted.bootstrap)
    assert again.sha256() == fitted.sha256()
    d = json.loads(path.read_text())
    d["format"] = "something/else"
    with pytest.raises(ValueError, match="not a saved fit"):
        FittedLaw.from_dict(d)
    with pytest.raises(ValueError, match="not JSON"):
        FittedLaw.from_json("{")


def test_fit_file_limits_and_version(tmp_path, monkeypatch) -> None:
    import dataclasses

    from thresher.metrics.files import FormatError, MissingFile
    from thresher.mixtures import fitted_law

    obs, _ = synthetic_goyal(noise=0.01)
    fitted = fit(obs, "goyal", max_starts=2)
    path = fitted.save(tmp_path / "fit.json")
    assert path.read_bytes() == fitted.to_bytes() and not list(tmp_path.glob(".*"))
    d = json.loads(path.read_text())
    d["format"] = "thresher.fit/2"
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(d))
    with pytest.raises(FormatError, match=r"newer\.json: fit format version '2' is not one this Thresher reads"):
        FittedLaw.load(newer)
    with pytest.raises(MissingFile, match=r"gone\.json: no such fit file"):
        FittedLaw.load(tmp_path / "gone.json")
    monkeypatch.setattr(fitted_law, "FORMAT", dataclasses.replace(fitted_law.FORMAT, max_bytes=100))
    with pytest.raises(FormatError, match=r"fit\.json: .* is over the 100 bytes limit for fit files"):
        FittedLaw.load(path)


def test_bootstrap_intervals_cover_truth_and_resample_runs() -> None:
    obs, truth = synthetic_goyal(noise=0.02, seed=3)
    fitted = fit(obs, "goyal", max_starts=3)
    boot = run_bootstrap(fitted, obs, n_boot=30, seed=0)
    assert boot.bootstrap.shape == (30, len(fitted.params))
    lo, hi = boot.interval("b[hq]", level=0.95)
    assert lo < hi
    assert lo - 0.02 < truth["b[hq]"] < hi + 0.02
    plo, phi = boot.predict_interval(obs)
    assert np.all(plo <= phi)
    # Draws differ: runs were resampled.
    assert np.ptp(boot.bootstrap[:, 2]) > 0


def test_two_stage_needs_rows_without_repetition() -> None:
    obs, _ = synthetic_goyal()
    rep = obs.subset(obs.epochs.max(axis=1) > 1.5)
    with pytest.raises(ValueError, match="without repetition"):
        fit(rep, "goyal", two_stage=True, max_starts=2)
    fitted = fit(obs, "goyal", two_stage=True, max_starts=3)
    assert fitted.stage == "two_stage"
    assert fitted.metrics["mape"] < 0.01


def test_fit_rejects_missing_values_and_model_size() -> None:
    obs, _ = synthetic_goyal()
    with pytest.raises(ValueError, match="needs model params"):
        fit(obs, "muennighoff", max_starts=1)
    blank = Observations.from_arrays(seen=[1.0, 2.0], unique=[1.0, 1.0])
    with pytest.raises(ValueError, match="measured value"):
        fit(blank, "goyal")
    with pytest.raises(ValueError, match="grid"):
        fit(obs, "goyal", grid="huge")


def test_refit_recovers_published_repetition_constants() -> None:
    """With E, A, B, alpha fixed at the published values, R*_D and R*_N refit to ~15.4 and ~5.3.

    The objective is nearly flat along a valley where larger R*_D trades against smaller R*_N, with
    several shallow local minima; the published pair is the one reached from moderate starts, and
    the multi-start search finds others a fraction of a percent lower.
    """
    root = reference_data_dir()
    if root is None or not (root / "datablations_final_losses.csv").exists():
        pytest.skip("reference data (../shared/data/datablations_final_losses.csv) is not present")
    obs = load_observations(root / "datablations_final_losses.csv", "datablations-final", where={"in_paper_fit_subset": 1})
    fixed = {k: PUBLISHED[k] for k in ("E", "A", "B", "alpha")}
    local = fit(obs, "muennighoff", fixed=fixed, grid="none", init={"R_D[all]": 10.0, "R_N": 5.0})
    assert local.params["R_D[all]"] == pytest.approx(15.39, abs=0.1)
    assert local.params["R_N"] == pytest.approx(5.31, abs=0.05)
    assert local.metrics["r2"] == pytest.approx(0.772, abs=0.002)
    assert local.metrics["mape"] == pytest.approx(0.082, abs=0.001)
    multi = fit(obs, "muennighoff", fixed=fixed, max_starts=4)
    assert multi.objective <= local.objective
    assert multi.objective > 0.99 * local.objective  # a flat valley, not a different law
