"""plan.json and frontier.json: one writer that stamps the format, one reader that checks it, its limits and fields."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tests.mixtures.test_planning import goyal_fit
from thresher.jobs.planning_files import save_frontier, save_plan
from thresher.mixtures.planning import Pool, frontier, plan
from thresher.pipeline import plans as mod
from thresher.pipeline.plans import PlanError, read_frontier, read_plan

POOLS = [Pool("top10", 12.8e6), Pool("top30", 25.6e6)]


def test_plan_round_trip_through_the_one_writer_and_reader(tmp_path):
    p = plan(goyal_fit(), POOLS, 64e6, fit_path="fit.json")
    path = save_plan(p, tmp_path / "plan.json")
    text = path.read_text()
    assert text.startswith('{\n "format": "thresher.plan/1",\n "budget": 64000000.0') and text.endswith("}\n")
    back = read_plan(path)
    assert back == json.loads(json.dumps({"format": "thresher.plan/1", **p.to_dict()}))
    assert not list(tmp_path.glob(".*"))
    legacy = {k: v for k, v in back.items() if k != "format"}  # plans written before the format field
    (tmp_path / "old.json").write_text(json.dumps(legacy))
    assert read_plan(tmp_path / "old.json")["budget"] == 64e6


@pytest.mark.parametrize(
    "change,match",
    [
        ({"format": "thresher.plan/2"}, r"bad\.json: plan format version '2' is not one this Thresher reads"),
        ({"format": "thresher.fit/1"}, r"bad\.json: not a plan \(format 'thresher.fit/1'"),
        ({"budget": -5}, r"bad\.json: budget must be a positive number"),
        ({"pools": [{"name": "a"}]}, r"bad\.json: pools\[0\] has no 'weight'"),
        ({"pools": [{"name": "a", "weight": float("nan")}]}, r"bad\.json: pools\[0\]: weight must be a number >= 0"),
        ({"pools": 3}, r"bad\.json: not a plan"),
    ],
)
def test_plan_reader_names_the_file_and_what_is_wrong(tmp_path, change, match):
    doc = {"format": "thresher.plan/1", "budget": 10.0, "pools": [{"name": "a", "weight": 1.0}], **change}
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(PlanError, match=match):
        read_plan(tmp_path / "bad.json")


def test_plan_limits(tmp_path, monkeypatch):
    path = save_plan(plan(goyal_fit(), POOLS, 64e6), tmp_path / "plan.json")
    monkeypatch.setattr(mod, "MAX_PLAN_POOLS", 0)
    with pytest.raises(PlanError, match=r"plan\.json: \d pool rows, over the limit of 0"):
        read_plan(path)
    monkeypatch.setattr(mod, "PLAN", dataclasses.replace(mod.PLAN, max_bytes=100))
    with pytest.raises(PlanError, match=r"plan\.json: .* is over the 100 bytes limit for plan files"):
        read_plan(path)
    with pytest.raises(PlanError, match=r"none\.json: no such plan file"):
        read_plan(tmp_path / "none.json")


def test_frontier_round_trip_stamps_every_plan(tmp_path, monkeypatch):
    fr = frontier(goyal_fit(), POOLS, np.array([16e6, 64e6]))
    path = save_frontier(fr, tmp_path / "frontier.json")
    back = read_frontier(path)
    assert back["format"] == "thresher.frontier/1" and back["budgets"] == [16e6, 64e6]
    assert [p["format"] for p in back["plans"]] == ["thresher.plan/1"] * 2  # each plan can be materialized alone
    doc = json.loads(path.read_text())
    doc["format"] = "thresher.frontier/9"
    (tmp_path / "newer.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"newer\.json: frontier format version '9'"):
        read_frontier(tmp_path / "newer.json")
    doc["format"], doc["plans"][1]["budget"] = "thresher.frontier/1", 0
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(PlanError, match=r"bad\.json: plans\[1\]: budget must be a positive number"):
        read_frontier(tmp_path / "bad.json")
