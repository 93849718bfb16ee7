"""Mixture optimisation: exact projection, caps and budget always hold, known optima found."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from thresher.mixtures.optimize import FeasibleMixtures, optimize_mixture
from thresher.mixtures.performance import PerformanceModel


class QuadraticBowl:
    """A model with a known optimum: metric = -|p - centre|^2 (goal max)."""

    has_gradient = True
    uses_ot = False
    goal = "max"

    def __init__(self, centre):
        self.centre = np.asarray(centre, float)
        self.pools = [f"p{i}" for i in range(self.centre.size)]

    def predict(self, p, n=None):
        p = np.atleast_2d(p)
        return -np.sum((p - self.centre) ** 2, axis=1)

    def gradient(self, p, n=None):
        return -2.0 * (np.ravel(p) - self.centre)

    def value_and_gradient(self, p, n=None):
        return float(self.predict(p)[0]), self.gradient(p)

    def predict_interval(self, p, n=None, level=0.9, kind="mean"):
        v = self.predict(p)
        return v, v - 0.1, v + 0.1


def _reference_projection(y, fs: FeasibleMixtures):
    cons = [{"type": "eq", "fun": lambda p: p.sum() - 1.0}]
    if fs.costs is not None:
        cons.append({"type": "ineq", "fun": lambda p: fs.budget - fs.costs @ p})
    start = fs.project(np.full(y.size, 1.0 / y.size))
    res = minimize(lambda p: np.sum((p - y) ** 2), start, bounds=[(0, c) for c in fs.caps], constraints=cons,
                   method="SLSQP", options={"ftol": 1e-14, "maxiter": 500})
    return res.x


def test_projection_matches_a_generic_solver():
    rng = np.random.default_rng(0)
    fs = FeasibleMixtures(np.array([0.5, 0.3, 0.6, 0.2]), np.array([1.0, 2.0, 0.5, 3.0]), 1.0)
    for y in rng.normal(scale=2.0, size=(20, 4)):
        assert fs.project(y) == pytest.approx(_reference_projection(y, fs), abs=1e-6)


def test_projection_when_the_budget_only_buys_the_cheapest_mixtures():
    # Budget equal to the cheapest cost, with a tie at the marginal price: only a face remains.
    caps = np.array([0.3, 0.4, 0.5, 0.6, 1.0])
    prices = np.array([0.0, 1.0, 2.0, 2.0, 3.0])
    fs = FeasibleMixtures(caps, prices, 0.3 * 0.0 + 0.4 * 1.0 + 0.3 * 2.0)
    rng = np.random.default_rng(3)
    for y in rng.normal(scale=2.0, size=(10, 5)):
        p = fs.project(y)
        assert fs.contains(p, tol=1e-9)
        assert p[:2] == pytest.approx([0.3, 0.4]) and p[4] == 0.0
        assert p == pytest.approx(_reference_projection(y, fs), abs=1e-5)


@st.composite
def problems(draw):
    m = draw(st.integers(2, 6))
    caps = np.array(draw(st.lists(st.floats(0.05, 1.0), min_size=m, max_size=m)))
    if caps.sum() < 1.0:
        caps = caps / caps.sum()
    prices = np.array(draw(st.lists(st.floats(0.0, 5.0), min_size=m, max_size=m)))
    fs0 = FeasibleMixtures(caps)
    order = np.argsort(prices)
    left, cheapest = 1.0, 0.0
    for i in order:
        take = min(fs0.caps[i], left)
        cheapest += take * prices[i]
        left -= take
    budget = cheapest + draw(st.floats(0.0, 3.0))
    y = np.array(draw(st.lists(st.floats(-5, 5), min_size=m, max_size=m)))
    return caps, prices, budget, y


@settings(max_examples=60, deadline=None)
@given(problems())
def test_projection_is_always_feasible(problem):
    caps, prices, budget, y = problem
    fs = FeasibleMixtures(caps, prices, budget)
    p = fs.project(y)
    assert fs.contains(p, tol=1e-8)
    assert fs.contains(fs.project(p), tol=1e-8)
    assert fs.project(p) == pytest.approx(p, abs=1e-8)


@settings(max_examples=25, deadline=None)
@given(problems())
def test_optimiser_respects_caps_and_budget(problem):
    caps, prices, budget, centre = problem
    model = QuadraticBowl(np.abs(centre) / max(np.abs(centre).sum(), 1e-9))
    choice = optimize_mixture(model, caps=caps, prices=prices, budget=budget, starts=3, max_iter=50)
    fs = FeasibleMixtures(caps, prices, budget)
    assert fs.contains(choice.weights, tol=1e-8)
    # Projection of the unconstrained optimum is the true constrained optimum for this bowl.
    assert choice.weights == pytest.approx(fs.project(model.centre), abs=1e-5)


def test_caps_from_available_counts_and_shadow_prices():
    model = QuadraticBowl([0.7, 0.2, 0.1])
    choice = optimize_mixture(model, n=1000, available={"p0": 400})
    assert choice.weights[0] == pytest.approx(0.4, abs=1e-7)
    cap = [a for a in choice.active if a["constraint"] == "cap"]
    assert cap and cap[0]["pool"] == "p0"
    # d(optimum)/d(cap): numerically from two capped solves.
    up = optimize_mixture(model, n=1000, available={"p0": 410}).predicted
    assert cap[0]["shadow_price"] == pytest.approx((up - choice.predicted) / 0.01, rel=0.05)


def test_budget_shadow_price_matches_the_value_of_more_money():
    model = QuadraticBowl([0.8, 0.1, 0.1])
    prices = {"p0": 3.0, "p1": 1.0, "p2": 1.0}
    base = optimize_mixture(model, n=100, prices=prices, budget=200.0)
    more = optimize_mixture(model, n=100, prices=prices, budget=202.0)
    assert base.cost == pytest.approx(200.0)
    budget = [a for a in base.active if a["constraint"] == "budget"][0]
    assert budget["shadow_price"] == pytest.approx((more.predicted - base.predicted) / 2.0, rel=0.05)


def test_infeasible_settings_are_rejected():
    model = QuadraticBowl([0.5, 0.5])
    with pytest.raises(ValueError, match="caps sum"):
        optimize_mixture(model, caps=[0.3, 0.3])
    with pytest.raises(ValueError, match="cheapest mixture"):
        optimize_mixture(model, prices=[1.0, 2.0], budget=0.5)
    with pytest.raises(ValueError, match="together"):
        optimize_mixture(model, prices=[1.0, 2.0])
    with pytest.raises(ValueError, match="unknown pools"):
        optimize_mixture(model, caps={"nope": 0.5})


def test_fitted_models_optimise_within_constraints():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(3), size=80)
    y = 1.0 + (p[:, 0] - 0.5) ** 2 + 0.5 * (p[:, 1] - 0.3) ** 2 + 0.005 * rng.normal(size=80)
    fs = FeasibleMixtures(np.array([0.45, 1.0, 1.0]))
    for form in ("p_quadratic", "gbm"):
        model = PerformanceModel(form, goal="min", n_boot=10).fit(p, y)
        choice = optimize_mixture(model, caps=[0.45, 1.0, 1.0], n_candidates=3000)
        assert fs.contains(choice.weights, tol=1e-8)
        assert choice.lower <= choice.predicted <= choice.upper
    smooth = optimize_mixture(PerformanceModel("p_quadratic", goal="min", n_boot=0).fit(p, y), caps=[0.45, 1.0, 1.0])
    assert smooth.weights == pytest.approx([0.45, 0.3, 0.25], abs=0.05)
