"""Hugging Face round trip: a saved DatasetDict in, a materialized mixture that `datasets.load_dataset` reads out."""
from __future__ import annotations

import json

import pytest

from tests.docs import CLEAN
from thresher.jobs.cli import main

datasets = pytest.importorskip("datasets")


@pytest.mark.usefixtures("ray_session")
def test_saved_datasetdict_scores_pools_and_materializes_to_load_dataset(tmp_path, capsys):
    texts = [CLEAN.replace("river", f"river {i} " + "word " * (i % 17)) for i in range(24)]
    texts += ["buy now " * (3 + i) for i in range(8)]  # low-quality rows
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": texts[:20], "source": ["a"] * 20, "uid": [f"u{i}" for i in range(20)]}),
        "extra": datasets.Dataset.from_dict({"text": texts[20:], "source": ["b"] * 12,
                                             "uid": [f"u{i}" for i in range(20, 32)]}),
    })
    dd.save_to_disk(str(tmp_path / "hf"))
    assert main(["score", str(tmp_path / "hf"), "--out", str(tmp_path / "scored"), "--scorers", "gopher_quality",
                 "--carry", "source", "--id-field", "uid", "--quiet"]) == 0
    assert main(["pools", str(tmp_path / "scored"), "--score", "gopher_words", "--quantiles", "0.5",
                 "--names", "short,long", "--out", str(tmp_path / "pools"), "--quiet"]) == 0
    assert main(["pools", str(tmp_path / "scored"), "--score", "gopher_words", "--quantiles", "0.5",
                 "--names", "short,long", "--out", str(tmp_path / "pools"), "--overwrite", "--quiet"]) == 0
    pools = json.loads((tmp_path / "pools" / "pools.json").read_text())
    unique = {p["name"]: p["unique"] for p in pools["pools"]}
    assert sum(p["documents"] for p in pools["pools"]) == 32
    budget = unique["long"] * 2 + unique["short"] * 0.5
    plan = {"budget": budget, "unit": "tokens", "pools": [
        {"name": "long", "weight": unique["long"] * 2 / budget, "seen": unique["long"] * 2},
        {"name": "short", "weight": unique["short"] * 0.5 / budget, "seen": unique["short"] * 0.5}]}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    assert main(["materialize", str(tmp_path / "plan.json"), "--pools", str(tmp_path / "pools"),
                 "--out", str(tmp_path / "mix"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "manifest:" in out and "data:" in out
    loaded = datasets.load_dataset(str(tmp_path / "mix"), split="train")
    rows = loaded.to_list()
    by_uid = dict(zip([f"u{i}" for i in range(32)], texts))
    assert all(r["text"] == by_uid[r["id"]] for r in rows)  # ids come from the named id field, texts intact
    long_rows = [r for r in rows if r["pool"] == "long"]
    assert long_rows and all(r["repeats"] == 2 for r in long_rows)
    assert len(long_rows) == next(p["documents"] for p in pools["pools"] if p["name"] == "long")
    short_rows = [r for r in rows if r["pool"] == "short"]
    assert short_rows and all(r["repeats"] == 1 for r in short_rows) and len(short_rows) < 16
    assert {r["source"] for r in rows} <= {"a", "b"} and "uid" in loaded.column_names
