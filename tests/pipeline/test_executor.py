"""The Ray map executor: sidecars, ledger invariant, resume, determinism, actor stages."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import tree_bytes
from tests.docs import CLEAN
from thresher.pipeline.engines import choose_engine
from thresher.pipeline.executor import JobConflict, MapJob, run_map_job
from thresher.pipeline.ledger import read_ledger
from thresher.pipeline.reader import ReadOptions
from thresher.pipeline.registry import make_scorer
from thresher.pipeline.stage import Resources, Stage

pytestmark = pytest.mark.usefixtures("ray_session")


def make_corpus(root: Path, n_files: int = 6, rows: int = 40) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for f in range(n_files):
        with open(root / f"s{f}.jsonl", "w") as fh:
            for i in range(rows):
                text = CLEAN if (i + f) % 3 else f"short doc {f} {i}"
                fh.write(json.dumps({"text": text, "source": f"src{f % 2}"}) + "\n")
            if f == 1:
                fh.write("{not json\n")
    (root / "empty.jsonl").write_text("")


def job(inp: Path, out: Path, **kw) -> MapJob:
    stages = [make_scorer(n) for n in ("gopher_quality", "gopher_repetition", "c4")]
    return MapJob(input=str(inp), out_dir=out, stages=stages, read=ReadOptions(carry=("source",)), quiet=True,
                  part_bytes=kw.pop("part_bytes", 4096), **kw)


def test_score_writes_sidecars_ledger_and_summary(tmp_path):
    make_corpus(tmp_path / "in")
    summary = run_map_job(job(tmp_path / "in", tmp_path / "out"))
    rows = 6 * 40 + 1
    assert summary["rows_read"] == rows
    assert summary["ledger"]["kept"] == rows - 1 and summary["ledger"]["malformed"] == 1
    side = pads.dataset(tmp_path / "out" / "sidecars", format="parquet").to_table()
    assert side.num_rows == rows - 1
    assert {"id", "source", "gopher_quality_pass", "c4_reason"} <= set(side.column_names)
    assert len(set(side["id"].to_pylist())) == side.num_rows
    led = read_ledger(tmp_path / "out")
    assert led.num_rows == rows and set(led["status"].to_pylist()) == {"kept", "malformed"}
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())["stages"]
    assert stats["gopher_quality"]["rows_in"] == rows - 1
    assert stats["gopher_quality"]["fail_reasons"]["short_doc"] == 80
    quarantine = pads.dataset(tmp_path / "out" / "malformed", format="parquet").to_table()
    assert quarantine["raw"].to_pylist() == ["{not json\n"]


def test_sidecars_load_with_hugging_face_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    make_corpus(tmp_path / "in", n_files=2)
    run_map_job(job(tmp_path / "in", tmp_path / "out"))
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "out" / "sidecars" / "*.parquet"), split="train",
                               cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 2 * 40 + 1 - 1 and "gopher_words" in ds.column_names


def test_resume_after_a_driver_stops_gives_identical_bytes(tmp_path):
    make_corpus(tmp_path / "in")
    run_map_job(job(tmp_path / "in", tmp_path / "fresh"))
    partial = job(tmp_path / "in", tmp_path / "resumed", stop_after_parts=3)
    with pytest.raises(RuntimeError, match="no completion marker"):
        run_map_job(partial)
    done_before = len(list((tmp_path / "resumed" / "_complete").rglob("*.json")))
    assert done_before == 3
    summary = run_map_job(job(tmp_path / "in", tmp_path / "resumed"))
    assert summary["parts_skipped_as_complete"] == 3
    assert tree_bytes(tmp_path / "fresh") == tree_bytes(tmp_path / "resumed")


def test_one_and_two_workers_give_identical_bytes(tmp_path):
    make_corpus(tmp_path / "in")
    a = run_map_job(job(tmp_path / "in", tmp_path / "w1", workers=1))
    b = run_map_job(job(tmp_path / "in", tmp_path / "w2", workers=2, batch_rows=7))
    assert tree_bytes(tmp_path / "w1") == tree_bytes(tmp_path / "w2")
    assert a["content_hash"] == b["content_hash"]


def test_both_engines_give_identical_bytes(tmp_path):
    """A task per part and the Ray Data stream are two schedules of the same work."""
    make_corpus(tmp_path / "in")
    a = run_map_job(job(tmp_path / "in", tmp_path / "tasks", engine="tasks", batch_rows=9))
    b = run_map_job(job(tmp_path / "in", tmp_path / "data", engine="data"))
    assert a["ledger"] == b["ledger"] and a["ledger"]["malformed"] == 1
    assert a["content_hash"] == b["content_hash"]
    assert tree_bytes(tmp_path / "tasks") == tree_bytes(tmp_path / "data")
    with pytest.raises(ValueError, match="unknown engine"):
        run_map_job(job(tmp_path / "in", tmp_path / "bad", engine="threads"))


def test_a_different_job_in_the_same_directory_is_refused(tmp_path):
    make_corpus(tmp_path / "in", n_files=1)
    run_map_job(job(tmp_path / "in", tmp_path / "out"))
    other = MapJob(input=str(tmp_path / "in"), out_dir=tmp_path / "out", stages=[make_scorer("c4")], quiet=True)
    with pytest.raises(JobConflict):
        run_map_job(other)


class CountingStage(Stage):
    """A stage with per-worker setup, so it runs in an actor pool."""

    name = "length_with_setup"
    adds = {"doc_chars": pa.int64(), "setup_ran": pa.bool_()}
    resources = Resources(cpus=1)

    def setup(self) -> None:
        self.ready = True

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow.compute as pc

        return pa.table({"doc_chars": pc.utf8_length(batch["text"]).cast(pa.int64()),
                         "setup_ran": pa.array([self.ready] * batch.num_rows)})


@pytest.mark.parametrize("engine", ["auto", "tasks"])
def test_stage_with_setup_runs_its_setup(tmp_path, engine):
    make_corpus(tmp_path / "in", n_files=2)
    j = MapJob(input=str(tmp_path / "in"), out_dir=tmp_path / "out", stages=[CountingStage()], quiet=True, engine=engine)
    assert choose_engine(j.engine, j.stages) == ("data" if engine == "auto" else "tasks")  # auto keeps model stages in actors
    run_map_job(j)
    side = pads.dataset(tmp_path / "out" / "sidecars", format="parquet").to_table()
    assert all(side["setup_ran"].to_pylist())
    assert max(side["doc_chars"].to_pylist()) == len(CLEAN)


# Rows that each must end as one malformed row, never a crash of the job: bad JSON, a lone
# surrogate escape, an integer past Python's digit limit, nesting past the recursion limit.
BAD_ROWS = {
    "{bad json": "{bad json",
    "<surrogate>": '{"text": "bad \\ud800 text"}',
    "<huge int>": '{"text": "a b c", "n": ' + "9" * 5000 + "}",
    "<deep>": '{"text": "a b c", "d": ' + "[" * 100_000 + "]" * 100_000 + "}",
}
shard_sets = st.lists(
    st.lists(st.one_of(st.text(min_size=0, max_size=40), st.sampled_from(sorted(BAD_ROWS)), st.just("")),
             min_size=0, max_size=12),
    min_size=1, max_size=4,
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shards=shard_sets)
def test_ledger_accounts_for_every_row(tmp_path_factory, shards):
    root = tmp_path_factory.mktemp("prop")
    inp = root / "in"
    inp.mkdir()
    expected = bad = 0
    for i, rows in enumerate(shards):
        lines = []
        for r in rows:
            if r == "":
                lines.append("")  # blank lines are not rows
            elif r in BAD_ROWS:
                lines.append(BAD_ROWS[r])
                expected += 1
                bad += 1
            else:
                lines.append(json.dumps({"text": r}))
                expected += 1
        (inp / f"f{i}.jsonl").write_text("\n".join(lines) + ("\n" if lines else ""))
    summary = run_map_job(MapJob(input=str(inp), out_dir=root / "out", stages=[make_scorer("gopher_quality")],
                                 quiet=True, part_bytes=64))
    counts = summary["ledger"]
    assert summary["rows_read"] == expected
    assert sum(counts[s] for s in ("kept", "dropped", "duplicate", "malformed")) == expected
    assert counts["malformed"] == bad
