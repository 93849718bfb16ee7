"""Traps a new user hit on the command line: each is one clear line on stderr and the right exit code."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.mixtures.test_planning import NAMES, goyal_fit
from tests.pipeline.test_pools import make_scored_job
from thresher.jobs.cli import main
from thresher.pipeline.pools import PoolSpec, build_pools


def _code(argv: Sequence[str]) -> int:
    """main's return code, or the code argparse exits with (--help, parse errors)."""
    try:
        return main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line on stderr (argparse prints its usage above it); never a traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    return lines[-1]


@pytest.fixture()
def shard(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"text": "one small document with a few words in it."}) + "\n")
    return path


# --- 1. --list-scorers needs nothing else --------------------------------------------------------------------------

def test_list_scorers_needs_no_input_or_out(capsys: pytest.CaptureFixture[str]) -> None:
    assert _code(["score", "--list-scorers"]) == 0
    out = capsys.readouterr()
    names = out.out.split()
    assert {"gopher_quality", "gopher_repetition", "c4"} <= set(names)
    assert out.err == ""


def test_list_scorers_still_works_with_other_arguments(shard: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert _code(["score", str(shard), "--out", str(tmp_path / "o"), "--list-scorers"]) == 0
    assert "c4" in capsys.readouterr().out.split()
    assert not (tmp_path / "o").exists()


def test_score_without_input_is_still_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert _code(["score"]) == 2
    assert _error_line(capsys).startswith("thresher score: error: the following arguments are required")


# --- 2. counts that must be >= 1 ----------------------------------------------------------------------------------

def _with_count(command: str, tmp_path: Path, shard: Path) -> list[str]:
    out = str(tmp_path / "out")
    return {
        "score": ["score", str(shard), "--out", out],
        "dedupe": ["dedupe", str(shard), "--out", out],
        "select": ["select", str(tmp_path), "--where", "x > 1", "--out", out],
        "materialize": ["materialize", str(tmp_path / "plan.json"), "--pools", str(tmp_path), "--out", out],
    }[command]


@pytest.mark.parametrize("value", ["0", "-2"])
@pytest.mark.parametrize("command", ["score", "dedupe", "select", "materialize"])
def test_workers_below_one_is_refused_at_parse_time(command: str, value: str, tmp_path: Path, shard: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert _code([*_with_count(command, tmp_path, shard), "--workers", value]) == 2
    line = _error_line(capsys)
    assert line.startswith(f"thresher {command}: error: argument --workers:") and value in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("command", "option"), [("score", "--part-mb"), ("dedupe", "--part-mb"),
                                                 ("dedupe", "--num-perm"), ("dedupe", "--bins")])
def test_other_counts_below_one_are_refused(command: str, option: str, tmp_path: Path, shard: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert _code([*_with_count(command, tmp_path, shard), option, "0"]) == 2
    assert _error_line(capsys).startswith(f"thresher {command}: error: argument {option}:")


def test_workers_not_a_number_names_the_option(shard: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert _code(["score", str(shard), "--out", str(tmp_path / "o"), "--workers", "two"]) == 2
    line = _error_line(capsys)
    assert line.startswith("thresher score: error: argument --workers:") and "'two'" in line


# --- 3. and 4. scorer options ----------------------------------------------------------------------------------------

def _score(shard: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["score", str(shard), "--out", str(tmp_path / "o"), *extra]


def test_bad_number_in_a_scorer_option_names_scorer_and_key(shard: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    argv = _score(shard, tmp_path, "--scorer-option", "gopher_quality.min_doc_words=abc")
    assert _code(argv) == 2
    assert _error_line(capsys) == ("thresher score: error: --scorer-option gopher_quality.min_doc_words: "
                                   "expected a number, got 'abc'")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("option", "expected"), [
    ("gopher_quality.min_doc_words=2.5", "expected a whole number, got '2.5'"),
    ("c4.remove_citations=maybe", "expected true or false, got 'maybe'"),
    ("gopher_repetition.max_dup_line_frac=1,2", "expected a number, got '1,2'"),
])
def test_scorer_option_values_of_the_wrong_kind(option: str, expected: str, shard: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    scorer = option.split(".", 1)[0]
    assert _code(_score(shard, tmp_path, "--scorers", scorer, "--scorer-option", option)) == 2
    assert _error_line(capsys) == f"thresher score: error: --scorer-option {option.split('=')[0]}: {expected}"


def test_bad_integer_for_a_model_scorer_names_scorer_and_key_once(shard: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    argv = _score(shard, tmp_path, "--scorers", "embedding", "--scorer-option", "embedding.dim=abc")
    assert _code(argv) == 2
    line = _error_line(capsys)
    assert "dim" in line and "'abc'" in line and "invalid literal" not in line
    assert line.count("embedding") == 1


@pytest.mark.parametrize("scorer", ["c4", "gopher_quality", "langid"])
def test_unknown_scorer_option_names_the_scorer_once(scorer: str, shard: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    argv = _score(shard, tmp_path, "--scorers", scorer, "--scorer-option", f"{scorer}.bogus=1")
    assert _code(argv) == 2
    line = _error_line(capsys)
    assert line.startswith("thresher score: error: ") and "bogus" in line
    assert line.count(scorer) == 1, line
    assert "__init__" not in line


# --- 5. --pools: a `thresher pools` folder or its pools.json, in plan, frontier and materialize ---------------------

@pytest.fixture()
def planning(tmp_path: Path) -> tuple[Path, Path]:
    """(fit.json, a folder holding pools.json) over the four pools of `goyal_fit`."""
    fit = goyal_fit().save(tmp_path / "fit.json")
    folder = tmp_path / "pools"
    folder.mkdir()
    (folder / "pools.json").write_text(json.dumps({"unit": "samples",
                                                   "pools": [{"name": n, "unique": 12.8e6} for n in NAMES]}))
    return Path(fit), folder


@pytest.mark.parametrize("form", ["folder", "file"])
@pytest.mark.parametrize("command", ["plan", "frontier"])
def test_plan_takes_the_pools_folder_or_its_file(command: str, form: str, planning: tuple[Path, Path],
                                                 tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fit, folder = planning
    pools = folder if form == "folder" else folder / "pools.json"
    out = tmp_path / "out.json"
    budget = ["--budget", "64M"] if command == "plan" else ["--budgets", "32M,64M"]
    assert _code([command, "--fit", str(fit), "--pools", str(pools), *budget, "--out", str(out)]) == 0
    assert out.is_file() and "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("command", ["plan", "frontier"])
def test_plan_with_missing_pools_is_one_line_naming_the_path(command: str, planning: tuple[Path, Path],
                                                             tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fit, _ = planning
    budget = ["--budget", "64M"] if command == "plan" else ["--budgets", "32M,64M"]
    empty = tmp_path / "empty"
    empty.mkdir()
    for pools in (tmp_path / "nope", empty, tmp_path / "nope" / "pools.json"):
        assert _code([command, "--fit", str(fit), "--pools", str(pools), *budget,
                      "--out", str(tmp_path / "o.json")]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert err.startswith(f"thresher {command}: error: ") and str(pools) in err


def test_materialize_with_missing_pools_is_one_line_before_any_output(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text("{}")
    empty = tmp_path / "empty"
    empty.mkdir()
    for pools in (tmp_path / "nope", empty, tmp_path / "nope" / "pools.json"):
        assert _code(["materialize", str(plan), "--pools", str(pools), "--out", str(tmp_path / "m")]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert err.startswith("thresher materialize: error: ") and str(pools) in err
    assert not (tmp_path / "m").exists()


@pytest.mark.usefixtures("ray_session")
def test_materialize_takes_the_pools_folder_or_its_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scored, _ = make_scored_job(tmp_path, n_docs=20)
    pools = build_pools(scored, tmp_path / "pools", PoolSpec(score="quality", edges=(0.5,), names=("low", "high")))
    high = next(p for p in pools["pools"] if p["name"] == "high")
    plan = {"format": "thresher.plan/1", "budget": high["unique"], "unit": pools["unit"],
            "pools": [{"name": "high", "weight": 1.0, "seen": high["unique"], "epochs": 1.0, "unique": high["unique"]}]}
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(plan))
    manifests = []
    for i, form in enumerate((tmp_path / "pools", tmp_path / "pools" / "pools.json")):
        out = tmp_path / f"mat{i}"
        assert _code(["--quiet", "materialize", str(plan_path), "--pools", str(form), "--out", str(out),
                      "--workers", "1"]) == 0, capsys.readouterr().err
        manifests.append((out / "manifest.parquet").read_bytes())
    assert manifests[0] == manifests[1]


@pytest.mark.parametrize("argv", [
    ["corpus", "build", "--from", "texts", "--out", "shards", "--docs-per-shard", "0"],
    ["fit", "runs.csv", "--out", "fit.json", "--max-starts", "0"],
    ["mix", "optimize", "--model", "model.json", "--starts", "0"],
    ["mix", "ot", "--pools", "p.npz", "--target", "t.npz", "--projections", "-1"],
    ["mix", "ot", "--pools", "p.npz", "--target", "t.npz", "--max-per-pool", "0"],
])
def test_counts_of_corpus_fit_and_mix_below_one_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    option = argv[-2]
    assert _code(argv) == 2
    err = capsys.readouterr().err
    assert f"error: argument {option}: must be at least 1" in err, err
