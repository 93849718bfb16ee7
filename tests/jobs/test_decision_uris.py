"""The decision commands (fit, predict, plan, mix, vendors, classifier/fluency train) on URIs.

Every file they read or write may be a URI. These run each command twice, in process: on
local files, then with its inputs and outputs under `memory://` (fsspec's in-process store),
and require the same output bytes (paths a file records are mapped from the local folder
to the URI first). An oversize object is refused as a local file is, before it is fetched,
and a missing one is one line naming it. The S3 test does one fit on a real S3 server.
"""
from __future__ import annotations

import dataclasses
import json
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.jobs import test_cmd_laws, test_cmd_mix
from tests.jobs.test_vendors_cli import _spec, _write_world
from thresher.jobs.cli import main
from thresher.pipeline import storage

# The data of the local tests of these commands: the same fixtures, so both runs read the same files.
runs_csv = test_cmd_laws.runs_csv
files = test_cmd_mix.files
COLUMNS = test_cmd_laws.COLUMNS

FIT = ["--law", "goyal", "--columns", COLUMNS, "--unit", "samples", "--grid", "small", "--max-starts", "2"]


@pytest.fixture()
def mem():
    """A fresh folder in the in-process memory store, removed afterwards."""
    root = storage.at(f"memory://decision-{uuid.uuid4().hex[:8]}")
    yield root
    root.remove_tree()


def _upload(folder: Path, root, *names: str) -> None:
    for name in names:
        (root / name).write_bytes((folder / name).read_bytes())


def _without_seconds(data: bytes) -> dict:
    """A fit file without its wall-clock time, the one field two identical fits differ in."""
    doc = json.loads(data)
    doc.pop("seconds")
    return doc


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ---- fit, predict, plan ---------------------------------------------------------------------------------------

def test_fit_and_predict_on_uris_write_what_local_runs_write(tmp_path, runs_csv, mem, capsys):
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    pq.write_table(pcsv.read_csv(runs_csv), tmp_path / "runs.parquet")
    _upload(tmp_path, mem, "runs.csv", "runs.parquet")
    for table in ("runs.csv", "runs.parquet"):
        local_fit, remote_fit = tmp_path / f"{table}.fit.json", mem / f"{table}.fit.json"
        assert main(["fit", str(tmp_path / table), *FIT, "--out", str(local_fit)]) == 0
        assert main(["fit", (mem / table).uri, *FIT, "--out", remote_fit.uri]) == 0
        assert f"fit: {remote_fit.uri}" in capsys.readouterr().out
        assert _without_seconds(remote_fit.read_bytes()) == _without_seconds(local_fit.read_bytes())

    (mem / "fit.json").write_bytes(local_fit.read_bytes())  # one fit for every prediction: same predictions
    for out in ("pred.csv", "pred.parquet"):
        assert main(["--quiet", "predict", "--fit", str(local_fit), str(runs_csv), "--columns", COLUMNS,
                     "--unit", "samples", "--out", str(tmp_path / out)]) == 0
        assert main(["--quiet", "predict", "--fit", (mem / "fit.json").uri, (mem / "runs.csv").uri, "--columns",
                     COLUMNS, "--unit", "samples", "--out", (mem / out).uri]) == 0
        assert (mem / out).read_bytes() == (tmp_path / out).read_bytes()
    assert capsys.readouterr().out.splitlines()[-1] == f"predictions: {(mem / 'pred.parquet').uri}"


def test_plan_and_frontier_read_and_write_uris_as_local_files(tmp_path, runs_csv, mem, capsys):
    fit = tmp_path / "fit.json"
    assert main(["--quiet", "fit", str(runs_csv), *FIT, "--out", str(fit)]) == 0
    (mem / "fit.json").write_bytes(fit.read_bytes())
    pools = tmp_path / "pools.json"
    pools.write_text(json.dumps({"unit": "samples", "pools": [{"name": "hq", "unique": 1e6}, {"name": "lq", "unique": 4e6}]}))
    common = ["--pools", str(pools), "--budget", "20M"]
    assert main(["--quiet", "plan", "--fit", str(fit), *common, "--out", str(tmp_path / "a.json")]) == 0
    assert main(["--quiet", "plan", "--fit", (mem / "fit.json").uri, *common, "--out", str(tmp_path / "b.json")]) == 0
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert main(["frontier", "--fit", (mem / "fit.json").uri, *common[:2], "--budgets", "1M,4M",
                 "--out", str(tmp_path / "fr.json"), "--link-fit"]) == 0
    assert json.loads((tmp_path / "fr.json").read_text())["law"]["fit_path"] == (mem / "fit.json").uri

    # pools from a URI, plan and its plot to URIs: the bytes a local run writes
    (mem / "pools.json").write_bytes(pools.read_bytes())
    assert main(["--quiet", "plan", "--fit", str(fit), "--pools", (mem / "pools.json").uri, "--budget", "20M",
                 "--out", (mem / "plan.json").uri, "--plot", (mem / "plan.png").uri]) == 0
    assert (mem / "plan.json").read_bytes() == (tmp_path / "a.json").read_bytes()
    assert (mem / "plan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not Path("memory:").exists()  # nothing written to a local folder named after the URI


def test_an_oversize_object_is_refused_like_a_local_file_before_it_is_fetched(tmp_path, runs_csv, mem, capsys,
                                                                                monkeypatch):
    from thresher.mixtures import fitted_law, observation_files
    from thresher.pipeline.storage import Location

    fit = tmp_path / "fit.json"
    assert main(["--quiet", "fit", str(runs_csv), *FIT, "--out", str(fit)]) == 0
    _upload(tmp_path, mem, "runs.csv", "fit.json")
    monkeypatch.setattr(observation_files, "MAX_BYTES", 1000)
    monkeypatch.setattr(fitted_law, "FORMAT", dataclasses.replace(fitted_law.FORMAT, max_bytes=100))

    def no_fetch(self, *args, **kwargs):
        raise AssertionError(f"{self.uri} was fetched although it is over its limit")

    lines = {}
    for where, root in (("local", str(tmp_path)), ("remote", mem.uri)):
        with monkeypatch.context() as m:
            if where == "remote":
                m.setattr(Location, "open_input", no_fetch)
            assert main(["fit", f"{root}/runs.csv", *FIT, "--out", f"{root}/f.json"]) == 2
            table = _error_line(capsys)
            assert main(["predict", "--fit", f"{root}/fit.json", f"{root}/runs.csv", "--out", f"{root}/p.csv"]) == 2
            fit_line = _error_line(capsys)
        lines[where] = [table.replace(root, "ROOT"), fit_line.replace(root, "ROOT")]
    assert lines["remote"] == lines["local"]
    assert "ROOT/runs.csv:" in lines["local"][0] and "over the 1000 bytes limit for observation table files" in lines["local"][0]
    assert "ROOT/fit.json:" in lines["local"][1] and "limit for fit files" in lines["local"][1]


def test_missing_objects_are_one_line_naming_them(mem, capsys, files):
    d, _ = files
    none = (mem / "none").uri
    runs = [
        (["fit", f"{none}/runs.csv", "--out", f"{none}/f.json"], f"{none}/runs.csv: no such file"),
        (["predict", "--fit", f"{none}/fit.json", f"{none}/runs.csv", "--out", f"{none}/p.csv"],
         f"{none}/fit.json: no such fit file"),
        (["mix", "predict", "--model", f"{none}/model.json", f"{none}/m.csv", "--out", f"{none}/p.csv"],
         f"{none}/model.json: no such performance model file"),
        (["mix", "ot", "--pools", f"web={none}/web.npz", f"code={d / 'code.npz'}", "--target", str(d / "val.npz"),
          "--out", f"{none}/ot.json"], f"{none}/web.npz: no such embedding file"),
        (["mix", "fit", f"{none}/pilots.csv", "--value-column", "accuracy", "--form", "p_linear",
          "--out", f"{none}/m.json"], f"{none}/pilots.csv: no such file"),
        (["vendors", f"{none}/spec.yaml", "--out", f"{none}/out"], f"{none}/spec.yaml: no such vendor spec"),
    ]
    for argv, expected in runs:
        assert main(argv) == 2, argv
        line = _error_line(capsys)
        assert expected in line, (argv, line)
    assert not (mem / "none").exists()


# ---- mix ------------------------------------------------------------------------------------------------------

def _pools(root: str) -> list[str]:
    return ["--pools", f"web={root}/web.npz", f"code={root}/code.npz", f"books={root}/books.parquet",
            "--target", f"{root}/val.npz"]


def test_mix_steps_on_uris_write_what_local_runs_write(files, mem, capsys):
    d, _ = files
    rng = np.random.default_rng(3)
    for k, a in enumerate((0.45, 0.55)):
        test_cmd_mix._sweep_csv(d / f"sweep{k}.csv", a, (400, 800, 1600), rng)
    _upload(d, mem, "web.npz", "code.npz", "books.parquet", "val.npz", "pilots.csv", "mixtures.csv", "sweep0.csv",
            "sweep1.csv")
    outputs = []
    for root in (str(d), mem.uri):
        sub = f"{root}/out"
        assert main(["--quiet", "mix", "ot", *_pools(root), "--mixtures", f"{root}/mixtures.csv",
                     "--weights", "web=0.2,code=0.5,books=0.3", "--out", f"{sub}/ot.json"]) == 0
        assert main(["--quiet", "mix", "fit", f"{root}/pilots.csv", "--value-column", "accuracy", "--goal", "max",
                     "--form", "linear_ot", *_pools(root), "--n-boot", "5", "--out", f"{sub}/model.json"]) == 0
        assert main(["--quiet", "mix", "predict", "--model", f"{sub}/model.json", f"{root}/mixtures.csv",
                     "--size", "1000", "--out", f"{sub}/pred.csv"]) == 0
        assert main(["--quiet", "mix", "optimize", "--model", f"{sub}/model.json", "--size", "1000",
                     "--out", f"{sub}/mix.json"]) == 0
        assert main(["--quiet", "mix", "exponent", f"{root}/sweep0.csv", f"{root}/sweep1.csv", "--value-column",
                     "accuracy", "--out", f"{sub}/prior.json"]) == 0
        assert main(["--quiet", "mix", "fit", f"{root}/pilots.csv", "--value-column", "accuracy", "--goal", "max",
                     "--form", "p_linear", "--size-prior", f"{sub}/prior.json", "--n-boot", "5",
                     "--out", f"{sub}/p_linear.json"]) == 0
        outputs.append(capsys.readouterr().out.splitlines())
    names = ("ot.json", "model.json", "pred.csv", "mix.json", "prior.json", "p_linear.json")
    for name in names:
        local = (d / "out" / name).read_bytes().replace(str(d).encode(), mem.uri.encode())
        assert (mem / "out" / name).read_bytes() == local, name
    assert outputs[1] == [line.replace(str(d), mem.uri) for line in outputs[0]]
    assert outputs[1][0] == f"ot: {mem.uri}/out/ot.json"


def test_mix_table_errors_name_the_uri(files, mem, capsys, monkeypatch):
    from thresher.mixtures import observation_files

    d, _ = files
    (mem / "bad.csv").write_text("run,accuracy\nr1,0.5\n")
    fit = ["--value-column", "accuracy", "--form", "p_linear", "--out", (mem / "m.json").uri]
    assert main(["mix", "fit", (mem / "bad.csv").uri, *fit]) == 2
    line = _error_line(capsys)
    assert f"{mem.uri}/bad.csv: no weight columns" in line and "thresher-copy" not in line
    _upload(d, mem, "pilots.csv")
    monkeypatch.setattr(observation_files, "MAX_BYTES", 100)
    lines = []
    for root in (str(d), mem.uri):
        assert main(["mix", "fit", f"{root}/pilots.csv", *fit]) == 2
        lines.append(_error_line(capsys).replace(root, "ROOT"))
    assert lines[0] == lines[1] and "ROOT/pilots.csv: " in lines[0] and "over the 100 bytes limit" in lines[0]
    assert not (mem / "m.json").exists()


def test_mix_model_finds_its_embeddings_next_to_it_in_the_store(files, mem):
    """A model fitted with relative embedding paths, moved with them into a store, finds them beside itself."""
    import os

    d, _ = files
    _upload(d, mem, "web.npz", "code.npz", "books.parquet", "val.npz", "mixtures.csv")
    cwd = os.getcwd()
    os.chdir(d)
    try:
        pools = ["--pools", "web=web.npz", "code=code.npz", "books=books.parquet", "--target", "val.npz"]
        assert main(["--quiet", "mix", "fit", "pilots.csv", "--value-column", "accuracy", "--goal", "max",
                     "--form", "linear_ot", *pools, "--n-boot", "5", "--out", "model.json"]) == 0
        assert main(["--quiet", "mix", "predict", "--model", "model.json", "mixtures.csv", "--size", "1000",
                     "--out", "pred.csv"]) == 0
    finally:
        os.chdir(cwd)
    _upload(d, mem, "model.json")
    assert main(["--quiet", "mix", "predict", "--model", (mem / "model.json").uri, (mem / "mixtures.csv").uri,
                 "--size", "1000", "--out", (mem / "pred.csv").uri]) == 0
    assert (mem / "pred.csv").read_bytes() == (d / "pred.csv").read_bytes()


def test_embedding_limits_hold_for_objects(tmp_path, mem):
    from thresher.jobs.embedding_files import DataFileError, FileLimits, read_embeddings

    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    np.savez(tmp_path / "e.npz", x=x)
    np.save(tmp_path / "e.npy", x)
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    _upload(tmp_path, mem, "e.npz", "e.npy", "o.npy")
    for name in ("e.npz", "e.npy"):
        assert np.array_equal(read_embeddings((mem / name).uri).x, x)
        with pytest.raises(DataFileError, match=f"{mem.uri}/{name}: .* exceeds the .* limit"):
            read_embeddings(mem / name, FileLimits(max_bytes=100))
    with pytest.raises(DataFileError, match=f"{mem.uri}/o.npy: cannot read embeddings .*object arrays are refused"):
        read_embeddings(mem / "o.npy")


# ---- vendors --------------------------------------------------------------------------------------------------

def test_vendors_spec_files_and_reports_on_uris(tmp_path, mem, capsys):
    _write_world(tmp_path)
    spec = _spec(evaluation={"n_boot": 20}, ot=None)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    _upload(tmp_path, mem, "spec.yaml", "owned.npz", "target.npz", "comp.jsonl", "dup.npz", "junk.npz")
    assert main(["--quiet", "vendors", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "out")]) == 0
    assert main(["--quiet", "vendors", (mem / "spec.yaml").uri, "--out", (mem / "out").uri]) == 0
    local_out = str((tmp_path / "out").resolve())
    for name in ("report.json", "report.html", "quarantine/comp.jsonl"):
        local = (tmp_path / "out" / name).read_bytes().replace(local_out.encode(), f"{mem.uri}/out".encode())
        assert (mem / "out" / name).read_bytes() == local, name
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2:] == [f"report: {mem.uri}/out/report.json", f"html: {mem.uri}/out/report.html"]

    # A local spec may name objects too; a spec in a store may name local files by absolute path.
    spec["vendors"][0]["sample"] = (mem / "comp.jsonl").uri
    (tmp_path / "mixed.yaml").write_text(yaml.safe_dump(spec))
    assert main(["--quiet", "vendors", str(tmp_path / "mixed.yaml"), "--out", str(tmp_path / "mixed")]) == 0
    spec["vendors"][0]["sample"] = str(tmp_path / "comp.jsonl")
    (mem / "abs.yaml").write_text(yaml.safe_dump(spec))
    assert main(["--quiet", "vendors", (mem / "abs.yaml").uri, "--out", str(tmp_path / "abs")]) == 0

    def decisions(folder: str) -> list[dict]:  # each vendor's evaluation, less where its quarantine file went
        return [{k: v for k, v in vendor.items() if k != "quarantine_file"}
                for vendor in json.loads((tmp_path / folder / "report.json").read_text())["vendors"]]

    assert decisions("mixed") == decisions("abs") == decisions("out")


def test_vendor_spec_errors_name_the_uri(tmp_path, mem, capsys):
    from thresher.jobs import vendor_spec

    _write_world(tmp_path)
    _upload(tmp_path, mem, "owned.npz", "target.npz", "comp.jsonl", "dup.npz", "junk.npz")
    spec = _spec()
    spec["vendors"][1]["sample"] = "gone.npz"
    (mem / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["vendors", (mem / "spec.yaml").uri, "--out", str(tmp_path / "out")]) == 2
    assert f"{mem.uri}/spec.yaml: vendors[1].sample: no such file: {mem.uri}/gone.npz" in _error_line(capsys)
    (mem / "bad.yaml").write_text("budget: [1, 2\n")
    assert main(["vendors", (mem / "bad.yaml").uri, "--out", str(tmp_path / "out")]) == 2
    line = _error_line(capsys)
    assert line.startswith(f"thresher vendors: error: {mem.uri}/bad.yaml: line ") and "not valid YAML" in line
    assert "thresher-copy" not in line  # the local copy the YAML reader read never shows
    (mem / "big.yaml").write_bytes(b"#" * (vendor_spec.MAX_SPEC_BYTES + 1))
    assert main(["vendors", (mem / "big.yaml").uri, "--out", str(tmp_path / "out")]) == 2
    assert f"{mem.uri}/big.yaml: larger than {vendor_spec.MAX_SPEC_BYTES} bytes" in _error_line(capsys)


def test_vendor_pilot_runs_and_repetition_fit_from_a_store(tmp_path, mem):
    from thresher.jobs.spec_kit import SpecError
    from thresher.jobs.vendor_spec import load_spec
    from thresher.jobs.vendor_workflow import evaluate_spec
    from thresher.mixtures.fitting import FittedLaw
    from thresher.mixtures.planning import Pool
    from thresher.pipeline.pools import write_pools_json

    _write_world(tmp_path)
    rows = ["vendor,quantity,metric"] + [f",0,{0.60 + 0.002 * s}" for s in range(4)]
    for q, acc in ((50, 0.70), (100, 0.75), (200, 0.80)):
        rows += [f"{v},{q},{m + 0.003 * s}" for s in range(3) for v, m in (("comp", acc), ("dup", 0.6), ("junk", 0.55))]
    (tmp_path / "pilots.csv").write_text("\n".join(rows) + "\n")
    params = {"a": 0.025, "d": 0.1, "b[mine]": -0.16, "b[comp]": -0.125, "tau[mine]": 6.73, "tau[comp]": 8.55}
    FittedLaw(law_name="goyal", law_options={"tau_scaling": "by_pool_count", "Z": 1e5}, pools=("mine", "comp"),
              params=params, unit="samples").save(tmp_path / "law.json")
    write_pools_json({"unit": "samples", "pools": [Pool("mine", 600.0).to_dict()]}, tmp_path / "pools.json")
    _upload(tmp_path, mem, "owned.npz", "target.npz", "comp.jsonl", "dup.npz", "junk.npz", "pilots.csv", "law.json")
    spec = _spec(ot=None, proxy={"kind": "pilot_csv", "path": "pilots.csv"},
                 repetition={"fit": "law.json", "pools": str(tmp_path / "pools.json"), "budget": 20000})
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    (mem / "spec.yaml").write_text(yaml.safe_dump(spec))
    local = evaluate_spec(load_spec(tmp_path / "spec.yaml"), tmp_path / "out")
    remote = evaluate_spec(load_spec((mem / "spec.yaml").uri), mem / "out")
    for v in local["vendors"]:
        if v["quarantine_file"]:
            v["quarantine_file"] = v["quarantine_file"].replace(str(tmp_path), mem.uri)
    assert remote["vendors"] == local["vendors"] and remote["purchase"] == local["purchase"]
    assert (mem / "out/quarantine/comp.jsonl").read_bytes() == (tmp_path / "out/quarantine/comp.jsonl").read_bytes()
    assert remote["vendors"][0]["repetition"]["gain"] > 0

    (mem / "pilots.csv").write_text("vendor,metric\ncomp,0.7\n")
    with pytest.raises(ValueError, match=f"^{mem.uri}/pilots.csv: missing columns") as caught:
        evaluate_spec(load_spec((mem / "spec.yaml").uri), mem / "out")
    assert "thresher-copy" not in str(caught.value)
    spec["repetition"]["pools"] = "pools.json"  # relative to a spec in a store: its reader takes local paths only
    (mem / "rel.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match="repetition.pools: 'pools.json': .* local paths only"):
        load_spec((mem / "rel.yaml").uri)


# ---- classifier and fluency -----------------------------------------------------------------------------------

def test_trained_models_go_to_uris_as_they_go_to_files(tmp_path, mem, capsys, monkeypatch):
    from thresher.metrics import fluency
    from thresher.metrics.fluency import FluencyModel

    texts = [f"the cat sat on mat number {i % 7} today" for i in range(30)]
    other = [f"zq xv {i} kk pp ww {i * 3}" for i in range(30)]
    (tmp_path / "pos.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    (tmp_path / "neg.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in other))
    train = ["--positives", str(tmp_path / "pos.jsonl"), "--negatives", str(tmp_path / "neg.jsonl"), "--hash-bits", "12"]
    assert main(["--quiet", "classifier", "train", *train, "--out", str(tmp_path / "q.json")]) == 0
    assert main(["--quiet", "classifier", "train", *train, "--out", (mem / "q.json").uri]) == 0
    assert (mem / "q.json").read_bytes() == (tmp_path / "q.json").read_bytes()
    reference = ["--reference", str(tmp_path / "pos.jsonl"), "--min-count", "1"]
    assert main(["--quiet", "fluency", "train", *reference, "--out", str(tmp_path / "f.npz")]) == 0
    assert main(["--quiet", "fluency", "train", *reference, "--out", (mem / "f.npz").uri]) == 0
    assert capsys.readouterr().out.split()[-1] == (mem / "f.npz").uri
    with zipfile.ZipFile(tmp_path / "f.npz") as a, zipfile.ZipFile(mem.joinpath("f.npz").open_input()) as b:
        # the same arrays, byte for byte (an .npz records the second it was written in, so whole files may differ)
        assert a.namelist() == b.namelist() and all(a.read(n) == b.read(n) for n in a.namelist())
    local = FluencyModel.load(tmp_path / "f.npz")
    assert FluencyModel.from_bytes((mem / "f.npz").read_bytes()).vocab_ == local.vocab_
    with mem.joinpath("f.npz").open_input() as fh:  # a file object from the store: read in place, size checked first
        assert FluencyModel.from_file(fh, (mem / "f.npz").uri).vocab_ == local.vocab_
        with pytest.raises(ValueError, match=f"{mem.uri}/f.npz: .* is over the 100 bytes limit for fluency model files"):
            monkeypatch.setattr(fluency, "FORMAT", dataclasses.replace(fluency.FORMAT, max_bytes=100))
            FluencyModel.from_file(fh, (mem / "f.npz").uri)


# ---- S3 -------------------------------------------------------------------------------------------------------

def test_fit_with_observations_and_output_on_s3(tmp_path, runs_csv, s3_root, capsys):
    server = ["--storage-option", f"endpoint_override={s3_root.options['endpoint_override']}"]
    (s3_root / "runs.csv").write_bytes(runs_csv.read_bytes())
    assert main(["--quiet", "fit", str(runs_csv), *FIT, "--out", str(tmp_path / "fit.json")]) == 0
    assert main(["--quiet", "fit", *server, (s3_root / "runs.csv").uri, *FIT, "--out",
                 (s3_root / "fits/fit.json").uri]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"fit: {(s3_root / 'fits/fit.json').uri}"
    got = (s3_root / "fits/fit.json").read_bytes()
    assert _without_seconds(got) == _without_seconds((tmp_path / "fit.json").read_bytes())
    assert main(["fit", *server, (s3_root / "none.csv").uri, *FIT, "--out", (s3_root / "f.json").uri]) == 2
    assert f"{(s3_root / 'none.csv').uri}: no such file" in _error_line(capsys)
    assert not (s3_root / "f.json").exists()
