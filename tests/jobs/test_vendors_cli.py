"""`thresher vendors`: spec validation, untrusted vendor files, and the reports."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from tests.mixtures.test_vendors import _world
from thresher.jobs.embedding_files import DataFileError
from thresher.jobs.spec_kit import SpecError
from thresher.jobs.vendor_rows import read_rows
from thresher.jobs.vendor_spec import load_spec
from thresher.jobs.vendor_workflow import evaluate_spec


def _write_world(tmp_path):
    owned, target, samples = _world()
    np.savez(tmp_path / "owned.npz", x=owned[0], labels=owned[1])
    np.savez(tmp_path / "target.npz", x=target[0], labels=target[1])
    with (tmp_path / "comp.jsonl").open("w") as fh:  # JSON lines with three malformed rows
        for x, y in zip(*samples["complementary"]):
            fh.write(json.dumps({"embedding": x.tolist(), "label": int(y)}) + "\n")
        fh.write("{not json\n")
        fh.write(json.dumps({"embedding": [1.0, 2.0], "label": 1}) + "\n")
        fh.write(json.dumps({"embedding": x.tolist(), "label": [1]}) + "\n")
    np.savez(tmp_path / "dup.npz", x=samples["duplicate"][0], labels=samples["duplicate"][1])
    np.savez(tmp_path / "junk.npz", x=samples["junk"][0], labels=samples["junk"][1])


def _spec(**over):
    spec = {
        "name": "synthetic",
        "budget": 1500,
        "currency": "EUR",
        "owned": [{"name": "mine", "path": "owned.npz"}],
        "target": {"path": "target.npz"},
        "proxy": {"kind": "classifier", "model": "logistic", "repeats": 3},
        "vendors": [
            {"name": "comp", "sample": "comp.jsonl", "available": 2000, "price": 1.0},
            {"name": "dup", "sample": "dup.npz", "available": 2000,
             "price": {"unit": "sample", "tiers": [{"upto": 500, "amount": 1.0}, {"upto": None, "amount": 0.5}]}},
            {"name": "junk", "sample": "junk.npz", "available": 2000, "price": {"unit": "document", "amount": 0.2}},
        ],
        "evaluation": {"n_boot": 100},
        "ot": {"max_points": 150, "n_boot": 5},
    }
    spec.update(over)
    return spec


def _save(tmp_path, spec, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


def test_cli_writes_reports_and_quarantine(tmp_path, capsys):
    from thresher.jobs.cli import main

    _write_world(tmp_path)
    spec_path = _save(tmp_path, _spec())
    out = tmp_path / "out"
    assert main(["vendors", str(spec_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "report.json" in printed and "report.html" in printed
    report = json.loads((out / "report.json").read_text())
    by = {v["name"]: v for v in report["vendors"]}
    assert by["comp"]["decision"] == "buy" and by["dup"]["decision"] == "skip" and by["junk"]["decision"] == "skip"
    assert report["purchase"]["total_cost"] <= 1500
    assert by["comp"]["quarantined"] == 3 and by["comp"]["revealed"] == 200
    assert by["comp"]["ot"]["delta"] > 0  # the complementary vendor moves the data toward the target
    lines = [json.loads(x) for x in (out / "quarantine" / "comp.jsonl").read_text().splitlines()]
    assert [q["line"] for q in lines] == [201, 202, 203]
    assert "not valid JSON" in lines[0]["reason"] and "2 values" in lines[1]["reason"] and "label" in lines[2]["reason"]
    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64" in html and "comp" in html


def test_cli_help_has_example(capsys):
    from thresher.jobs.cli import main

    with pytest.raises(SystemExit):
        main(["vendors", "--help"])
    assert "example" in capsys.readouterr().out


@pytest.mark.parametrize(("change", "key"), [
    ({"budgett": 3}, "budgett"),
    ({"budget": -1}, "budget"),
    ({"level": 1.5}, "level"),
    ({"proxy": {"kind": "magic"}}, "proxy.kind"),
    ({"proxy": {"fractions": [0.5, 2]}}, "proxy.fractions[1]"),
    ({"vendors": [{"name": "a", "sample": "junk.npz", "available": 10, "price": {"unit": "byte", "amount": 1}}]},
     "vendors[0].price.unit"),
    ({"vendors": [{"name": "a", "sample": "junk.npz", "available": 10, "price": 1, "colour": "red"}]},
     "vendors[0].colour"),
    ({"vendors": [{"name": "a", "sample": "junk.npz", "available": -5, "price": 1}]}, "vendors[0].available"),
    ({"vendors": [{"name": "../evil", "sample": "junk.npz", "available": 5, "price": 1}]}, "vendors[0].name"),
    ({"vendors": [{"name": "a", "sample": "missing.npz", "available": 5, "price": 1}]}, "vendors[0].sample"),
    ({"vendors": [{"name": "a", "sample": "junk.npz", "available": 5,
                   "price": {"tiers": [{"upto": 10, "amount": 1}, {"upto": 5, "amount": 1}, {"upto": None, "amount": 1}]}}]},
     "vendors[0].price.tiers[1].upto"),
    ({"ot": {"solver": "fast"}}, "ot.solver"),
])
def test_spec_errors_name_the_key(tmp_path, change, key):
    _write_world(tmp_path)
    path = _save(tmp_path, _spec(**change))
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    assert f": {key}:" in str(exc.value) and "spec.yaml" in str(exc.value)


def test_bad_yaml_is_a_usage_error(tmp_path, capsys):
    from thresher.jobs.cli import main

    path = tmp_path / "spec.yaml"
    path.write_text("budget: [1, 2\n")
    assert main(["vendors", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_oversized_vendor_file_is_refused(tmp_path, capsys):
    from thresher.jobs.cli import main

    _write_world(tmp_path)
    big = tmp_path / "big.jsonl"
    big.write_text((json.dumps({"embedding": [0.0] * 8, "label": 1}) + "\n") * 40000)  # ~1.5 MB
    spec = _spec(vendors=[{"name": "big", "sample": "big.jsonl", "available": 10, "price": 1}],
                 limits={"max_file_mb": 1})
    assert main(["vendors", str(_save(tmp_path, spec)), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "big.jsonl" in err and "exceeds the 1.0 MB limit" in err
    with pytest.raises(DataFileError, match="more than 100 rows"):
        read_rows(big, max_bytes=10**9, max_rows=100)


def test_pickled_npy_is_refused(tmp_path):
    path = tmp_path / "evil.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataFileError, match="object arrays are refused"):
        read_rows(path, max_bytes=10**6, max_rows=10)


def test_pilot_csv_proxy(tmp_path):
    _write_world(tmp_path)
    rows = ["vendor,quantity,metric"] + [f",0,{0.60 + 0.002 * s}" for s in range(4)]
    for q, acc in ((50, 0.70), (100, 0.75), (200, 0.80)):
        rows += [f"comp,{q},{acc + 0.003 * s}" for s in range(3)]
        rows += [f"dup,{q},{0.60 + 0.002 * s}" for s in range(3)]
        rows += [f"junk,{q},{0.55 - q / 1e4 + 0.002 * s}" for s in range(3)]
    (tmp_path / "pilots.csv").write_text("\n".join(rows) + "\n")
    spec = load_spec(_save(tmp_path, _spec(proxy={"kind": "pilot_csv", "path": "pilots.csv"}, ot=None)))
    result = evaluate_spec(spec, tmp_path / "out")
    by = {v["name"]: v for v in result["vendors"]}
    assert by["comp"]["decision"] == "buy" and by["junk"]["decision"] == "skip"
    assert by["dup"]["decision"] != "buy"
    assert result["purchase"]["total_cost"] <= 1500


def _sentences(rng, words, n, length=12):
    return [" ".join(rng.choice(words, length)) + "." for _ in range(n)]


def test_unlabelled_text_with_ngram_proxy(tmp_path):
    rng = np.random.default_rng(5)
    cooking = "the cook stirs soup with salt and pepper in a hot pan then bakes bread".split()
    sailing = "the sailor trims the sail and steers the boat across the windy harbour at dawn".split()
    owned = _sentences(rng, cooking, 300)
    target = _sentences(rng, cooking, 100) + _sentences(rng, sailing, 100)
    vendors = {
        "sailing": _sentences(rng, sailing, 200),
        "copies": [owned[i] for i in rng.choice(300, 200, replace=False)],
        "gibberish": [" ".join("".join(rng.choice(list("qxzjkvw"), 6)) for _ in range(12)) for _ in range(200)],
    }

    def dump(name, texts):
        with (tmp_path / name).open("w") as fh:
            for t in texts:
                fh.write(json.dumps({"text": t}) + "\n")

    dump("owned.jsonl", owned)
    dump("target.jsonl", target)
    for name, texts in vendors.items():
        dump(f"{name}.jsonl", texts)
    spec = _spec(
        owned=[{"name": "mine", "path": "owned.jsonl"}], target={"path": "target.jsonl"},
        proxy={"kind": "ngram", "repeats": 2}, budget=100,
        vendors=[{"name": n, "sample": f"{n}.jsonl", "available": 1000, "price": {"unit": "token", "amount": 0.005}}
                 for n in vendors],
        ot={"max_points": 100, "n_boot": 3})
    result = evaluate_spec(load_spec(_save(tmp_path, spec)), tmp_path / "out")
    by = {v["name"]: v for v in result["vendors"]}
    assert result["metric"] == "neg_bits_per_token"
    assert by["sailing"]["decision"] == "buy" and by["sailing"]["gain"]["low"] > 0
    assert by["copies"]["duplicate_fraction"] == 1.0 and by["copies"]["decision"] == "skip"
    assert by["gibberish"]["decision"] == "skip"
    assert by["sailing"]["price"]["tokens_per_row"] == pytest.approx(12.0)
    assert result["purchase"]["total_cost"] <= 100


def test_repetition_section_uses_the_utility_law(tmp_path):
    from thresher.mixtures.fitting import FittedLaw
    from thresher.mixtures.planning import Pool
    from thresher.pipeline.pools import write_pools_json

    _write_world(tmp_path)
    params = {"a": 0.025, "d": 0.1, "b[mine]": -0.16, "b[comp]": -0.125, "tau[mine]": 6.73, "tau[comp]": 8.55}
    FittedLaw(law_name="goyal", law_options={"tau_scaling": "by_pool_count", "Z": 1e5}, pools=("mine", "comp"),
              params=params, unit="samples").save(tmp_path / "law.json")
    write_pools_json({"unit": "samples", "pools": [Pool("mine", 600.0).to_dict()]}, tmp_path / "pools.json")
    spec = _spec(ot=None, repetition={"fit": "law.json", "pools": "pools.json", "budget": 20000})
    result = evaluate_spec(load_spec(_save(tmp_path, spec)), tmp_path / "out")
    by = {v["name"]: v for v in result["vendors"]}
    assert by["comp"]["repetition"]["gain"] > 0 and by["comp"]["repetition"]["vendor_epochs"] > 1
    assert "not a pool" in by["junk"]["repetition"]["note"]
    with pytest.raises(SpecError, match="repetition.budget"):
        load_spec(_save(tmp_path, _spec(repetition={"fit": "law.json", "pools": "pools.json", "budget": -1}), "b.yaml"))
