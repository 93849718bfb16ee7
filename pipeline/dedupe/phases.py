"""Checkpointed global phases: Ray tasks with completion markers, and hash-partitioned bin files.

A phase is a list of task keys (a part index or a bin number). Each task reads
its inputs from files, writes its outputs under fixed names, and writes its
marker last; a rerun skips tasks with a marker, so a crash costs only the
unfinished tasks of the unfinished phase. Data moves between phases as files
in bins (`<dir>/<bin>/<producer>.arrow`): a shuffle by hash partition
that never passes through the driver, which sees only the markers' small JSON.
Bin files are Arrow IPC (`.arrow`): scratch that lives for one job, written and
read several times faster than Parquet, which matters at hundreds of files a phase.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from thresher.pipeline.dedupe.shingles import mix64
from thresher.pipeline.outputs import read_arrow, safe_join, write_arrow_atomic, write_json_atomic
from thresher.pipeline.storage import at, is_remote, place
from thresher.pipeline.storage.requests import each
from thresher.pipeline.tasks import progress, run_remote

MARKERS = "_complete"


def bin_of(uids: np.ndarray, n_bins: int) -> np.ndarray:
    """The bin of each 64-bit key: a mixed hash, so consecutive doc numbers spread evenly."""
    return (mix64(np.asarray(uids).astype(np.uint64)) % np.uint64(n_bins)).astype(np.int64)


def bin_name(k: int) -> str:
    return f"{k:05d}"


def write_bins(table: pa.Table, bins: np.ndarray, directory: Path, producer: str) -> int:
    """Write the rows of `table` with bin k to `directory/<k>/<producer>.arrow` (non-empty bins only)."""
    if table.num_rows == 0:
        return 0
    order = np.argsort(bins, kind="stable")
    sorted_bins = bins[order]
    cuts = np.flatnonzero(np.diff(sorted_bins)) + 1
    starts = np.concatenate(([0], cuts))
    stops = np.concatenate((cuts, [len(order)]))
    taken = table.take(pa.array(order))
    for s, e in zip(starts, stops):
        k = int(sorted_bins[s])
        write_arrow_atomic(taken.slice(s, e - s), safe_join(directory, f"{bin_name(k)}/{producer}.arrow"))
    return len(starts)


def read_bin(directory: Path, k: int | str, columns: list[str] | None = None) -> pa.Table | None:
    """All files of one bin, in producer order, or None when nothing was written to it."""
    d = place(directory) / (bin_name(k) if isinstance(k, (int, np.integer)) else k)
    if not d.is_dir():
        return None
    files = sorted((e.location for e in at(d).files()
                    if e.relative.endswith(".arrow") and "/" not in e.relative and not e.relative.startswith(".")),
                   key=lambda loc: loc.name)
    if not files:
        return None
    return pa.concat_tables([read_arrow(f, columns) for f in files])


def _run_one(fn: Callable[..., dict], marker: str, key: str, kwargs: dict) -> dict:
    t0 = time.perf_counter()
    result = fn(key, **kwargs)
    result = {"key": key, "seconds": round(time.perf_counter() - t0, 4), **(result or {})}
    write_json_atomic(result, place(marker))
    return result


def task_marker(work: Path, phase: str, key: str) -> Path:
    """Where task `key` of `phase` records that it finished (and its small result)."""
    return safe_join(place(work) / phase / MARKERS, f"{key}.json")


def forget_task(work: Path, phase: str, key: str) -> None:
    """Make the next run of `phase` redo task `key` (its outputs were found damaged)."""
    task_marker(work, phase, key).unlink(missing_ok=True)


def run_phase(
    work: Path,
    phase: str,
    keys: list[str],
    fn: Callable[..., dict],
    kwargs: dict[str, Any] | None = None,
    workers: int = 2,
    quiet: bool = True,
) -> list[dict]:
    """Run `fn(key, **kwargs)` as a Ray task for every key without a marker; return all markers in key order.

    On an object store the markers are found with one listing and read by a pool of threads.
    """
    remote = is_remote(work)
    if remote:
        folder = at(work) / phase / MARKERS
        marked = {e.relative[: -len(".json")] for e in folder.files() if e.relative.endswith(".json")}
        pending = [k for k in keys if k not in marked]
    else:
        pending = [k for k in keys if not task_marker(work, phase, k).exists()]
    if pending:
        import ray

        shared = ray.put(kwargs or {})
        run_remote(_run_one, [(fn, str(task_marker(work, phase, k)), k, shared) for k in pending], workers,
                   bar=progress(len(keys), len(keys) - len(pending), quiet, unit="task", desc=phase))
    def read(k: str) -> dict:
        path = task_marker(work, phase, k)
        if not path.exists():
            raise RuntimeError(f"phase {phase}: task {k} has no marker after the run; rerun to finish it")
        return json.loads(path.read_text())

    return each(read, keys, remote)
