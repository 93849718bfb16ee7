"""The demo on a reduced corpus: every stage runs, the ledger adds up, plans follow budgets, outputs load."""
from __future__ import annotations

import json

import pyarrow.dataset as pads
import pytest

from thresher.jobs.cli import main


@pytest.mark.usefixtures("ray_session")
def test_demo_smoke_on_a_reduced_corpus(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--max-docs", "400"]) == 0
    printed = capsys.readouterr().out
    for label in ("[1/6] score", "[4/6] fit", "pilot 15/15", "report:", "summary:", "materialized"):
        assert label in printed  # progress throughout, output paths at the end
    summary = json.loads((out / "job" / "summary.json").read_text())
    assert set(summary["stages"]) == {"score", "dedupe", "pools", "fit", "plan", "materialize"}
    for stage in ("score", "dedupe"):
        led = summary[stage]["ledger"]
        assert led["rows"] == sum(led[s] for s in ("kept", "dropped", "duplicate", "malformed"))
    assert 250 <= summary["corpus"]["documents"] <= 700
    pools = summary["pools"]["pools"]
    assert [p["name"] for p in pools] == ["low", "mid", "high"]
    assert pools[0]["score_high"] <= pools[1]["score_low"] and pools[1]["score_high"] <= pools[2]["score_low"]
    assert summary["fit"]["source"] == "pilot proxy runs" and summary["fit"]["n_obs"] == 15
    obs = (out / "job" / "fit" / "observations.csv").read_text().splitlines()
    assert len(obs) == 16 and obs[0].startswith("run,pool,fraction,seen,unique,value")
    plans = summary["plan"]["plans"]
    assert len(plans) == 3
    for label, p in plans.items():
        total = sum(r["seen"] for r in p["pools"])
        assert total == pytest.approx(p["budget"], rel=1e-6)  # a plan spends its whole budget
        m = summary["materialize"][label]
        assert p["budget"] <= m["materialized_seen"] <= p["budget"] + 3000 * len(p["pools"])  # max doc words per pool
        data = pads.dataset(out / "job" / "materialize" / label / "data", format="parquet").to_table()
        assert data.num_rows == m["documents"] and set(data["pool"].to_pylist()) <= {"low", "mid", "high"}
    html = (out / "job" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 6 and "pilot observations produced by this job" in html
