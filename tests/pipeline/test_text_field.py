"""A --text-field that no row of the job has stops with one line naming the fields the input has."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thresher.jobs.cli import main
from thresher.pipeline.executor import MapJob, TextFieldNotFound, run_map_job
from thresher.pipeline.reader import ReadOptions
from thresher.pipeline.registry import make_scorer

pytestmark = pytest.mark.usefixtures("ray_session")


def _shards(root, rows):
    root.mkdir()
    (root / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_a_text_field_no_row_has_names_the_fields_seen(tmp_path) -> None:
    inp = _shards(tmp_path / "in", [{"body": "words here", "source": "s"}] * 3)
    job = MapJob(input=str(inp), out_dir=tmp_path / "out", stages=[make_scorer("c4")], quiet=True)
    with pytest.raises(TextFieldNotFound, match=r"no row has the text field 'text' \(fields seen: body, source\)"):
        run_map_job(job)


def test_the_cli_says_it_in_one_line_with_exit_2_also_for_parquet(tmp_path, capsys) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    pq.write_table(pa.table({"content": ["a b c", "d e f"]}), inp / "a.parquet")
    assert main(["score", str(inp), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no row has the text field 'text' (fields seen: content)" in err, err


def test_some_rows_without_the_field_are_malformed_rows_and_the_job_finishes(tmp_path) -> None:
    inp = _shards(tmp_path / "in", [{"body": "no text"}, {"text": "this one has text"}])
    summary = run_map_job(MapJob(input=str(inp), out_dir=tmp_path / "out", stages=[make_scorer("c4")], quiet=True,
                                 read=ReadOptions()))
    assert summary["ledger"]["malformed"] == 1 and summary["ledger"]["kept"] == 1
