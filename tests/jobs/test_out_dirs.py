"""`--out` as hostile input: what --overwrite may delete, where an output folder may lie, and folders nothing can use.

--overwrite deletes only a folder Thresher wrote (its marker parses as Thresher's own
manifest) and only the entries Thresher writes; anything else there is refused by name.
An output folder inside the input (or the input inside it) is refused before any work,
as are an --out that is a file, lies under a file, or cannot be written. Each refusal is
one line on stderr and exit code 2.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from tests.docs import CLEAN
from thresher.jobs.cli import main


def _safety():
    """The guards under test, imported when a test runs (so each test fails on its own before they exist)."""
    from thresher.pipeline import safety

    return safety


def _rows(path: Path, n: int = 3) -> Path:
    """`n` clean documents of different lengths (so score quantiles cut them apart)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": CLEAN + " and the river ran on" * i}) + "\n" for i in range(n)))
    return path


def _error_line(capsys: pytest.CaptureFixture, command: str) -> str:
    """The one line a refusal prints: `thresher COMMAND: error: ...`, no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(f"thresher {command}: error: "), err
    return lines[0]


def _spec(tmp_path: Path, **top) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({"report": False, **top}))
    return path


@pytest.fixture(scope="module")
def scored(ray_session, tmp_path_factory) -> Path:
    """One real `thresher score` output; tests copy it rather than run Ray again."""
    root = tmp_path_factory.mktemp("template")
    _rows(root / "in" / "d.jsonl", 6)
    assert main(["score", str(root / "in"), "--out", str(root / "scored"), "--scorers", "c4,gopher_quality",
                 "--quiet"]) == 0
    return root / "scored"


def _copy(scored: Path, dest: Path) -> Path:
    shutil.copytree(scored, dest)
    return dest


# --- 1. --overwrite deletes only what Thresher wrote ---------------------------------------------------------------


def _lookalike_cases(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """command -> (argv with --overwrite, the marker name the old code trusted); every input is missing."""
    missing, out = str(tmp_path / "missing"), str(tmp_path / "out")
    return {
        "score": (["score", missing, "--out", out, "--overwrite"], "job.json"),
        "dedupe": (["dedupe", missing, "--out", out, "--overwrite"], "job.json"),
        "pools": (["pools", missing, "--score", "gopher_words", "--quantiles", "0.5", "--out", out, "--overwrite"],
                  "pools.json"),
        "materialize": (["materialize", str(tmp_path / "plan.json"), "--pools", missing, "--out", out,
                         "--overwrite"], "job.json"),
        "run": (["run", str(_spec(tmp_path, out=out, fit={"observations": "runs.csv"})), "--overwrite"],
                "summary.json"),
    }


@pytest.mark.parametrize("command", ["score", "dedupe", "pools", "materialize", "run"])
def test_overwrite_refuses_a_folder_that_only_holds_a_file_named_like_a_marker(tmp_path, capsys, command):
    argv, marker = _lookalike_cases(tmp_path)[command]
    out = tmp_path / "out"
    out.mkdir()
    (out / marker).write_text('{"mine": true}\n')  # the user's own file that happens to share the name
    (out / "thesis.tex").write_text("years of work\n")
    assert main(argv) == 2
    line = _error_line(capsys, command)
    assert "not a Thresher output" in line and "--overwrite" in line
    assert (out / marker).read_text() == '{"mine": true}\n' and (out / "thesis.tex").exists()


@pytest.mark.parametrize("intruder", ["notes.txt", "mine/data.jsonl", "sidecars/README.txt", "link"])
def test_overwrite_refuses_a_real_output_that_also_holds_a_users_entry(scored, tmp_path, capsys, intruder):
    out = _copy(scored, tmp_path / "out")
    keep = tmp_path / "keep"
    keep.mkdir()
    if intruder == "link":
        (out / "link").symlink_to(keep, target_is_directory=True)
    else:
        _rows(out / intruder, 1)
    assert main(["score", str(tmp_path / "missing"), "--out", str(out), "--overwrite"]) == 2
    line = _error_line(capsys, "score")
    assert intruder.split("/")[0] in line and "did not write" in line
    assert (out / intruder).exists() or (out / intruder).is_symlink()
    assert (out / "job.json").exists() and (out / "sidecars").is_dir()  # nothing was deleted


def test_overwrite_names_a_few_unexpected_entries_and_counts_the_rest(scored, tmp_path, capsys):
    out = _copy(scored, tmp_path / "out")
    for i in range(6):
        (out / f"mine-{i}.txt").write_text("x")
    assert main(["score", str(tmp_path / "missing"), "--out", str(out), "--overwrite"]) == 2
    line = _error_line(capsys, "score")
    assert "mine-0.txt" in line and "and 3 more" in line
    assert len(list(out.glob("mine-*.txt"))) == 6


def test_overwrite_refuses_a_marker_from_another_program(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    # a job.json of the same shape but not Thresher's: no fingerprint kind, no format version
    (out / "job.json").write_text(json.dumps({"fingerprint": {"input": "x"}, "parts": []}))
    (out / "sidecars").mkdir()
    assert main(["score", str(tmp_path / "missing"), "--out", str(out), "--overwrite"]) == 2
    assert "not a Thresher output" in _error_line(capsys, "score")
    assert (out / "job.json").exists() and (out / "sidecars").is_dir()


def test_overwrite_of_an_empty_or_missing_folder_just_creates_it(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new" / "deeper"):
        assert main(["score", str(tmp_path / "missing"), "--out", str(out), "--overwrite"]) == 2
        assert "no such file" in _error_line(capsys, "score")  # got past --out to the input
        assert out.is_dir()


@pytest.mark.usefixtures("ray_session")
def test_overwrite_of_a_thresher_output_starts_over(scored, tmp_path, capsys):
    inp = json.loads((scored / "job.json").read_text())["input"]
    out = _copy(scored, tmp_path / "out")
    (out / ".summary.json.0123456789ab.tmp").write_text("{")  # a killed writer's leftover is Thresher's too
    assert main(["score", inp, "--out", str(out), "--overwrite", "--scorers", "gopher_quality", "--quiet"]) == 0
    stages = json.loads((out / "job.json").read_text())["fingerprint"]["stages"]
    assert [s["name"] for s in stages] == ["gopher_quality"]
    assert not (out / ".summary.json.0123456789ab.tmp").exists()


@pytest.mark.usefixtures("ray_session")
def test_overwrite_recognises_and_empties_every_kind_of_output(scored, tmp_path, capsys):
    """Each command's own output is Thresher's: --overwrite empties it (a stale part file is gone) and reruns."""
    src = json.loads((scored / "job.json").read_text())["input"]
    pools = tmp_path / "pools"
    runs = [
        (["dedupe", src, "--method", "exact"], tmp_path / "dd", "sidecars"),
        (["select", str(scored), "--where", "c4_pass"], tmp_path / "sel", "shards"),
        (["pools", str(scored), "--score", "gopher_words", "--quantiles", "0.5", "--names", "low,high"], pools,
         "members"),
        (["materialize", str(tmp_path / "plan.json"), "--pools", str(pools)], tmp_path / "mix", "data"),
    ]
    for argv, out, data in runs:
        if argv[0] == "materialize":
            unique = {p["name"]: p["unique"] for p in json.loads((pools / "pools.json").read_text())["pools"]}
            budget = unique["high"] * 2 + unique["low"]
            (tmp_path / "plan.json").write_text(json.dumps({"budget": budget, "unit": "tokens", "pools": [
                {"name": "high", "weight": unique["high"] * 2 / budget, "seen": unique["high"] * 2},
                {"name": "low", "weight": unique["low"] / budget, "seen": unique["low"]}]}))
        assert main([*argv, "--out", str(out), "--quiet"]) == 0, argv
        (out / data / "stale.parquet").write_bytes(b"an earlier run's part")
        assert main([*argv, "--out", str(out), "--overwrite", "--quiet"]) == 0, capsys.readouterr().err
        assert not (out / data / "stale.parquet").exists() and (out / "summary.json").exists()


@pytest.mark.usefixtures("ray_session")
def test_run_overwrite_checks_the_stage_folders_too(tmp_path, capsys):
    _rows(tmp_path / "in" / "d.jsonl")
    out = tmp_path / "job-out"
    spec = _spec(tmp_path, input=str(tmp_path / "in"), out=str(out), score={"scorers": ["c4"]})
    assert main(["run", str(spec), "--quiet"]) == 0
    capsys.readouterr()
    (out / "score" / "my-notes.md").write_text("mine\n")
    assert main(["run", str(spec), "--overwrite", "--quiet"]) == 2
    assert "score/my-notes.md" in _error_line(capsys, "run")
    assert (out / "score" / "my-notes.md").exists() and (out / "score" / "job.json").exists()
    (out / "score" / "my-notes.md").unlink()
    assert main(["run", str(spec), "--overwrite", "--quiet"]) == 0
    assert (out / "summary.json").exists() and (out / "score" / "sidecars").is_dir()


# --- 2. an output folder inside the input, or the input inside it --------------------------------------------------


@pytest.mark.parametrize(("inp", "out", "refused"), [
    ("in", "in/o", True),
    ("in", "in", True),
    ("in", "in/deep/er/o", True),
    ("in/a.jsonl", "in/o", False),              # a single file: an output folder beside it is fine
    ("in/a.jsonl", "in/a.jsonl", True),
    ("in/a.jsonl", "in", True),                 # the input would lie inside the output
    ("o/sidecars", "o", True),
    ("in", "elsewhere", False),
    ("in", "in-2", False),                      # a name that only starts the same is not inside
    ("in/**/*.jsonl", "in/o", True),            # a recursive glob reaches into the output
    ("in/*/*.jsonl", "in/o", True),             # so does one with a wildcard directory
    ("in/*.jsonl", "in/o", False),              # matches files directly in `in` only: like a single file
    ("*.jsonl", "o", False),
    ("o/*.parquet", "o", True),
    ("o/sidecars/*.parquet", "o", True),
    ("*/sidecars/*.parquet", "o", True),
    ("in/x*/*.jsonl", "in/o", False),           # `o` does not match `x*`
])
def test_check_out_outside_input(tmp_path, monkeypatch, inp, out, refused):
    safety = _safety()
    monkeypatch.chdir(tmp_path)
    _rows(tmp_path / "in" / "a.jsonl")
    (tmp_path / "o" / "sidecars").mkdir(parents=True)
    if refused:
        with pytest.raises(safety.OutDirError, match="inside"):
            safety.check_out_outside_input(inp, Path(out))
    else:
        safety.check_out_outside_input(inp, Path(out))


def test_check_out_outside_input_sees_through_links(tmp_path):
    safety = _safety()
    (tmp_path / "in").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "in", target_is_directory=True)
    with pytest.raises(safety.OutDirError, match="inside the input"):
        safety.check_out_outside_input(str(tmp_path / "in"), tmp_path / "alias" / "o")


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("how", ["inside", "same", "glob", "dedupe", "reverse"])
def test_score_and_dedupe_refuse_an_out_inside_the_input(tmp_path, capsys, how):
    inp = tmp_path / "in"
    _rows(inp / "d.jsonl")
    (tmp_path / "o" / "sidecars").mkdir(parents=True)
    _rows(tmp_path / "o" / "sidecars" / "x.jsonl")
    command, source, out = {
        "inside": ("score", str(inp), inp / "o"),
        "same": ("score", str(inp), inp),
        "glob": ("score", str(inp / "**" / "*.jsonl"), inp / "o"),
        "dedupe": ("dedupe", str(inp), inp / "dd"),
        "reverse": ("score", str(tmp_path / "o" / "sidecars"), tmp_path / "o"),
    }[how]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main([command, source, "--out", str(out), "--quiet"]) == 2
    assert "inside" in _error_line(capsys, command)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing was written


@pytest.mark.usefixtures("ray_session")
def test_jobs_over_a_score_output_refuse_an_out_inside_what_it_read(scored, tmp_path, capsys):
    src = Path(json.loads((scored / "job.json").read_text())["input"])
    copy = _copy(scored, tmp_path / "scored")
    cases = [
        ("select", [str(copy), "--where", "c4_pass", "--out", str(copy / "sel")]),
        ("pools", [str(copy), "--score", "c4_words", "--quantiles", "0.5", "--out", str(copy)]),
        ("dedupe", [str(copy), "--method", "exact", "--out", str(src / "dd")]),  # the score output stands for `src`
        ("select", [str(copy), "--where", "c4_pass", "--out", str(src / "sel")]),
    ]
    for command, rest in cases:
        assert main([command, *rest, "--quiet"]) == 2, (command, rest)
        assert "inside" in _error_line(capsys, command)
    assert sorted(p.name for p in src.iterdir()) == ["d.jsonl"]
    assert not (copy / "sel").exists() and not (copy / "pools.json").exists()


def test_run_refuses_a_spec_whose_out_lies_inside_its_input(tmp_path, capsys):
    _rows(tmp_path / "in" / "d.jsonl")
    spec = _spec(tmp_path, input="in", out="in/out", score={"scorers": ["c4"]})
    for extra in (["--dry-run"], ["--quiet"]):
        assert main(["run", str(spec), *extra]) == 2
        assert "inside the input" in _error_line(capsys, "run")
    assert not (tmp_path / "in" / "out").exists()


# --- 3. an --out nothing can be written to -------------------------------------------------------------------------


def _argv(command: str, tmp_path: Path, out: str) -> list[str]:
    missing = str(tmp_path / "missing")
    return {
        "score": ["score", missing, "--out", out],
        "dedupe": ["dedupe", missing, "--out", out],
        "pools": ["pools", missing, "--score", "gopher_words", "--quantiles", "0.5", "--out", out],
        "materialize": ["materialize", str(tmp_path / "plan.json"), "--pools", missing, "--out", out],
        "run": ["run", str(_spec(tmp_path, out=out, fit={"observations": "runs.csv"}))],
    }[command]


@pytest.mark.parametrize("command", ["score", "dedupe", "pools", "materialize", "run"])
@pytest.mark.parametrize("where", ["a-file", "under-a-file", "unwritable"])
def test_an_out_that_cannot_be_a_folder_is_one_line(tmp_path, capsys, command, where):
    _rows(tmp_path / "a.jsonl")
    out, words = {
        "a-file": (str(tmp_path / "a.jsonl"), "is a file"),
        "under-a-file": (str(tmp_path / "a.jsonl" / "sub"), "lies under"),
        "unwritable": ("/proc/thresher-test/out", "cannot write"),
    }[where]
    assert main(_argv(command, tmp_path, out)) == 2
    assert words in _error_line(capsys, command)
    assert (tmp_path / "a.jsonl").is_file()


@pytest.mark.usefixtures("ray_session")
def test_a_read_only_out_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """Tests run as root, whom chmod does not stop; the probe's create is made to fail as it would for a user."""
    _rows(tmp_path / "in" / "d.jsonl")
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    real_open = os.open

    def refuse_probe(path, flags, *args, **kwargs):
        if Path(path).parent == out and flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_probe)
    assert main(["score", str(tmp_path / "in"), "--out", str(out), "--quiet"]) == 2
    monkeypatch.undo()
    line = _error_line(capsys, "score")
    assert "cannot write" in line and "Permission denied" in line
    assert list(out.iterdir()) == []


def test_check_out_writable_leaves_nothing_behind(tmp_path):
    safety = _safety()
    safety.check_out_writable(tmp_path / "new" / "deeper")
    assert list(tmp_path.iterdir()) == []  # the probe is gone and nothing was created
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(safety.OutDirError, match="leads nowhere"):
        safety.check_out_writable(tmp_path / "dangling")
