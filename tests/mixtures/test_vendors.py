"""Vendor acquisition math: decisions on synthetic vendors, limits under random menus and prices."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thresher.mixtures.vendors import (
    AcquisitionEvaluator,
    ClassifierProxy,
    GainSummary,
    Menu,
    PriceSchedule,
    VendorOffer,
    decide,
    embedding_duplicates,
    evaluate_vendors,
    more_samples_needed,
    optimise_purchase,
)
from thresher.mixtures.vendors.gains import GainCurve
from thresher.mixtures.vendors.pilots import PilotRuns

K, D = 6, 8


def _world(seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (K, D))

    def draw(n, classes):
        y = rng.choice(classes, n)
        return centres[y] + rng.normal(0, 1, (n, D)), y

    owned = draw(600, [0, 1, 2, 3])
    target = draw(600, list(range(K)))
    dup_idx = rng.choice(600, 200, replace=False)
    samples = {
        "complementary": draw(200, [4, 5, 0, 1]),
        "duplicate": (owned[0][dup_idx], owned[1][dup_idx]),
        "junk": (rng.normal(0, 3, (200, D)), rng.integers(0, K, 200)),
    }
    return owned, target, samples


@pytest.fixture(scope="module")
def evaluated():
    owned, target, samples = _world()
    offers = [VendorOffer(name, 200, 2000, PriceSchedule.flat(1.0)) for name in samples]
    proxy = ClassifierProxy(*target, model="logistic")
    ev = AcquisitionEvaluator(budget=1500, n_boot=200, repeats=3).fit(
        proxy, owned, offers, samples, owned_embeddings=owned[0],
        sample_embeddings={k: v[0] for k, v in samples.items()})
    return {v.name: v for v in ev.result_.vendors}, ev.result_


def test_complementary_vendor_is_bought(evaluated):
    vendors, result = evaluated
    comp = vendors["complementary"]
    assert comp.decision == "buy" and comp.quantity > 0
    assert comp.gain.low > 0.1 and comp.gain.p_helps > 0.95
    assert result.total_cost <= 1500 and comp.cost <= 1500


def test_duplicate_vendor_gets_about_zero(evaluated):
    dup = evaluated[0]["duplicate"]
    assert dup.duplicate_fraction > 0.95
    assert abs(dup.gain.mean) < 0.01 and dup.decision == "skip" and dup.quantity == 0


def test_junk_vendor_is_skipped(evaluated):
    junk = evaluated[0]["junk"]
    assert junk.decision == "skip" and junk.quantity == 0 and junk.gain.high <= 0.01


def test_duplicates_found_by_radius():
    rng = np.random.default_rng(1)
    owned = rng.normal(size=(300, 5))
    vendor = np.vstack([owned[:50] + 1e-6, rng.normal(size=(50, 5))])
    mask = embedding_duplicates(vendor, owned)
    assert mask[:50].all() and not mask[50:].any()


def test_decisions_and_more_samples():
    assert decide(GainSummary(0.05, 0.01, 0.09, 0.99)) == "buy"
    assert decide(GainSummary(-0.05, -0.09, -0.01, 0.0)) == "skip"
    straddle = GainSummary(0.02, -0.02, 0.06, 0.7)
    assert decide(straddle) == "ask"
    # half-width 0.04 at distance 0.02: four times the sample, so three times more
    assert more_samples_needed(straddle, 100) == 300
    assert more_samples_needed(straddle, 100, limit=200) is None
    assert more_samples_needed(GainSummary(0.0, -0.02, 0.02, 0.5), 100) is None


def test_gain_curve_extrapolates_log_linear():
    # metric rises by 0.01 per doubling of the vendor rows; no noise
    levels = np.array([50.0, 100.0, 200.0])
    n = 40
    base = np.full((3, n), 0.5)
    num = [np.full((3, n), 0.5 + 0.01 * np.log2(lv / 25.0)) for lv in levels]
    runs = PilotRuns(levels, base, np.ones_like(base), num, [np.ones((3, n))] * 3, paired=True)
    curve = GainCurve.fit(runs, n_boot=50)
    np.testing.assert_allclose(curve.predict([800.0]), [0.01 * np.log2(800 / 25)], atol=1e-9)
    np.testing.assert_allclose(curve.predict([25.0]), [0.5 * 0.01], atol=1e-9)  # linear below the pilots


def test_tiered_prices():
    p = PriceSchedule.from_tiers([(100, 2.0), (None, 1.0)])
    assert p.cost(50) == 100 and p.cost(150) == 250
    assert p.max_rows(250) == pytest.approx(150)
    tok = PriceSchedule.flat(0.01, unit="token", tokens_per_row=200)
    assert tok.cost(10) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="open-ended"):
        PriceSchedule.from_tiers([(100, 2.0)])


def test_optimiser_matches_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(60):
        menus = []
        for v in range(int(rng.integers(1, 4))):
            g = int(rng.integers(1, 5))
            menus.append(Menu(f"v{v}", np.sort(rng.integers(1, 100, g)).astype(float),
                              np.sort(rng.uniform(0, 50, g)), rng.normal(0.1, 0.2, g)))
        budget = float(rng.uniform(0, 100))
        got = optimise_purchase(menus, budget, resolution=20000)
        best = 0.0
        for combo in itertools.product(*[range(m.quantities.size + 1) for m in menus]):
            cost = sum(m.costs[j - 1] for m, j in zip(menus, combo) if j)
            gain = sum(m.gains[j - 1] for m, j in zip(menus, combo) if j)
            if cost <= budget:
                best = max(best, gain)
        assert got.total_cost <= budget
        assert got.total_gain == pytest.approx(best, abs=1e-9)


def _curve(rng: np.random.Generator, slope: float, offset: float) -> GainCurve:
    levels = np.array([25.0, 50.0, 100.0])
    n = 20
    base = rng.normal(0.5, 0.01, (3, n))
    num = [base + offset + slope * np.log(lv) + rng.normal(0, 0.02, (3, n)) for lv in levels]
    runs = PilotRuns(levels, base, np.ones_like(base), num, [np.ones((3, n))] * 3, paired=True)
    return GainCurve.fit(runs, n_boot=30, seed=int(rng.integers(1000)))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), budget=st.floats(0.0, 5000.0), n_vendors=st.integers(1, 4))
def test_budget_and_quantity_limits_always_hold(seed, budget, n_vendors):
    rng = np.random.default_rng(seed)
    offers, curves = [], {}
    for v in range(n_vendors):
        name = f"v{v}"
        if rng.random() < 0.5:
            price = PriceSchedule.flat(float(rng.uniform(0.01, 5.0)), unit=str(rng.choice(["sample", "document"])))
        else:
            first = float(rng.uniform(10, 500))
            price = PriceSchedule.from_tiers([(first, float(rng.uniform(0.5, 5))), (None, float(rng.uniform(0.01, 1)))],
                                             unit="token", tokens_per_row=float(rng.uniform(1, 20)))
        available = int(rng.integers(0, 3000))
        cap = int(rng.integers(0, 3000)) if rng.random() < 0.3 else None
        offers.append(VendorOffer(name, 100, available, price, max_quantity=cap))
        curves[name] = _curve(rng, float(rng.normal(0.01, 0.02)), float(rng.normal(0, 0.03)))
    result = evaluate_vendors(offers, curves, budget=budget)
    assert result.total_cost <= budget
    for offer, v in zip(offers, result.vendors):
        assert 0 <= v.quantity <= offer.limit
        assert v.quantity == int(v.quantity)
        assert v.cost == pytest.approx(float(offer.price.cost(v.quantity)))
        assert (v.quantity > 0) == (v.decision == "buy")
    assert sum(v.cost for v in result.vendors) == pytest.approx(result.total_cost)


def test_joint_check_sees_overlapping_vendors():
    owned, target, samples = _world()
    rng = np.random.default_rng(9)
    # two vendors selling the same missing classes: each alone helps, together not twice as much
    twin = {"a": samples["complementary"], "b": (samples["complementary"][0] + rng.normal(0, 0.05, (200, D)),
                                                  samples["complementary"][1])}
    offers = [VendorOffer(n, 200, 2000, PriceSchedule.flat(1.0)) for n in twin]
    ev = AcquisitionEvaluator(budget=4000, n_boot=100, repeats=2).fit(
        ClassifierProxy(*target), owned, offers, twin)
    res = ev.result_
    assert all(v.decision == "buy" for v in res.vendors)
    assert res.joint_check is not None and res.total_cost <= 4000
    single = max(v.gain.mean for v in res.vendors)
    assert res.joint_check.mean < 0.75 * res.total_gain.mean
    assert res.joint_check.mean == pytest.approx(single, abs=0.05)
    assert any("overlap" in n for n in res.notes)
