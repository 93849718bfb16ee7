"""`thresher fit | predict | plan | frontier` end to end on a small synthetic table."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from thresher.jobs.cli import main
from thresher.jobs.cmd_laws import parse_amount
from thresher.mixtures.laws import GoyalLaw, LawData


@pytest.fixture()
def runs_csv(tmp_path):
    """Single-pool pilot runs of two pools from known Goyal parameters, 1-8 epochs."""
    truth = {"a": 0.02, "d": 0.1, "b[hq]": -0.18, "b[lq]": -0.09, "tau[hq]": 3.0, "tau[lq]": 8.0}
    rows = []
    for pool in ("hq", "lq"):
        for seen in 1e6 * np.array([0.25, 0.5, 1, 2, 3, 4, 5, 6, 7, 8]):
            w = np.array([[1.0, 0.0]]) if pool == "hq" else np.array([[0.0, 1.0]])
            y = GoyalLaw().predict(truth, LawData(w, np.full((1, 2), 1e6), np.array([seen]), np.array([np.nan])), ["hq", "lq"])
            rows.append({"run": f"{pool}-run", "bucket": pool, "samples": seen, "pool_size": 1e6, "err": float(y[0])})
    path = tmp_path / "runs.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


COLUMNS = "run=run,pool=bucket,seen=samples,unique=pool_size,value=err"


def test_fit_predict_plan_frontier(tmp_path, runs_csv, capsys) -> None:
    fit_path = tmp_path / "fit.json"
    assert main(["fit", str(runs_csv), "--law", "goyal", "--columns", COLUMNS, "--unit", "samples",
                 "--out", str(fit_path)]) == 0
    out = capsys.readouterr().out
    assert f"fit: {fit_path}" in out and "b[hq]" in out
    saved = json.loads(fit_path.read_text())
    assert saved["params"]["tau[hq]"] == pytest.approx(3.0, rel=1e-3)

    pred_path = tmp_path / "pred.csv"
    assert main(["predict", "--fit", str(fit_path), str(runs_csv), "--columns", COLUMNS, "--unit", "samples",
                 "--out", str(pred_path)]) == 0
    with pred_path.open() as fh:
        got = list(csv.DictReader(fh))
    assert len(got) == 20 and "predicted" in got[0]
    assert float(got[3]["predicted"]) == pytest.approx(float(got[3]["err"]), rel=1e-4)
    assert "MAPE" in capsys.readouterr().out

    pools = tmp_path / "pools.json"
    pools.write_text(json.dumps({"unit": "samples", "pools": [{"name": "hq", "unique": 1e6, "documents": 1000},
                                                               {"name": "lq", "unique": 4e6}]}))
    plan_path, png = tmp_path / "plan.json", tmp_path / "plan.png"
    assert main(["--quiet", "plan", "--fit", str(fit_path), "--pools", str(pools), "--budget", "20M",
                 "--out", str(plan_path), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [f"plan: {plan_path}", f"plot: {png}"]  # --quiet: only output paths
    plan = json.loads(plan_path.read_text())
    assert plan["budget"] == 20e6 and plan["unit"] == "samples"
    assert sum(p["seen"] for p in plan["pools"]) == pytest.approx(20e6)
    assert all(p["unique_used"] <= p["unique"] for p in plan["pools"])
    assert plan["law"]["fit"]["law"] == "goyal" and len(plan["law"]["fit_sha256"]) == 64
    assert png.stat().st_size > 1000

    fr_path = tmp_path / "frontier.json"
    assert main(["frontier", "--fit", str(fit_path), "--pools", str(pools), "--budgets", "1M,4M,20M",
                 "--out", str(fr_path), "--link-fit"]) == 0
    fr = json.loads(fr_path.read_text())
    assert fr["budgets"] == [1e6, 4e6, 20e6] and fr["law"]["fit_path"].endswith("fit.json")


def test_predict_without_value_column(tmp_path, runs_csv) -> None:
    fit_path = tmp_path / "fit.json"
    assert main(["--quiet", "fit", str(runs_csv), "--law", "goyal", "--columns", COLUMNS, "--grid", "small",
                 "--max-starts", "1", "--out", str(fit_path)]) == 0
    new = tmp_path / "new.csv"
    new.write_text("bucket,samples,pool_size\nhq,5000000,1000000\n")
    out = tmp_path / "p.csv"
    assert main(["--quiet", "predict", "--fit", str(fit_path), str(new), "--columns",
                 "pool=bucket,seen=samples,unique=pool_size", "--out", str(out)]) == 0
    assert "predicted" in out.read_text().splitlines()[0]


def test_usage_errors(tmp_path, runs_csv, capsys) -> None:
    assert main(["fit", str(runs_csv), "--law", "nope", "--columns", COLUMNS, "--out", str(tmp_path / "f.json")]) == 2
    assert "unknown law" in capsys.readouterr().err
    columns = COLUMNS.replace("seen=samples", "seen=missing")
    assert main(["fit", str(runs_csv), "--columns", columns, "--out", str(tmp_path / "f.json")]) == 2
    assert "no column 'missing'" in capsys.readouterr().err
    assert main(["plan", "--fit", str(tmp_path / "none.json"), "--pools", "p.json", "--budget", "1M",
                 "--out", str(tmp_path / "x.json")]) == 2
    assert "no such fit file" in capsys.readouterr().err
    for cmd in ("fit", "predict", "plan", "frontier"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        assert "example" in capsys.readouterr().out


def test_parse_amount() -> None:
    assert parse_amount("640M") == 640e6
    assert parse_amount("2.5B") == 2.5e9
    assert parse_amount("1e11") == 1e11
    from thresher.jobs.cli import UsageError

    with pytest.raises(UsageError):
        parse_amount("lots")
