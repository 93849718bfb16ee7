"""Strict mode and failing tasks: the error raised is the first in input order, whatever finishes first."""
from __future__ import annotations

import json
import time

import pytest

from tests.docs import CLEAN
from thresher.metrics.errors import InputError
from thresher.pipeline.executor import MapJob, run_map_job
from thresher.pipeline.reader import MalformedInput, ReadOptions
from thresher.pipeline.registry import make_scorer
from thresher.pipeline.tasks import run_remote

pytestmark = pytest.mark.usefixtures("ray_session")


def _slow_or_fast_failure(index: int) -> int:
    """Task 1 fails late, task 3 fails at once; the others succeed."""
    if index == 1:
        time.sleep(1.5)
        raise InputError("task 1 failed")
    if index == 3:
        raise InputError("task 3 failed")
    return index


def test_the_earliest_submitted_failure_is_raised_not_the_first_to_finish() -> None:
    with pytest.raises(InputError, match="task 1 failed"):
        run_remote(_slow_or_fast_failure, [(i,) for i in range(6)], workers=2)
    assert run_remote(_slow_or_fast_failure, [(i,) for i in (0, 2, 4)], workers=2) == [0, 2, 4]


def _corpus(root, bad_files: dict[int, int], n_files: int = 8, long_file: int = 2):
    """Small shards, one long one (reading to its bad row takes longest), bad rows where `bad_files` says."""
    root.mkdir()
    for f in range(n_files):
        lines = [json.dumps({"text": f"{CLEAN} [{f}.{i}]"}) for i in range(60_000 if f == long_file else 30)]
        if f in bad_files:
            lines.insert(bad_files[f], "{broken")
        (root / f"s{f}.jsonl").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("engine", ["tasks", "data"])
def test_strict_names_the_first_bad_row_in_input_order_under_both_engines(tmp_path, engine) -> None:
    inp = tmp_path / "in"
    _corpus(inp, {6: 0, 2: 59_000, 7: 3})  # the later files' bad rows are found long before the first's
    job = MapJob(input=str(inp), out_dir=tmp_path / "out", stages=[make_scorer("c4")], quiet=True, workers=2,
                 engine=engine, read=ReadOptions(strict=True))
    with pytest.raises(MalformedInput) as err:
        run_map_job(job)
    assert str(err.value).startswith(f"{inp / 's2.jsonl'}: line 59001: invalid JSON"), str(err.value)


@pytest.mark.parametrize("command", ["score", "dedupe"])
def test_strict_with_several_bad_parts_prints_one_line_and_exits_1(tmp_path, command) -> None:
    """Two parts fail at once: one line naming the first bad row, no Ray traceback after it, exit code 1."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    inp = tmp_path / "in"
    _corpus(inp, {1: 59_000, 3: 0, 4: 0, 5: 0}, n_files=6, long_file=1)
    # RAY_AUTH_MODE left unset, as in a user's shell (the session's ray.init() sets it here): Ray's default path
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run([sys.executable, "-m", "thresher.jobs.cli", command, str(inp), "--out", str(tmp_path / "out"),
                           "--strict", "--workers", "2", "--quiet"], capture_output=True, text=True, timeout=300, env=env)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]  # Ray's token-auth notice included: it must be gone
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"thresher {command}: error: {inp / 's1.jsonl'}: line 59001: invalid JSON"), lines[0]
