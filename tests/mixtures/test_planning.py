"""Plans: budget and pool-size invariants, the QQT crossover, frontier, marginal value."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thresher.mixtures import FittedLaw, frontier, marginal_value, plan
from thresher.mixtures.planning import Pool, union_values

NAMES = ["top10", "top20", "top30", "top40"]


def goyal_fit(flag: str = "by_pool_count", bootstrap: bool = False) -> FittedLaw:
    params = {"a": 0.025, "d": 0.1}
    params.update({f"b[{n}]": b for n, b in zip(NAMES, [-0.160, -0.125, -0.100, -0.085])})
    params.update({f"tau[{n}]": t for n, t in zip(NAMES, [6.73, 8.55, 5.27, 2.27])})
    fitted = FittedLaw(law_name="goyal", law_options={"tau_scaling": flag, "Z": 1e5}, pools=tuple(NAMES),
                       params=params, unit="samples")
    if bootstrap:
        rng = np.random.default_rng(0)
        fitted.bootstrap = fitted.theta[None, :] * np.exp(0.02 * rng.standard_normal((40, len(params))))
    return fitted


POOLS = [Pool(n, 12.8e6) for n in NAMES]


def test_nested_unions_reproduce_the_crossover() -> None:
    u = union_values(goyal_fit(), POOLS, [32e6, 128e6], order=NAMES)
    best = [min(u, key=lambda k: u[k][i]) for i in range(2)]
    assert best == ["top10", "top10+top20"]


def test_plan_spends_budget_within_pool_sizes_and_beats_unions() -> None:
    fitted = goyal_fit()
    p = plan(fitted, POOLS, 640e6, n_runner_ups=2)
    assert p.weights.sum() == pytest.approx(1.0)
    assert p.seen_per_pool.sum() == pytest.approx(640e6)
    assert np.all(p.unique_used <= np.array([x.unique for x in POOLS]) + 1e-6)
    unions = union_values(fitted, POOLS, [640e6])
    assert p.predicted <= min(v[0] for v in unions.values()) + 1e-12
    assert len(p.runner_ups) == 2
    assert all(r["predicted"] >= p.predicted for r in p.runner_ups)
    d = json.loads(json.dumps(p.to_dict()))
    assert d["law"]["name"] == "goyal" and d["law"]["fit"]["params"]["a"] == 0.025
    assert sum(r["seen"] for r in d["pools"]) == pytest.approx(640e6)


def test_small_budget_picks_the_best_pool_alone() -> None:
    p = plan(goyal_fit(), POOLS, 10e6)
    assert p.pool_rows()[0]["name"] == "top10" and len(p.pool_rows()) == 1
    assert p.epochs[0] == pytest.approx(10e6 / 12.8e6)


def test_epoch_cap_is_respected() -> None:
    p = plan(goyal_fit(), POOLS, 640e6, max_epochs=15)
    assert np.all(p.epochs <= 15 * (1 + 1e-6))
    with pytest.raises(ValueError, match="exceeds what the pools can supply"):
        plan(goyal_fit(), POOLS, 1e10, max_epochs=2)


@settings(max_examples=10, deadline=None)
@given(
    sizes=st.lists(st.floats(min_value=1e5, max_value=5e7), min_size=2, max_size=4),
    budget=st.floats(min_value=1e5, max_value=5e9),
)
def test_plans_never_exceed_pool_sizes(sizes: list[float], budget: float) -> None:
    pools = [Pool(n, s) for n, s in zip(NAMES, sizes)]
    p = plan(goyal_fit("per_pool"), pools, budget, n_runner_ups=1, simplex_starts=2)
    assert p.seen_per_pool.sum() == pytest.approx(budget, rel=1e-9)
    assert np.all(p.weights >= 0)
    assert np.all(p.unique_used <= np.array(sizes) * (1 + 1e-12))
    assert np.all(p.unique_used <= p.seen_per_pool * (1 + 1e-12))


def test_interval_and_stability_from_bootstrap() -> None:
    p = plan(goyal_fit(bootstrap=True), POOLS, 128e6)
    lo, hi = p.interval
    assert lo <= p.predicted <= hi
    assert 0 <= p.stability <= 1


def test_frontier_and_flips() -> None:
    fr = frontier(goyal_fit(), POOLS, [640e6, 32e6, 128e6])
    assert list(fr.budgets) == [32e6, 128e6, 640e6]
    values = [p.predicted for p in fr.plans]
    assert values == sorted(values, reverse=True)  # more budget, lower predicted error
    assert fr.flips()[0]["to"] == "top10+top20"
    d = fr.to_dict()
    assert "fit" in d["law"] and all(not p["law"] for p in d["plans"])


def test_marginal_value_is_non_negative_and_priced() -> None:
    fitted = goyal_fit(bootstrap=True)
    mv = marginal_value(fitted, POOLS[:2], Pool("top30", 12.8e6, cost=2.0), 640e6)
    assert mv["gain"] >= 0
    assert mv["gain_per_cost"] == pytest.approx(mv["gain"] / 2.0)
    assert mv["gain_interval"][0] <= mv["gain_interval"][1]
    small = marginal_value(fitted, POOLS[:2], Pool("top30", 12.8e6), 10e6)
    assert small["gain"] == pytest.approx(0.0, abs=1e-9)  # a small budget never repeats top10


def test_bad_pools_and_budgets(tmp_path) -> None:
    fitted = goyal_fit()
    with pytest.raises(ValueError, match="not in the fit"):
        plan(fitted, [Pool("vendor", 1e6)], 1e6)
    with pytest.raises(ValueError, match="budget"):
        plan(fitted, POOLS, -1)
    with pytest.raises(ValueError, match="needs the model size"):
        plan(FittedLaw(law_name="muennighoff", law_options={"tie_exponents": True}, pools=("all",),
                       params={"E": 1.8, "A": 500.0, "B": 1500.0, "alpha": 0.35, "R_N": 5.0, "R_D[all]": 15.0}),
             [Pool("all", 1e9)], 1e10)


def test_plots_write_pngs(tmp_path) -> None:
    from thresher.mixtures.plots import plot_frontier, plot_utility_decay

    fitted = goyal_fit(bootstrap=True)
    fr = frontier(fitted, POOLS, [32e6, 128e6])
    assert plot_frontier(fr, tmp_path / "f.png").stat().st_size > 1000
    assert plot_utility_decay(fitted, POOLS, tmp_path / "d.png", max_epochs=5).stat().st_size > 1000
    with pytest.raises(ValueError, match="not in the fit"):
        plot_utility_decay(fitted, [Pool("other", 1e6)], tmp_path / "x.png")
