"""Kill drills: run the CLI in its own session and SIGKILL it, with the Ray it started, once enough parts finished."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def kill_once(argv: list[str], env: dict[str, str], finished: Callable[[], int], parts: int,
              deadline_s: float = 240) -> None:
    """Start `thresher ARGV` and SIGKILL its process group (driver and local Ray, like a lost machine) as soon as
    `finished()` (parts marked complete) reaches `parts`; fails the test if the driver ends first or never gets there."""
    import psutil
    import ray  # noqa: F401  (it bundles psutil and puts it on the path)

    proc = subprocess.Popen([sys.executable, "-m", "thresher.jobs.cli", *argv], cwd=REPO, env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    family: list[psutil.Process] = []
    deadline = time.monotonic() + deadline_s
    try:
        while time.monotonic() < deadline:
            try:
                family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
            if finished() >= parts:
                break
            if proc.poll() is not None:
                pytest.fail(f"the driver ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.02)
        else:
            pytest.fail("no part finished within the time limit")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        for p in family:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        proc.wait()
        proc.stderr.close()
