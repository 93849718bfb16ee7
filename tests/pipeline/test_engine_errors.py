"""Our own errors come out of Ray as themselves, from both engines.

A strict-mode bad row, a full disk (or any failed write) and an output name that
would leave --out are raised inside Ray workers; the caller and the CLI must see
`MalformedInput`, `OutputWriteError` and `UnsafePath`, with their own messages,
not Ray's wrapper around them.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.docs import CLEAN
from thresher.jobs.cli import main
from thresher.metrics.errors import InputError, ThresherError
from thresher.pipeline.executor import MapJob, run_map_job
from thresher.pipeline.outputs import OutputWriteError
from thresher.pipeline.reader import MalformedInput, ReadOptions
from thresher.pipeline.registry import make_scorer
from thresher.pipeline.safety import UnsafePath
from thresher.pipeline.tasks import original_error, run_remote

ENGINES = ("tasks", "data")
pytestmark = pytest.mark.usefixtures("ray_session")


def corpus(root: Path, n_files: int = 3, rows: int = 30, bad_in: int | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for f in range(n_files):
        lines = [json.dumps({"text": f"{CLEAN} [{f}.{i}]"}) for i in range(rows)]
        if f == bad_in:
            lines.insert(4, "{broken")
        (root / f"s{f}.jsonl").write_text("\n".join(lines) + "\n")
    return root


def job(inp: Path, out: Path, engine: str, **kw) -> MapJob:
    return MapJob(input=str(inp), out_dir=out, stages=[make_scorer("gopher_quality"), make_scorer("c4")], quiet=True,
                  engine=engine, **kw)


@pytest.mark.parametrize("engine", ENGINES)
def test_strict_mode_malformed_input(tmp_path, engine, capsys):
    inp = corpus(tmp_path / "in", bad_in=1)
    with pytest.raises(MalformedInput) as err:
        run_map_job(job(inp, tmp_path / "out", engine, read=ReadOptions(strict=True)))
    assert type(err.value) is MalformedInput
    assert str(err.value).startswith(f"{inp / 's1.jsonl'}: line 5: invalid JSON")
    rc = main(["score", str(inp), "--out", str(tmp_path / "cli"), "--strict", "--engine", engine, "--quiet"])
    err_text = capsys.readouterr().err.strip()
    assert rc == 1 and err_text.splitlines() == [f"thresher score: error: {err.value}"]


def _mount_small_disk(where: Path) -> bool:
    where.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(where)], capture_output=True).returncode == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_a_full_disk(tmp_path, engine):
    disk = tmp_path / "small-disk"
    if not _mount_small_disk(disk):
        pytest.skip("cannot mount a size-limited tmpfs here (needs root or CAP_SYS_ADMIN)")
    try:
        inp = corpus(tmp_path / "in", n_files=6, rows=400)
        with pytest.raises(OutputWriteError) as err:
            run_map_job(job(inp, disk / "out", engine, workers=1))
        assert type(err.value) is OutputWriteError
        assert "the disk is full" in str(err.value) and str(err.value).startswith("[Errno 28] cannot write ")
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_write_blocked_by_a_directory_in_the_way(tmp_path, engine):
    """Any failed write is an OutputWriteError naming the file; no root needed, so this runs everywhere."""
    inp = corpus(tmp_path / "in", n_files=2)
    target = tmp_path / "out" / "ledger" / "s1.jsonl.part-00000.parquet"
    target.mkdir(parents=True)
    with pytest.raises(OutputWriteError) as err:
        run_map_job(job(inp, tmp_path / "out", engine))
    assert type(err.value) is OutputWriteError and f"cannot write {target.resolve()}" in str(err.value)


@pytest.mark.parametrize("engine", ENGINES)
def test_an_output_link_that_leaves_the_output_directory(tmp_path, engine):
    inp = corpus(tmp_path / "in", n_files=2)
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    os.symlink(outside, tmp_path / "out" / "sidecars")
    with pytest.raises(UnsafePath) as err:
        run_map_job(job(inp, tmp_path / "out", engine))
    assert type(err.value) is UnsafePath and "outside" in str(err.value)
    assert list(outside.iterdir()) == []


def _raise(exc: Exception) -> None:
    raise exc


def test_the_ray_helper_raises_the_tasks_own_error_and_leaves_others_wrapped():
    with pytest.raises(InputError) as err:
        run_remote(_raise, [(InputError("bad row at line 3"),)], workers=1, max_retries=0)
    assert type(err.value) is InputError and str(err.value) == "bad row at line 3"
    import ray.exceptions

    with pytest.raises(ray.exceptions.RayTaskError):
        run_remote(_raise, [(KeyError("not ours"),)], workers=1, max_retries=0)


def test_original_error_walks_cause_and_context_chains():
    import ray.exceptions

    ours = UnsafePath("sidecars/x: outside the output directory")
    wrapped = ray.exceptions.RayTaskError("fn", "traceback text", ours).as_instanceof_cause()
    assert isinstance(wrapped, UnsafePath) and original_error(wrapped) is ours  # the wrapper is not the answer
    try:
        try:
            raise ours
        except UnsafePath as exc:
            raise ray.exceptions.UserCodeException("UDF failed") from exc
    except ray.exceptions.UserCodeException:
        try:
            raise RuntimeError("while cleaning up")  # implicit chaining through __context__
        except RuntimeError as last:
            assert original_error(last) is ours
    assert original_error(RuntimeError("plain")) is None
    assert isinstance(ours, ThresherError)
