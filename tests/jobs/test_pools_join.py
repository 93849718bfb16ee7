"""`thresher pools` over several score outputs of the same input: columns joined on doc id, as if scored once."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from tests.docs import CLEAN
from thresher.jobs.cli import main


def _shards(root: Path, shards: int = 3, docs: int = 30) -> Path:
    root.mkdir(parents=True)
    for s in range(shards):
        with open(root / f"s{s}.jsonl", "w") as fh:
            for i in range(docs):
                text = CLEAN.replace("river", f"river {s}-{i}") if i % 4 else f"short scrap {s} {i} " * (1 + i % 3)
                fh.write(json.dumps({"text": text}) + "\n")
    return root


def _members(folder: Path) -> list[dict]:
    rows = []
    for f in sorted((folder / "members").rglob("*.parquet")):
        rows += pq.read_table(f).to_pylist()
    return rows


def test_columns_of_two_score_outputs_join_as_one(tmp_path, ray_session, capsys):
    inp = _shards(tmp_path / "in")
    score = ["score", str(inp), "--quiet"]
    assert main([*score, "--scorers", "c4", "--out", str(tmp_path / "c4")]) == 0
    assert main([*score, "--scorers", "gopher_quality", "--out", str(tmp_path / "gopher")]) == 0
    assert main([*score, "--scorers", "c4,gopher_quality", "--out", str(tmp_path / "both")]) == 0
    # --score from one output, --where and the tokens column from the other
    pools = ["--score", "c4_kept_lines", "--where", "gopher_words >= 10", "--quantiles", "0.5", "--quiet"]
    assert main(["pools", str(tmp_path / "c4"), str(tmp_path / "gopher"), *pools, "--out", str(tmp_path / "joined")]) == 0
    assert main(["pools", str(tmp_path / "both"), *pools, "--out", str(tmp_path / "single")]) == 0
    joined, single = _members(tmp_path / "joined"), _members(tmp_path / "single")
    assert joined and joined == single
    a = json.loads((tmp_path / "joined" / "pools.json").read_text())
    b = json.loads((tmp_path / "single" / "pools.json").read_text())
    assert a["pools"] == b["pools"] and a["cuts"] == b["cuts"]
    assert a["also"] == [str((tmp_path / "gopher").resolve())] and "also" not in b

    # one output alone lacks the other's columns: one line naming them and the columns there are
    capsys.readouterr()
    assert main(["pools", str(tmp_path / "c4"), *pools, "--out", str(tmp_path / "lacking")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no column(s) ['gopher_words']" in err and "c4_kept_lines" in err


def test_score_outputs_of_different_inputs_are_not_joined(tmp_path, ray_session, capsys):
    a, b = _shards(tmp_path / "a"), _shards(tmp_path / "b", shards=2)
    assert main(["score", str(a), "--scorers", "c4", "--out", str(tmp_path / "sa"), "--quiet"]) == 0
    assert main(["score", str(b), "--scorers", "gopher_quality", "--out", str(tmp_path / "sb"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["pools", str(tmp_path / "sa"), str(tmp_path / "sb"), "--score", "c4_kept_lines", "--where",
                 "gopher_words >= 10", "--quantiles", "0.5", "--out", str(tmp_path / "p"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "parts differ" in err and "same input" in err
    assert not (tmp_path / "p" / "pools.json").exists()
