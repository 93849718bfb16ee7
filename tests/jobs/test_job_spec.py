"""Job specs: defaults, path resolution, errors that name the key, dry runs, and the shipped examples."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from thresher.jobs.cli import main
from thresher.jobs.job_spec import STAGES, load_spec, parse_spec
from thresher.jobs.spec_kit import SpecError

EXAMPLES = Path(__file__).resolve().parents[2] / "jobs" / "examples"

FULL = {
    "name": "t", "input": "shards/", "out": "out/", "read": {"carry": ["source"]},
    "score": {"scorers": ["gopher_quality"]},
    "dedupe": {"method": "exact"},
    "pools": {"score": "gopher_words", "edges": [0.3, 0.7]},
    "fit": {"observations": "runs.csv", "columns": "run=run,pool=pool,seen=seen,unique=unique,value=value"},
    "plan": {"budgets": ["1M", 2.5e6]},
    "materialize": {"budgets": ["1M"]},
}


def test_full_spec_fills_defaults_and_resolves_paths(tmp_path):
    spec = parse_spec(FULL, "job.yaml", tmp_path)
    assert spec.stages == list(STAGES)
    assert spec.out == (tmp_path / "out").resolve() and spec.input == str((tmp_path / "shards").resolve())
    assert spec.sections["plan"]["budgets"] == [1e6, 2.5e6]
    assert spec.sections["pools"]["method"] == "quantiles" and spec.sections["pools"]["tokens"] == "gopher_words"
    assert spec.sections["fit"]["observations"] == str((tmp_path / "runs.csv").resolve())
    assert spec.sections["dedupe"]["threshold"] is None and spec.read["carry"] == ["source"]
    lines = spec.describe()
    assert [ln.split()[0] for ln in lines] == list(STAGES) + ["report"]


@pytest.mark.parametrize("patch, key", [
    ({"scor": {}}, "scor"),
    ({"score": {"scorerz": ["c4"]}}, "score.scorerz"),
    ({"pools": {"score": "x", "edges": [0.7, 0.3]}}, "pools.edges"),
    ({"pools": {"score": "x", "edges": [1.5]}}, "pools.edges"),
    ({"pools": {"score": "x", "edges": "0.5"}}, "pools.edges"),
    ({"pools": {"edges": [0.5]}}, "pools.score"),
    ({"pools": {"score": "x", "names": ["a"]}}, "pools.names"),
    ({"dedupe": {"method": "fuzzy"}}, "dedupe.method"),
    ({"dedupe": {"threshold": 1.5}}, "dedupe.threshold"),
    ({"plan": {"budgets": ["lots"]}}, "plan.budgets[0]"),
    ({"plan": {"budgets": [-3]}}, "plan.budgets[0]"),
    ({"materialize": {"budgets": ["7M"]}}, "materialize.budgets[0]"),
    ({"fit": {"law": "goyal"}}, "fit"),
    ({"fit": {"pilots": {"fractions": [0.5, 1], "ordr": 2}}}, "fit.pilots.ordr"),
    ({"read": {"strict": "yes"}}, "read.strict"),
    ({"ray": {"workers": 0}}, "ray.workers"),
    ({"score": {"scorers": ["c4"], "options": {"gopher_quality": {}}}}, "score.options.gopher_quality"),
])
def test_bad_keys_and_values_name_the_key(tmp_path, patch, key):
    data = {**FULL, **patch}
    with pytest.raises(SpecError) as exc:
        parse_spec(data, "job.yaml", tmp_path)
    assert f"job.yaml: {key}" in str(exc.value)


def test_missing_requirements(tmp_path):
    with pytest.raises(SpecError, match="out: is required"):
        parse_spec({"score": {}}, "j", tmp_path)
    with pytest.raises(SpecError, match="input: is required by the score stage"):
        parse_spec({"out": "o", "score": {}}, "j", tmp_path)
    with pytest.raises(SpecError, match="plan: needs the fit stage"):
        parse_spec({"out": "o", "input": "i", "score": {}, "pools": {"score": "s"}, "plan": {"budgets": [1]}}, "j",
                   tmp_path)
    with pytest.raises(SpecError, match="no stages"):
        parse_spec({"out": "o"}, "j", tmp_path)
    with pytest.raises(SpecError, match="a mapping"):
        parse_spec(["score"], "j", tmp_path)


def test_yaml_is_loaded_safely_and_errors_give_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("out: o\nscore: [unclosed\n")
    with pytest.raises(SpecError, match="line"):
        load_spec(bad)
    evil = tmp_path / "evil.yaml"
    evil.write_text("out: !!python/object/apply:os.system ['true']\nscore: {}\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(evil)


def test_cli_dry_run_and_exit_codes(tmp_path, capsys):
    good = tmp_path / "job.yaml"
    good.write_text(yaml.safe_dump(FULL))
    assert main(["run", str(good), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "score" in out and "materialize" in out and "budgets 1e+06" in out
    assert not (tmp_path / "out").exists()  # a dry run writes nothing
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**FULL, "pools": {"score": "x", "edgez": [0.5]}}))
    assert main(["run", str(bad), "--dry-run"]) == 2
    assert "pools.edgez: unknown key" in capsys.readouterr().err
    for cmd in (["run", "--help"], ["pools", "--help"], ["materialize", "--help"], ["demo", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(cmd)
        assert exc.value.code == 0 and "example" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["local.yaml", "cluster.yaml"])
def test_shipped_examples_validate(name):
    spec = load_spec(EXAMPLES / name)
    assert spec.stages == list(STAGES)


def test_rayjob_manifest_runs_thresher_on_s3_with_credentials_from_a_secret():
    """The KubeRay example: a thresher command that parses, s3:// in and out, AWS keys from a Secret on every pod."""
    import shlex

    from thresher.jobs.cli import build_parser

    docs = list(yaml.safe_load_all((EXAMPLES / "rayjob.yaml").read_text()))
    job = next(d for d in docs if d and d.get("kind") == "RayJob")
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[0] == "thresher" and not {"&&", "||", ";", "|"} & set(argv)  # KubeRay splices it into a shell line
    args = build_parser().parse_args(argv[1:])
    assert args.command == "score" and args.input.startswith("s3://") and args.out.startswith("s3://"), argv
    cluster = job["spec"]["rayClusterSpec"]
    pods = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    containers = [c for pod in pods for c in pod["template"]["spec"]["containers"]]
    assert len(containers) >= 2
    for c in containers:
        env = {e["name"]: e for e in c.get("env", [])}
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
            assert name in env, (c["name"], name)
        for name, e in env.items():  # nothing that looks like a credential is written inline
            if any(w in name for w in ("KEY", "SECRET", "TOKEN", "PASSWORD")) or name == "AWS_ENDPOINT_URL":
                assert "value" not in e and e["valueFrom"]["secretKeyRef"]["name"], (c["name"], name)
        assert not c.get("volumeMounts"), c["name"]  # the bucket is the only storage the pods share


def test_a_failing_stage_exits_1_and_names_the_stage(tmp_path, capsys):
    (tmp_path / "runs.csv").write_text("run,seen,value\nr1,100,2.5\n")  # no `unique` column
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump({"out": "out", "fit": {"observations": "runs.csv"}, "report": False}))
    assert main(["run", str(spec), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "stage fit failed" in err and "runs.csv" in err and "unique" in err


def test_spec_keys_that_json_cannot_sort_are_written_as_text():
    import datetime
    import json

    from thresher.jobs.cmd_run import _json_keys

    mixed = {"fit": {"fix": {1: "a", "b": "c"}}, "when": {datetime.date(2026, 1, 2): [{2.5: True}]}}
    text = json.dumps(_json_keys(mixed), sort_keys=True)  # what job-spec.json's writer does; raw, it raises TypeError
    assert json.loads(text) == {"fit": {"fix": {"1": "a", "b": "c"}}, "when": {"2026-01-02": [{"2.5": True}]}}
    with pytest.raises(TypeError):
        json.dumps(mixed, sort_keys=True)
