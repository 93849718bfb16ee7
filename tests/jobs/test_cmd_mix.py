"""`thresher mix ot | fit | predict | optimize | exponent` end to end on small synthetic pools."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.reference_data import reference_data_dir
from thresher.jobs.cli import main
from thresher.mixtures.transport import EmbeddingSet, MixtureOT


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    pools = {name: rng.normal(loc=shift, size=(40, 2)) for name, shift in (("web", -1.0), ("code", 0.5), ("books", 2.0))}
    labels = {name: rng.integers(0, 2, 40) for name in pools}
    np.savez(tmp_path / "web.npz", x=pools["web"], labels=labels["web"])
    np.savez(tmp_path / "code.npz", x=pools["code"], labels=labels["code"])
    table = pa.table({"embedding": [list(r) for r in pools["books"]], "label": labels["books"]})
    pq.write_table(table, tmp_path / "books.parquet")
    target = rng.normal(loc=0.3, size=(50, 2))
    target_labels = rng.integers(0, 2, 50)
    np.savez(tmp_path / "val.npz", x=target, labels=target_labels)
    ot_fn = MixtureOT({n: EmbeddingSet(pools[n], labels=labels[n]) for n in pools},
                      EmbeddingSet(target, labels=target_labels), reg=0.05)
    # Pilot runs whose accuracy falls with OT, at two sizes.
    grid = [np.array([i, j, 6 - i - j]) / 6 for i in range(7) for j in range(7 - i)]
    rows = []
    for size, lift in ((500, 0.0), (1000, 0.03)):
        for k, w in enumerate(grid):
            acc = 0.9 + lift - 0.05 * ot_fn.value(w) + 0.002 * rng.normal()
            rows.append({"run": f"r{size}-{k}", "weight_web": w[0], "weight_code": w[1], "weight_books": w[2],
                         "size": size, "accuracy": acc})
    with (tmp_path / "pilots.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with (tmp_path / "mixtures.csv").open("w", newline="") as fh:
        fh.write("name,weight_web,weight_code,weight_books\nA,0.2,0.5,0.3\nB,0,1,0\n")
    return tmp_path, ot_fn


def _pool_args(d):
    return ["--pools", f"web={d / 'web.npz'}", f"code={d / 'code.npz'}", f"books={d / 'books.parquet'}",
            "--target", str(d / "val.npz")]


def test_ot_fit_predict_optimize(files, capsys):
    d, ot_fn = files
    assert main(["mix", "ot", *_pool_args(d), "--weights", "web=0.2,code=0.5,books=0.3", "--mixtures",
                 str(d / "mixtures.csv"), "--out", str(d / "ot.json")]) == 0
    data = json.loads((d / "ot.json").read_text())
    assert data["mixtures"][0]["ot"] == pytest.approx(ot_fn.value([0.2, 0.5, 0.3]), rel=1e-9)
    # --mixtures rows (A, B) come first, then --weights (same as A).
    assert data["mixtures"][2]["ot"] == pytest.approx(data["mixtures"][0]["ot"], rel=1e-12)
    assert sum(data["mixtures"][0]["gradient"].values()) == pytest.approx(0.0, abs=1e-9)
    assert data["pool_ot"]["code"] == pytest.approx(data["mixtures"][1]["ot"], rel=1e-12)

    model = d / "model.json"
    assert main(["mix", "fit", str(d / "pilots.csv"), "--value-column", "accuracy", "--goal", "max",
                 "--form", "linear_ot", *_pool_args(d), "--n-boot", "20", "--out", str(model)]) == 0
    saved = json.loads(model.read_text())
    assert saved["sizes"] == [500.0, 1000.0] and saved["ot"]["solver"] == "sinkhorn"

    assert main(["mix", "predict", "--model", str(model), str(d / "mixtures.csv"), "--size", "1000",
                 "--out", str(d / "pred.csv")]) == 0
    with (d / "pred.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["name"] == "A"
    expected = 0.93 - 0.05 * ot_fn.value([0.2, 0.5, 0.3])
    assert float(rows[0]["predicted"]) == pytest.approx(expected, abs=0.01)
    assert float(rows[0]["predicted_low"]) <= float(rows[0]["predicted"]) <= float(rows[0]["predicted_high"])
    assert main(["mix", "predict", "--model", str(model), str(d / "mixtures.csv"), "--size", "1000",
                 "--interval", "mixture", "--out", str(d / "pred_mixture.csv")]) == 0
    with (d / "pred_mixture.csv").open() as fh:
        wide = list(csv.DictReader(fh))
    assert float(wide[0]["predicted"]) == pytest.approx(float(rows[0]["predicted"]), rel=1e-12)
    assert float(wide[0]["predicted_high"]) - float(wide[0]["predicted_low"]) > (
        float(rows[0]["predicted_high"]) - float(rows[0]["predicted_low"]))

    capsys.readouterr()
    assert main(["mix", "optimize", "--model", str(model), "--size", "1000", "--caps", "code=0.5",
                 "--out", str(d / "mix.json")]) == 0
    out = capsys.readouterr().out
    assert f"mixture: {d / 'mix.json'}" in out
    mix = json.loads((d / "mix.json").read_text())
    w = np.array([mix["weights"][k] for k in ("web", "code", "books")])
    assert w.sum() == pytest.approx(1.0) and w[1] <= 0.5 + 1e-9
    # The chosen mixture is at least as good as every pilot mixture that respects the cap.
    grid = [np.array([i, j, 6 - i - j]) / 6 for i in range(7) for j in range(7 - i)]
    best_grid = min(ot_fn.value(g) for g in grid if g[1] <= 0.5)
    assert ot_fn.value(w) <= best_grid + 1e-6


def test_gbm_with_prices_and_budget(files):
    d, _ = files
    model = d / "gbm.json"
    assert main(["mix", "fit", str(d / "pilots.csv"), "--value-column", "accuracy", "--goal", "max",
                 "--form", "gbm", "--n-boot", "5", "--out", str(model)]) == 0
    assert main(["--quiet", "mix", "optimize", "--model", str(model), "--size", "1000", "--prices",
                 "web=0.01,code=0.05,books=0.02", "--budget", "25", "--out", str(d / "mix.json")]) == 0
    mix = json.loads((d / "mix.json").read_text())
    assert mix["cost"] <= 25 + 1e-6
    assert "search" in mix["method"]


def test_usage_errors_exit_2(files, capsys):
    d, _ = files
    assert main(["mix", "fit", str(d / "pilots.csv"), "--value-column", "accuracy", "--form", "linear_ot",
                 "--out", str(d / "m.json")]) == 2
    assert "needs --pools and --target" in capsys.readouterr().err
    bad = d / "bad.csv"
    bad.write_text("weight_web,weight_code,weight_books,accuracy\n0.5,0.5,0.5,0.9\n")
    assert main(["mix", "fit", str(bad), "--value-column", "accuracy", "--form", "p_linear", "--out", str(d / "m.json")]) == 2
    assert "bad.csv, line 2" in capsys.readouterr().err
    np.save(d / "nan.npy", np.array([[0.0, 1.0], [np.nan, 2.0]]))
    assert main(["mix", "ot", "--pools", str(d / "nan.npy"), str(d / "web.npz"), "--target", str(d / "val.npz"),
                 "--label-cost", "none", "--out", str(d / "o.json")]) == 2
    assert "row 1" in capsys.readouterr().err
    np.save(d / "obj.npy", np.array([{"a": 1}], dtype=object))
    assert main(["mix", "ot", "--pools", str(d / "obj.npy"), str(d / "web.npz"), "--target", str(d / "val.npz"),
                 "--out", str(d / "o.json")]) == 2
    assert "cannot read embeddings" in capsys.readouterr().err
    assert main(["mix", "optimize", "--model", str(d / "missing.json"), "--out", str(d / "x.json")]) == 2


def test_regmix_fit_with_join_option(tmp_path):
    root = reference_data_dir()
    if root is None or not (root / "regmix" / "train_mixture_1m.csv").exists():
        pytest.skip("RegMix tables not found in ../shared/data/regmix (set THRESHER_REFERENCE_DATA)")
    d = root / "regmix"
    model = tmp_path / "regmix.json"
    assert main(["--quiet", "mix", "fit", str(d / "train_mixture_1m.csv"), "--values", str(d / "train_pile_loss_1m.csv"),
                 "--join", "index", "--weight-prefix", "train_the_pile_", "--value-column",
                 "metric/the_pile_pile_cc_val_loss", "--form", "p_linear", "--n-boot", "0", "--out", str(model)]) == 0
    assert main(["--quiet", "mix", "predict", "--model", str(model), str(d / "test_mixture_1m.csv"),
                 "--weight-prefix", "train_the_pile_", "--out", str(tmp_path / "p.csv")]) == 0
    with (tmp_path / "p.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 256 and "predicted" in rows[0] and rows[0]["index"] == "1"


def _sweep_csv(path: Path, alpha: float, sizes: tuple[int, ...], rng: np.random.Generator) -> None:
    grid = [np.array([i, j, 4 - i - j]) / 4 for i in range(5) for j in range(5 - i)]
    with path.open("w", newline="") as fh:
        fh.write("weight_web,weight_code,weight_books,size,accuracy\n")
        for n in sizes:
            for w in grid:
                acc = 0.8 + 0.05 * w[0] - (2.0 + w[1]) * n**-alpha + 0.0005 * rng.normal()
                fh.write(f"{w[0]},{w[1]},{w[2]},{n},{acc}\n")


def test_exponent_prior_feeds_fit(files, capsys):
    d, _ = files
    rng = np.random.default_rng(1)
    sizes = (200, 400, 800, 1600, 3200)
    for k, a in enumerate((0.45, 0.55, 0.5)):
        _sweep_csv(d / f"sweep{k}.csv", a, sizes, rng)
    sweeps = [str(d / f"sweep{k}.csv") for k in range(3)]
    assert main(["mix", "exponent", *sweeps, "--value-column", "accuracy", "--out", str(d / "prior.json")]) == 0
    prior = json.loads((d / "prior.json").read_text())
    assert [s["exponent"] for s in prior["sweeps"]] == pytest.approx([0.45, 0.55, 0.5], abs=0.02)
    assert prior["size_prior"] == pytest.approx([0.5, 0.05], abs=0.02)
    # Two pilot sizes: without a prior, projektor's log law; with it, a power law at the prior's exponent.
    for extra, law in (([], "log"), (["--size-prior", str(d / "prior.json")], "power"), (["--size-prior", "0.5,0.05"], "power")):
        assert main(["mix", "fit", str(d / "pilots.csv"), "--value-column", "accuracy", "--goal", "max", "--form",
                     "p_quadratic", "--n-boot", "10", *extra, "--out", str(d / "m.json")]) == 0
        model = json.loads((d / "m.json").read_text())
        assert model["law"] == law
        if law == "power":
            assert model["size_alpha"] == pytest.approx(prior["size_prior"][0] if "prior.json" in extra[-1] else 0.5)
    capsys.readouterr()
    _sweep_csv(d / "short.csv", 0.5, (400, 800), rng)
    assert main(["mix", "exponent", sweeps[0], str(d / "short.csv"), "--value-column", "accuracy"]) == 2
    assert "short.csv: 2 size(s)" in capsys.readouterr().err
    assert main(["mix", "exponent", sweeps[0], "--value-column", "accuracy"]) == 2
    assert "at least two sweeps" in capsys.readouterr().err
    (d / "latin1.json").write_bytes(b'{"size_prior": "\xe9"}')
    for bad, message in (("0.5", "must be MEAN,SD"), ("0.5,-1", "positive mean and SD"),
                         (str(d / "missing.json"), "not a size prior"), (str(d / "latin1.json"), "not a size prior")):
        assert main(["mix", "fit", str(d / "pilots.csv"), "--value-column", "accuracy", "--form", "p_linear",
                     "--size-prior", bad, "--out", str(d / "m.json")]) == 2
        assert message in capsys.readouterr().err
    assert main(["mix", "fit", str(d / "pilots.csv"), "--value-column", "accuracy", "--form", "p_linear",
                 "--size-law", "log", "--size-prior", "0.5,0.05", "--out", str(d / "m.json")]) == 2
    assert "cannot go with --size-law log" in capsys.readouterr().err


def test_the_library_steps_give_the_cli_outputs(files):
    """The workflow the command runs, called from Python: same model and predictions, byte for byte."""
    from thresher.jobs.mix_inputs import TableLayout, load_model
    from thresher.jobs.mix_workflow import fit_model, predict_csv

    d, _ = files
    assert main(["--quiet", "mix", "fit", str(d / "pilots.csv"), "--value-column", "accuracy", "--goal", "max",
                 "--form", "linear_ot", *_pool_args(d), "--n-boot", "10", "--out", str(d / "cli.json")]) == 0
    assert main(["--quiet", "mix", "predict", "--model", str(d / "cli.json"), str(d / "mixtures.csv"), "--size", "800",
                 "--out", str(d / "cli.csv")]) == 0
    config = {"pools": {"web": str(d / "web.npz"), "code": str(d / "code.npz"), "books": str(d / "books.parquet")},
              "target": str(d / "val.npz"), "solver": "sinkhorn", "reg": 0.05, "label_cost": "gaussian",
              "label_weight": 1.0, "max_per_pool": 1000, "n_projections": 200, "embedding_column": "embedding"}
    lines = []
    model = fit_model(str(d / "pilots.csv"), "accuracy", "linear_ot", TableLayout(), ot_config=config, size_law="auto",
                      size_prior=None, goal="max", alpha=1e-3, n_boot=10, seed=0, log=lines.append)
    model.save(d / "lib.json")
    assert (d / "lib.json").read_bytes() == (d / "cli.json").read_bytes()
    assert any(line.startswith("fitted linear_ot on 56 runs") for line in lines)
    n = predict_csv(load_model(d / "lib.json"), str(d / "mixtures.csv"), d / "lib.csv", TableLayout(), size=800.0,
                    level=0.9, interval="mean")
    assert n == 2 and (d / "lib.csv").read_bytes() == (d / "cli.csv").read_bytes()
