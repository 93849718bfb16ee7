"""Materialize: repeat counts follow the plan's epochs, the manifest matches the shards, reruns agree."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from tests.pipeline.test_pools import make_scored_job
from thresher.pipeline.materialize import MaterializeError, materialize, repeat_counts
from thresher.pipeline.pools import PoolSpec, build_pools


def test_repeat_counts_reach_the_target_with_whole_passes_first():
    ids = pa.array([f"d{i}" for i in range(50)])
    tokens = np.arange(1, 51, dtype=float)
    total = tokens.sum()
    for target in (0.3 * total, total, 2.5 * total):
        reps = repeat_counts(ids, tokens, target, seed=3)
        seen = float((reps * tokens).sum())
        assert target <= seen < target + tokens.max() + 1e-9  # stops at the document that crosses the target
        assert reps.min() == int(np.floor(target / total)) and reps.max() - reps.min() <= 1
    again = repeat_counts(ids, tokens, 0.3 * total, seed=3)
    other = repeat_counts(ids, tokens, 0.3 * total, seed=4)
    assert np.array_equal(again, repeat_counts(ids, tokens, 0.3 * total, seed=3))
    assert not np.array_equal(again, other)  # the seed picks which documents fill the partial pass
    assert repeat_counts(ids, tokens, 0.0).sum() == 0


def _plan(pools: dict, weights: dict[str, float], budget: float) -> dict:
    unique = {p["name"]: p["unique"] for p in pools["pools"]}
    return {"format": "thresher.plan/1", "budget": budget, "unit": pools["unit"],
            "pools": [{"name": n, "weight": w, "seen": w * budget, "epochs": w * budget / unique[n], "unique": unique[n]}
                      for n, w in weights.items()]}


@pytest.mark.usefixtures("ray_session")
def test_materialize_manifest_and_shards_follow_the_plan(tmp_path):
    scored, table = make_scored_job(tmp_path, n_docs=80)
    pools = build_pools(scored, tmp_path / "pools", PoolSpec(score="quality", edges=(0.5,), names=("low", "high")))
    unique = {p["name"]: p["unique"] for p in pools["pools"]}
    budget = 2.0 * unique["high"] / 0.75  # high: 2 epochs; low: a partial pass
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(_plan(pools, {"high": 0.75, "low": 0.25}, budget)))
    summary = materialize(plan_path, tmp_path / "pools", tmp_path / "mat", seed=1)
    man = pads.dataset(tmp_path / "mat" / "manifest.parquet").to_table()
    high = man.filter(pa.compute.equal(man["pool"], "high"))
    assert set(high["repeats"].to_pylist()) == {2} and high.num_rows == pools["pools"][1]["documents"]
    low = man.filter(pa.compute.equal(man["pool"], "low"))
    assert set(low["repeats"].to_pylist()) == {1} and 0 < low.num_rows < pools["pools"][0]["documents"]
    for fig in summary["pools"].values():
        assert fig["planned_seen"] <= fig["seen"] < fig["planned_seen"] + 40  # one document's tokens at most
    data = pads.dataset(tmp_path / "mat" / "data", format="parquet").to_table()
    assert sorted(data["id"].to_pylist()) == sorted(man["id"].to_pylist())
    texts = dict(zip(table["id"].to_pylist(), table["gopher_words"].to_pylist()))
    for doc_id, text in zip(data["id"].to_pylist(), data["text"].to_pylist()):
        assert len(text.split()) == texts[doc_id]  # the right document's text, with its input fields
    assert {"source", "n", "pool", "repeats"} <= set(data.column_names)
    first = (tmp_path / "mat" / "manifest.parquet").read_bytes()
    # expanded: one row per repetition; a new output with the same seed picks the same documents
    materialize(plan_path, tmp_path / "pools", tmp_path / "mat2", seed=1, expand=True)
    rows = pads.dataset(tmp_path / "mat2" / "data", format="parquet").to_table()
    assert rows.num_rows == sum(man["repeats"].to_pylist())
    assert (tmp_path / "mat2" / "manifest.parquet").read_bytes() == first


def test_plan_and_pools_must_agree(tmp_path):
    scored, _ = make_scored_job(tmp_path)
    pools = build_pools(scored, tmp_path / "pools", PoolSpec(score="quality", edges=(0.5,), names=("low", "high")))
    bad = _plan(pools, {"high": 1.0}, 100.0)
    bad["pools"][0]["name"] = "top10"
    (tmp_path / "plan.json").write_text(json.dumps(bad))
    with pytest.raises(MaterializeError, match="top10"):
        materialize(tmp_path / "plan.json", tmp_path / "pools", tmp_path / "m")
    (tmp_path / "plan.json").write_text("{\"pools\": 3}")
    with pytest.raises(MaterializeError, match="not a plan"):
        materialize(tmp_path / "plan.json", tmp_path / "pools", tmp_path / "m")
