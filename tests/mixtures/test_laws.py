"""Utility laws: golden values from the released parameters, published constants, basic shape."""
from __future__ import annotations

import numpy as np
import pytest

from tests.reference_data import reference_data_dir
from thresher.mixtures.laws import LAWS, GoyalLaw, LawData, MuennighoffLaw, OverfitLaw, get_law
from thresher.mixtures.laws.muennighoff import PUBLISHED
from thresher.mixtures.observations import Observations, load_observations

# Released T-MARS / ImageNet parameters (effective_utility objective) and the recomputed golden table.
GOYAL_B = [-0.160, -0.125, -0.100, -0.085]
GOYAL_TAU = [6.73, 8.55, 5.27, 2.27]
GOYAL_POOLS = ["top10", "top20", "top30", "top40"]
GOLDEN = {  # samples seen -> predicted error of the nested unions top10..top40
    32e6: [0.8175, 0.8416, 0.8658, 0.8832],
    64e6: [0.7538, 0.7670, 0.7960, 0.8201],
    128e6: [0.7127, 0.7040, 0.7323, 0.7587],
    640e6: [0.6882, 0.6145, 0.6244, 0.6486],
}
GOLDEN_128M_PER_POOL = [0.7127, 0.7169, 0.7428, 0.7679]


def goyal_params() -> dict[str, float]:
    p = {"a": 0.025, "d": 0.1}
    p.update({f"b[{n}]": b for n, b in zip(GOYAL_POOLS, GOYAL_B)})
    p.update({f"tau[{n}]": t for n, t in zip(GOYAL_POOLS, GOYAL_TAU)})
    return p


def union_data(seen: float) -> LawData:
    w = np.zeros((4, 4))
    for k in range(4):
        w[k, : k + 1] = 1.0 / (k + 1)
    return LawData(weights=w, unique=np.full((4, 4), 12.8e6), seen=np.full(4, seen), params=np.full(4, np.nan))


@pytest.mark.parametrize("seen", sorted(GOLDEN))
def test_goyal_golden_table_with_pool_count_flag(seen: float) -> None:
    law = GoyalLaw(tau_scaling="by_pool_count")
    got = law.predict(goyal_params(), union_data(seen), GOYAL_POOLS)
    # The golden values are rounded to 4 decimals: 1e-4 is the tolerance.
    np.testing.assert_allclose(got, GOLDEN[seen], atol=1e-4)


def test_goyal_without_flag_moves_the_crossover() -> None:
    got = GoyalLaw(tau_scaling="per_pool").predict(goyal_params(), union_data(128e6), GOYAL_POOLS)
    np.testing.assert_allclose(got, GOLDEN_128M_PER_POOL, atol=1e-4)
    assert np.argmin(got) == 0  # top10 wins without the factor, top20 with it


def test_goyal_single_pool_first_pass_and_saturation() -> None:
    law = GoyalLaw()
    p = {"a": 0.025, "d": 0.1, "b[top10]": -0.16, "tau[top10]": 6.73}
    seen = np.array([1e6, 12.8e6, 1e12])
    data = LawData(weights=np.ones((3, 1)), unique=np.full((3, 1), 12.8e6), seen=seen, params=np.full(3, np.nan))
    y = law.predict(p, data, ["top10"])
    np.testing.assert_allclose(y[:2], (0.025 * seen[:2] / 1e5) ** -0.16 + 0.1, rtol=1e-12)
    assert y[1] == pytest.approx(0.930, abs=5e-4)  # one epoch of the top-10% pool
    assert y[2] == pytest.approx(0.688, abs=5e-4)  # the infinite-repetition limit


def test_goyal_is_continuous_across_epoch_boundaries() -> None:
    law = GoyalLaw()
    p = {"a": 0.025, "d": 0.1, "b[x]": -0.16, "tau[x]": 3.0}
    edge = 3 * 12.8e6
    seen = np.array([edge * (1 - 1e-12), edge, edge * (1 + 1e-12)])
    data = LawData(weights=np.ones((3, 1)), unique=np.full((3, 1), 12.8e6), seen=seen, params=np.full(3, np.nan))
    y = law.predict(p, data, ["x"])
    assert np.ptp(y) < 1e-9


def test_goyal_unequal_weights_reduce_to_single_pool() -> None:
    """A mixture that gives one pool all the weight is that pool alone."""
    law = GoyalLaw()
    p = goyal_params()
    w = np.array([[0.0, 1.0, 0.0, 0.0]])
    seen = np.array([100e6])
    got = law.predict(p, LawData(w, np.full((1, 4), 12.8e6), seen, np.array([np.nan])), GOYAL_POOLS)
    alone = law.predict({"a": 0.025, "d": 0.1, "b[x]": -0.125, "tau[x]": 8.55},
                        LawData(np.ones((1, 1)), np.full((1, 1), 12.8e6), seen, np.array([np.nan])), ["x"])
    np.testing.assert_allclose(got, alone, rtol=1e-12)


def published(pool: str = "all") -> dict[str, float]:
    return {"E": PUBLISHED["E"], "A": PUBLISHED["A"], "B": PUBLISHED["B"], "alpha": PUBLISHED["alpha"],
            "R_N": PUBLISHED["R_N"], f"R_D[{pool}]": PUBLISHED["R_D"]}


def test_muennighoff_effective_data_ratios() -> None:
    """D'/D is 0.93 at 4 epochs, 0.76 at 11 and 0.37 at 41 (the paper's numbers)."""
    law = MuennighoffLaw()
    U = 1e9
    seen = np.array([4, 11, 41]) * U
    data = LawData(np.ones((3, 1)), np.full((3, 1), U), seen, np.full(3, 1e6))
    t = law.terms(np.array([[published()[k] for k in law.param_names(["all"])]]), data)
    np.testing.assert_allclose(t["d_eff"][0] / seen, [0.93, 0.76, 0.37], atol=0.006)


def _final_losses(subset: bool) -> Observations:
    root = reference_data_dir()
    if root is None or not (root / "datablations_final_losses.csv").exists():
        pytest.skip("reference data (../shared/data/datablations_final_losses.csv) is not present")
    return load_observations(root / "datablations_final_losses.csv", "datablations-final",
                             where={"in_paper_fit_subset": 1} if subset else None)


@pytest.mark.parametrize("subset,r2,mape", [(True, 0.772, 0.082), (False, 0.447, 0.107)])
def test_muennighoff_constants_reproduce_published_fit(subset: bool, r2: float, mape: float) -> None:
    obs = _final_losses(subset)
    assert len(obs) == (182 if subset else 296)
    pred = MuennighoffLaw().predict(published(), LawData.from_observations(obs, obs.pools), obs.pools)
    y = obs.value
    assert 1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum() == pytest.approx(r2, abs=5e-4)
    assert np.mean(np.abs(pred - y) / y) == pytest.approx(mape, abs=5e-4)


def test_muennighoff_quality_scales_a_pool() -> None:
    """Two pools, one of quality 2: a run on it alone equals the first pool with twice the data."""
    law = MuennighoffLaw()
    names = law.param_names(["p", "q"])
    theta = {**published("p"), "R_D[q]": PUBLISHED["R_D"], "q[q]": 2.0}
    assert set(names) == set(theta)
    U, seen, N = 1e9, 1e9, 1e8
    on_q = law.predict(theta, LawData(np.array([[0.0, 1.0]]), np.array([[1.0, U]]), np.array([seen]), np.array([N])), ["p", "q"])
    on_p = law.predict(published("p"), LawData(np.ones((1, 1)), np.array([[2 * U]]), np.array([2 * seen]), np.array([N])), ["p"])
    np.testing.assert_allclose(on_q, on_p, rtol=1e-12)


def test_overfit_law_can_rise_and_reduces_without_repetition() -> None:
    law = OverfitLaw()
    base = published()
    extra = {"C": 0.05, "gamma": 0.8, "R_O": 90.0}
    U, N = 1e8, 4.2e8
    seen = U * np.array([1.0, 20.0, 300.0])
    data = LawData(np.ones((3, 1)), np.full((3, 1), U), seen, np.full(3, N))
    y = law.predict({**base, **extra}, data, ["all"])
    plain = MuennighoffLaw().predict(base, data, ["all"])
    assert y[0] == pytest.approx(plain[0], rel=1e-12)  # one epoch: no penalty
    assert y[2] > y[1]  # too many epochs: loss rises
    assert np.all(np.diff(plain) <= 0)  # the published law never rises


def test_power_penalty_option_and_registry() -> None:
    assert set(LAWS) >= {"goyal", "muennighoff", "overfit"}
    law = get_law("overfit", penalty="power")
    assert law.param_names(["all"])[-3:] == ["C", "gamma", "eta"]
    with pytest.raises(ValueError, match="penalty"):
        get_law("overfit", penalty="quadratic")
    with pytest.raises(ValueError, match="unknown law"):
        get_law("chinchilla")
    with pytest.raises(ValueError, match="unknown option"):
        get_law("goyal", tau=3)


def test_predict_batch_is_batched_over_parameter_draws() -> None:
    law = MuennighoffLaw()
    names = law.param_names(["all"])
    theta = np.array([[published()[k] for k in names]] * 3)
    theta[1, 0] *= 1.1
    data = LawData(np.ones((5, 1)), np.full((5, 1), 1e9), np.logspace(9, 11, 5), np.full(5, 1e8))
    out = law.predict_batch(theta, data)
    assert out.shape == (3, 5)
    np.testing.assert_allclose(out[0], out[2])
    np.testing.assert_allclose(out[1] - out[0], 0.1 * theta[0, 0])


@pytest.mark.parametrize("tau,epochs", [(2.0, 700.5), (40.0, 260.25), (6.73, 3.5)])
def test_goyal_matches_the_reference_product_over_many_epochs(tau: float, epochs: float) -> None:
    """The per-epoch product of the reference recursion, evaluated term by term."""
    a, d, b, N = 0.025, 0.1, -0.16, 12.8e6
    n = epochs * N
    K = int(np.floor(n / N))
    ref = (a * N / 1e5) ** b + d
    for k in range(1, K + 1):
        ref *= (min((k + 1) * N, n) / (k * N)) ** (b * 0.5 ** (k / tau))
    got = GoyalLaw().predict({"a": a, "d": d, "b[x]": b, "tau[x]": tau},
                             LawData(np.ones((1, 1)), np.full((1, 1), N), np.array([n]), np.array([np.nan])), ["x"])
    assert got[0] == pytest.approx(ref, rel=1e-10)
