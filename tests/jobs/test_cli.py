"""The CLI as users call it: score, select, corpus build, demo, help and errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.dataset as pads
import pytest

from tests.docs import CLEAN
from thresher.jobs import cmd_corpus
from thresher.jobs.cli import UsageError, main
from thresher.metrics.errors import InputError, JobFailed


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and "thresher" in capsys.readouterr().out
    for cmd in (["score", "--help"], ["select", "--help"], ["corpus", "build", "--help"], ["demo", "--help"]):
        with pytest.raises(SystemExit):
            main(cmd)
        assert "example" in capsys.readouterr().out


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["score", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["score", str(tmp_path), "--out", str(tmp_path / "o"), "--scorers", "nope"]) == 2
    assert "unknown scorer" in capsys.readouterr().err


@pytest.mark.usefixtures("ray_session")
def test_corpus_score_select_round_trip(tmp_path, capsys):
    texts = tmp_path / "texts"
    (texts / "good").mkdir(parents=True)
    (texts / "junk").mkdir()
    (texts / "good" / "a.txt").write_text(CLEAN + "\n\n" + CLEAN.replace("river", "canal"))
    (texts / "junk" / "b.txt").write_text("click here\n\nbuy now buy now\n\n$$$ !!! ###")
    assert main(["corpus", "build", "--from", str(texts), "--out", str(tmp_path / "shards"), "--split", "blank"]) == 0
    assert main(["--quiet", "score", str(tmp_path / "shards"), "--out", str(tmp_path / "scored"), "--carry", "source"]) == 0
    out = capsys.readouterr().out
    assert "sidecars:" in out and "ledger" not in out  # quiet prints only paths
    assert main(["select", str(tmp_path / "scored"), "--where", "gopher_quality_pass and c4_pass",
                 "--out", str(tmp_path / "sel"), "--quiet"]) == 0
    kept = pads.dataset(tmp_path / "sel" / "shards", format="parquet").to_table()
    assert set(kept["source"].to_pylist()) == {"good"} and kept.num_rows == 2
    summary = json.loads((tmp_path / "sel" / "summary.json").read_text())
    assert summary["ledger"]["kept"] == 2 and summary["ledger"]["dropped"] == 3
    assert all(r.startswith("gopher_quality:") for r in summary["ledger"]["dropped_by_reason"])
    # selected shards are valid input for the next job
    assert main(["score", str(tmp_path / "sel" / "shards"), "--out", str(tmp_path / "again"), "--id-field", "id",
                 "--quiet"]) == 0
    ids = pads.dataset(tmp_path / "again" / "sidecars", format="parquet").to_table()["id"].to_pylist()
    assert sorted(ids) == sorted(kept["id"].to_pylist())


@pytest.mark.usefixtures("ray_session")
def test_select_rejects_unknown_columns(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "d.jsonl").write_text(json.dumps({"text": CLEAN}) + "\n")
    assert main(["score", str(tmp_path / "in"), "--out", str(tmp_path / "s"), "--quiet", "--scorers", "c4"]) == 0
    capsys.readouterr()
    assert main(["select", str(tmp_path / "s"), "--where", "gopher_words > 3", "--out", str(tmp_path / "o")]) == 2
    assert "unknown column" in capsys.readouterr().err


@pytest.mark.usefixtures("ray_session")
def test_strict_mode_stops_with_file_and_line(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "d.jsonl").write_text(json.dumps({"text": CLEAN}) + "\n{oops\n")
    code = main(["score", str(tmp_path / "in"), "--out", str(tmp_path / "s"), "--strict", "--quiet"])
    assert code == 1
    assert "d.jsonl: line 2: invalid JSON" in capsys.readouterr().err


def test_demo_rejects_a_tiny_corpus(tmp_path, capsys):
    # the demo end to end (reduced) is tests/jobs/test_demo.py; here only its argument checks
    assert main(["demo", "--out", str(tmp_path / "demo"), "--max-docs", "50"]) == 2
    assert "--max-docs must be at least 100" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def _failing_corpus_build(monkeypatch, error):
    """`thresher corpus build` with a handler that raises `error` (an exception, or a callable that raises)."""
    def handler(args):
        if callable(error) and not isinstance(error, BaseException):
            error()
        raise error
    monkeypatch.setattr(cmd_corpus, "run_build", handler)
    return ["corpus", "build", "--from", "x", "--out", "y"]


@pytest.mark.parametrize(("error", "code"), [
    (UsageError("bad flag"), 2), (InputError("bad file"), 2), (JobFailed("disk full"), 1)])
def test_thresher_errors_are_one_line_with_their_exit_code(monkeypatch, capsys, error, code):
    assert main(_failing_corpus_build(monkeypatch, error)) == code
    assert capsys.readouterr().err == f"thresher corpus: error: {error}\n"


def test_an_error_from_a_ray_task_reports_the_original(monkeypatch, capsys):
    class TaskError(RuntimeError):  # how Ray hands back a task's exception: the original rides along as `cause`
        def __init__(self, cause):
            super().__init__("Traceback (most recent call last):\n  File ...\nlong remote text")
            self.cause = cause

    assert main(_failing_corpus_build(monkeypatch, TaskError(JobFailed("d.jsonl: line 2: invalid JSON")))) == 1
    assert capsys.readouterr().err == "thresher corpus: error: d.jsonl: line 2: invalid JSON\n"


def test_plain_value_errors_from_the_maths_are_input_errors_and_other_bugs_keep_their_traceback(monkeypatch, capsys):
    from thresher.mixtures.size_laws import check_prior

    assert main(_failing_corpus_build(monkeypatch, lambda: check_prior((-1.0, 1.0)))) == 2
    assert capsys.readouterr().err == "thresher corpus: error: a size prior needs a positive mean and SD, got (-1, 1)\n"
    with pytest.raises(ValueError, match="a bug"):  # raised by the front door's own code: not an input error
        main(_failing_corpus_build(monkeypatch, ValueError("a bug")))


def test_a_message_on_several_lines_is_printed_on_one(monkeypatch, capsys):
    assert main(_failing_corpus_build(monkeypatch, InputError("first\n  second\n"))) == 2
    assert capsys.readouterr().err == "thresher corpus: error: first; second\n"


HEAVY = ("scipy", "sklearn", "ot", "ray", "matplotlib", "datasets", "pandas")


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_import_no_heavy_library(flag):
    """`thresher --help` builds every command's parser without the maths or Ray; `--version` builds none."""
    script = (
        "import sys\n"
        "from thresher.jobs.cli import main\n"
        "try:\n"
        f"    main([{flag!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
        "print('COMMANDS', sorted(m for m in sys.modules if m.startswith('thresher.jobs.cmd_')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "LOADED []" in proc.stdout, proc.stdout
    commands = "COMMANDS []" in proc.stdout
    assert commands == (flag == "--version"), proc.stdout
