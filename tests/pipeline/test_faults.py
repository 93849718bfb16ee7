"""Faults: a killed worker, a killed driver, a full disk. Outputs end identical to an uninterrupted run,
and nothing incomplete is ever marked complete."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.conftest import tree_bytes
from tests.docs import CLEAN
from tests.drills import kill_once
from thresher.pipeline import outputs
from thresher.pipeline.engines.data import finalize_part, read_step, write_step
from thresher.pipeline.engines.steps import apply_stage
from thresher.pipeline.executor import JobConflict, MapJob, run_map_job
from thresher.pipeline.outputs import MARKERS, TMP, OutputWriteError, file_sha256, write_json_atomic, write_parquet_atomic
from thresher.pipeline.reader import ReadOptions
from thresher.pipeline.registry import make_scorer
from thresher.pipeline.scorers import DEFAULT_SCORERS
from thresher.pipeline.shards import discover, plan_parts
from thresher.pipeline.stage import Stage

REPO = Path(__file__).resolve().parents[2]


def make_corpus(root: Path, n_files: int = 8, rows: int = 60) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for f in range(n_files):
        lines = [json.dumps({"text": (CLEAN if (i + f) % 4 else f"short {f} {i}") + f" [{f}.{i}]"}) for i in range(rows)]
        if f == 2:
            lines.insert(5, "{broken")
        (root / f"s{f:02d}.jsonl").write_text("\n".join(lines) + "\n")


def assert_markers_match_files(out: Path) -> int:
    """Every marker on disk names outputs that exist whole, with the hashes it recorded."""
    n = 0
    for m in (out / MARKERS).rglob("*.json"):
        marker = json.loads(m.read_text())
        key = m.relative_to(out / MARKERS).as_posix()[: -len(".json")]
        for sub, digest in marker["outputs"].items():
            path = out / sub / f"{key}.parquet"
            assert path.exists(), f"{m} marks {path} complete but it is missing"
            assert file_sha256(path) == digest, f"{m} marks {path} complete but its bytes differ"
            pq.read_table(path)  # and it is a whole Parquet file
        n += 1
    return n


# ---------------------------------------------------------------- a killed worker


class KillWorkerOnce(Stage):
    """Scores document length; the first call anywhere SIGKILLs its own worker process."""

    name = "length_kill_once"
    adds = {"doc_chars": pa.int64()}

    def __init__(self, flag: str) -> None:
        self.flag = flag

    def __call__(self, batch: pa.Table) -> pa.Table:
        try:
            fd = os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
        return pa.table({"doc_chars": pc.utf8_length(batch["text"]).cast(pa.int64())})


def test_a_killed_worker_is_retried_and_the_output_is_identical(tmp_path, ray_session):
    make_corpus(tmp_path / "in")
    stages = lambda flag: [make_scorer("gopher_quality"), KillWorkerOnce(str(flag))]  # noqa: E731
    done_flag = tmp_path / "already-killed"
    done_flag.write_text("no kill in the reference run")
    ref = run_map_job(MapJob(input=str(tmp_path / "in"), out_dir=tmp_path / "ref", stages=stages(done_flag), quiet=True))
    flag = tmp_path / "kill-flag"
    got = run_map_job(MapJob(input=str(tmp_path / "in"), out_dir=tmp_path / "killed", stages=stages(flag), quiet=True))
    killed_pid = int(flag.read_text())
    assert killed_pid != os.getpid()
    with pytest.raises(ProcessLookupError):
        os.kill(killed_pid, 0)  # the worker really died
    assert got["content_hash"] == ref["content_hash"]
    assert tree_bytes(tmp_path / "killed") == tree_bytes(tmp_path / "ref")
    assert got["ledger"] == ref["ledger"]


# ---------------------------------------------------------------- a killed driver


def _kill_driver_after_parts(argv: list[str], out: Path, parts: int, total: int, watch: Path | None = None) -> int:
    """Run `thresher ARGV` in its own session and SIGKILL it, with the Ray it started, once `parts` parts are
    marked complete (in `watch`, a map job's output folder; default `out`); returns how many were."""
    watch = out if watch is None else watch
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_DEDUP_LOGS": "1"}
    env.pop("RAY_ADDRESS", None)

    def marked() -> int:
        return len(list((watch / MARKERS).rglob("*.json"))) if (watch / MARKERS).is_dir() else 0

    kill_once([*argv, "--out", str(out), "--workers", "1", "--quiet"], env, marked, parts)
    finished = marked()
    assert parts <= finished < total, f"{finished} parts finished; the kill came too late to test resuming"
    assert assert_markers_match_files(watch) == finished
    return finished


def test_a_killed_driver_resumes_skipping_finished_parts_and_ends_identical(tmp_path, ray_session):
    inp = tmp_path / "in"
    make_corpus(inp, n_files=16, rows=120)
    out = tmp_path / "out"
    finished = _kill_driver_after_parts(["score", str(inp)], out, parts=3, total=16)
    stages = [make_scorer(n) for n in DEFAULT_SCORERS]
    resumed = run_map_job(MapJob(input=str(inp), out_dir=out, stages=stages, read=ReadOptions(), quiet=True,
                                 part_bytes=64 * 1024 * 1024))
    assert resumed["parts_skipped_as_complete"] == finished
    fresh = run_map_job(MapJob(input=str(inp), out_dir=tmp_path / "fresh", stages=stages, quiet=True,
                               part_bytes=64 * 1024 * 1024))
    assert tree_bytes(out) == tree_bytes(tmp_path / "fresh")
    assert resumed["content_hash"] == fresh["content_hash"]
    assert not list(out.rglob("*.tmp")) and not (out / TMP).exists() or not any((out / TMP).rglob("*.parquet"))


def test_a_killed_model_scorer_job_refuses_another_model_and_resumes_identical_with_its_own(tmp_path, ray_session):
    from tests.pipeline.model_files import BAD, GOOD, classifier_model

    inp = tmp_path / "in"
    make_corpus(inp, n_files=12, rows=120)
    model = classifier_model(tmp_path / "a.json")
    other = classifier_model(tmp_path / "b.json", good=BAD, bad=GOOD)
    out = tmp_path / "out"
    argv = ["score", str(inp), "--scorers", "classifier"]
    finished = _kill_driver_after_parts([*argv, "--scorer-option", f"classifier.model={model}"], out, parts=2, total=12)
    with pytest.raises(JobConflict, match="model_sha256"):
        run_map_job(MapJob(input=str(inp), out_dir=out, stages=[make_scorer("classifier", model=other)], quiet=True))
    assert len(list((out / MARKERS).glob("*.json"))) == finished  # the refused rerun added nothing
    resumed = run_map_job(MapJob(input=str(inp), out_dir=out, stages=[make_scorer("classifier", model=model)], quiet=True))
    assert resumed["parts_skipped_as_complete"] == finished
    fresh = run_map_job(MapJob(input=str(inp), out_dir=tmp_path / "fresh", stages=[make_scorer("classifier", model=model)],
                               quiet=True))
    assert tree_bytes(out) == tree_bytes(tmp_path / "fresh") and resumed["content_hash"] == fresh["content_hash"]


def test_a_killed_job_whose_input_then_grew_is_refused_never_skipped(tmp_path, ray_session, capsys):
    from thresher.jobs.cli import main

    inp = tmp_path / "in"
    make_corpus(inp, n_files=12, rows=120)
    out = tmp_path / "out"
    finished = _kill_driver_after_parts(["score", str(inp)], out, parts=2, total=12)
    done = sorted(m.stem for m in (out / MARKERS).glob("*.json"))
    grown = inp / done[0].split(".part-")[0]  # a shard whose part is already complete
    with grown.open("a") as fh:
        fh.write(json.dumps({"text": "a row appended after the kill"}) + "\n")
    capsys.readouterr()
    assert main(["score", str(inp), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{grown.name} changed size" in err and "Traceback" not in err, err
    assert len(list((out / MARKERS).glob("*.json"))) == finished
    # the finished job, too: appending to its input is refused rather than reported as done
    assert main(["score", str(inp), "--out", str(tmp_path / "whole"), "--quiet"]) == 0
    with grown.open("a") as fh:
        fh.write(json.dumps({"text": "and one more"}) + "\n")
    assert main(["score", str(inp), "--out", str(tmp_path / "whole"), "--quiet"]) == 2
    assert "changed size" in capsys.readouterr().err


def test_a_killed_dedupe_driver_resumes_and_ends_identical(tmp_path, ray_session):
    from thresher.pipeline.dedupe.job import DedupeJob, run_dedupe

    inp = tmp_path / "in"
    make_corpus(inp, n_files=16, rows=120)
    out = tmp_path / "out"
    finished = _kill_driver_after_parts(["dedupe", str(inp)], out, parts=3, total=16, watch=out / "signatures")
    resumed = run_dedupe(DedupeJob(input=str(inp), out_dir=out))
    assert resumed["stats"]["signature"]["parts_skipped_as_complete"] == finished
    fresh = run_dedupe(DedupeJob(input=str(inp), out_dir=tmp_path / "fresh"))
    assert tree_bytes(out) == tree_bytes(tmp_path / "fresh") != {}
    assert resumed["ledger"] == fresh["ledger"] and resumed["ledger"]["duplicate"] > 0


def test_a_worker_killed_during_dedupe_is_retried_and_the_output_is_identical(tmp_path, ray_session):
    """A thread SIGKILLs one Ray worker as soon as the signature phase has marked a part complete."""
    import threading

    import psutil

    from thresher.pipeline.dedupe.job import DedupeJob, run_dedupe

    inp = tmp_path / "in"
    make_corpus(inp, n_files=16, rows=120)
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if (out / "signatures" / MARKERS).is_dir() and any((out / "signatures" / MARKERS).rglob("*.json")):
                for proc in psutil.process_iter(["pid", "cmdline"]):
                    cmd = " ".join(proc.info["cmdline"] or [])
                    # a task worker's title is "ray::<function>" or "ray::IDLE"; Ray's agents carry the prefix too
                    if (cmd.startswith("ray::") and not any(w in cmd for w in ("Agent", "Dashboard", "Monitor"))
                            and proc.pid != os.getpid()):
                        try:
                            proc.kill()
                            killed.append(proc.pid)
                        except psutil.NoSuchProcess:
                            continue
                        break
            time.sleep(0.01)

    thread = threading.Thread(target=kill_one_worker, daemon=True)
    thread.start()
    done = run_dedupe(DedupeJob(input=str(inp), out_dir=out, workers=2))
    thread.join(timeout=130)
    assert killed, "no Ray worker was found to kill"
    fresh = run_dedupe(DedupeJob(input=str(inp), out_dir=tmp_path / "fresh", workers=1))
    assert tree_bytes(out) == tree_bytes(tmp_path / "fresh") != {}
    assert done["ledger"] == fresh["ledger"]


# ---------------------------------------------------------------- a full disk


def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_writers_report_a_full_disk_and_leave_nothing_behind(tmp_path, monkeypatch):
    table = pa.table({"id": ["a", "b"], "x": [1, 2]})
    real_write = pq.write_table

    def half_then_full(t, where, **kw):
        real_write(t, where, **kw)
        with open(where, "r+b") as fh:  # the disk filled halfway through the file
            fh.truncate(os.path.getsize(where) // 2)
        _enospc()

    monkeypatch.setattr(outputs.pq, "write_table", half_then_full)
    target = tmp_path / "sidecars" / "p.parquet"
    with pytest.raises(OutputWriteError, match=r"cannot write .*p\.parquet: No space left on device \(the disk is full"):
        write_parquet_atomic(table, target)
    assert not target.exists() and not list(target.parent.iterdir())
    monkeypatch.setattr(outputs.os, "fsync", _enospc)
    marker = tmp_path / "_complete" / "p.json"
    with pytest.raises(OutputWriteError, match="the disk is full"):
        write_json_atomic({"done": True}, marker)
    assert not marker.exists() and not list(marker.parent.iterdir())


def _chunks_for(part, out: Path, stages) -> None:
    """The worker-side steps of one part, in process, so a fault can be injected into its finalize."""
    batch = pa.table({"part": [part.to_json()]})
    for t in read_step(batch, ReadOptions(), 4096):
        for s in stages:
            t = apply_stage(s, t)
        write_step(t, str(out / TMP), [s.name for s in stages])


@pytest.mark.parametrize("fail_on", ["sidecars", "ledger", "malformed", "_complete"])
def test_a_full_disk_while_finishing_a_part_never_marks_it_complete(tmp_path, monkeypatch, ray_session, fail_on):
    inp = tmp_path / "in"
    make_corpus(inp, n_files=3)
    stages = [make_scorer("gopher_quality")]
    job = lambda out: MapJob(input=str(inp), out_dir=out, stages=stages, quiet=True)  # noqa: E731
    ref = run_map_job(job(tmp_path / "ref"))
    out = tmp_path / "out"
    _, shards = discover(inp)
    part = [p for p in plan_parts(shards) if p.shard_id == "s02.jsonl"][0]  # it has a malformed row
    _chunks_for(part, out, stages)
    real_write, real_dump = pq.write_table, json.dump

    def parquet(table, where, **kw):
        real_write(table, where, **kw)
        if Path(where).parent.name == fail_on:
            with open(where, "r+b") as fh:  # the disk filled halfway through the file
                fh.truncate(os.path.getsize(where) // 2)
            _enospc()

    def dump(obj, fh, **kw):
        if Path(fh.name).parent.name == fail_on:
            fh.write("{")
            _enospc()
        return real_dump(obj, fh, **kw)

    monkeypatch.setattr(outputs.pq, "write_table", parquet)
    monkeypatch.setattr(outputs.json, "dump", dump)
    with pytest.raises(OutputWriteError, match="No space left on device"):
        finalize_part(str(out), part.to_json(), stages, (), {})
    assert not (out / MARKERS).exists() or not list((out / MARKERS).rglob("*.json"))
    assert not list(out.rglob(".*.tmp"))
    monkeypatch.undo()
    summary = run_map_job(job(out))  # the rerun redoes the part that was never marked complete
    assert summary["content_hash"] == ref["content_hash"]
    assert tree_bytes(out) == tree_bytes(tmp_path / "ref")


def test_a_real_full_disk_stops_the_job_cleanly_and_a_rerun_finishes(tmp_path, ray_session):
    """A size-limited tmpfs (needs permission to mount; skipped otherwise)."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a size-limited tmpfs here (needs root or CAP_SYS_ADMIN)")
    try:
        inp = tmp_path / "in"
        make_corpus(inp, n_files=10, rows=400)
        stages = [make_scorer("gopher_quality"), make_scorer("c4")]
        job = lambda out: MapJob(input=str(inp), out_dir=out, stages=stages, quiet=True, workers=1)  # noqa: E731
        with pytest.raises(OutputWriteError) as err:
            run_map_job(job(mnt / "out"))
        assert str(err.value).startswith(f"[Errno 28] cannot write {mnt.resolve() / 'out'}/")
        assert "the disk is full" in str(err.value)
        assert assert_markers_match_files(mnt / "out") < 10
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        summary = run_map_job(job(mnt / "out"))
        ref = run_map_job(job(tmp_path / "ref"))
        assert summary["content_hash"] == ref["content_hash"]
        assert tree_bytes(mnt / "out") == tree_bytes(tmp_path / "ref")
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)  # a worker still holds a file there


def test_a_part_whose_outputs_were_damaged_is_redone(tmp_path, ray_session):
    make_corpus(tmp_path / "in", n_files=4)
    job = lambda: MapJob(input=str(tmp_path / "in"), out_dir=tmp_path / "out",  # noqa: E731
                         stages=[make_scorer("gopher_quality")], quiet=True)
    first = run_map_job(job())
    before = tree_bytes(tmp_path / "out")
    side = tmp_path / "out" / "sidecars" / "s01.jsonl.part-00000.parquet"
    side.write_bytes(side.read_bytes()[:-100])  # truncated behind the job's back
    (tmp_path / "out" / "malformed" / "s02.jsonl.part-00000.parquet").unlink()
    again = run_map_job(job())
    assert again["parts_skipped_as_complete"] == first["parts"] - 2
    assert tree_bytes(tmp_path / "out") == before and again["content_hash"] == first["content_hash"]
