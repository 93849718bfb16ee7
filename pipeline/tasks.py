"""Plain Ray tasks for steps that work on whole parts (map jobs of light stages, select, materialize, dedupe).

Each task writes its outputs and then its completion marker, exactly like a map
job; the driver only sees small results. A task per part is far cheaper to run
than a streaming dataset when the work per part is a few hundred milliseconds.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

from thresher.pipeline.outputs import completed_keys, read_marker
from thresher.pipeline.shards import Part

PartFn = Callable[..., dict]


def progress(total: int, done: int, quiet: bool, *, unit: str = "part", desc: str = "parts"):
    """A progress bar on stderr, or None when quiet."""
    if quiet:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True)


def run_remote(
    fn: Callable[..., Any],
    calls: list[tuple],
    workers: int,
    resources: dict[str, Any] | None = None,
    bar: Any = None,
    max_retries: int = 2,
) -> None:
    """`fn(*args)` as a Ray task for every args tuple, a bounded number in flight.

    The tasks write their own outputs, so results are not kept. Twice as many tasks as
    workers are kept submitted, so a worker never waits for the driver. A task's exception
    is re-raised here with its traceback. `bar` (see `progress`) advances per finished task
    and is closed at the end.
    """
    import ray

    remote = ray.remote(max_retries=max_retries, **(resources or {"num_cpus": 1}))(fn)
    pending: set[Any] = set()
    queue = list(calls)[::-1]
    limit = max(1, int(workers)) * 2
    while queue or pending:
        while queue and len(pending) < limit:
            pending.add(remote.remote(*queue.pop()))
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            pending.discard(ref)
            ray.get(ref)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()


def _part_task(fn: PartFn, part_json: str, out_dir: str, kwargs: dict) -> dict:
    return fn(Part.from_json(part_json), Path(out_dir), **kwargs)


def run_part_tasks(
    parts: list[Part],
    fn: PartFn,
    out_dir: Path,
    kwargs: dict[str, Any] | None = None,
    workers: int | None = None,
    address: str | None = None,
    quiet: bool = False,
    desc: str = "parts",
) -> list[dict]:
    """Run `fn(part, out_dir, **kwargs)` for every part without a marker; return all markers in part order."""
    done = completed_keys(out_dir)
    pending = [p for p in parts if p.key not in done]
    if pending:
        import ray

        from thresher.pipeline.cluster import cluster_cpus, ensure_ray

        ensure_ray(address, quiet=quiet)
        size = workers or cluster_cpus()
        shared = ray.put(kwargs or {})
        run_remote(_part_task, [(fn, p.to_json(), str(out_dir), shared) for p in pending], size,
                   bar=progress(len(parts), len(parts) - len(pending), quiet, desc=desc))
    markers = []
    for p in parts:
        m = read_marker(out_dir, p.key)
        if m is None:
            raise RuntimeError(f"part {p.key} has no completion marker after the run; rerun to finish it")
        markers.append(m)
    return markers


def summarize_markers(out_dir: Path, markers: list[dict], extra: dict[str, Any] | None = None) -> dict:
    """Add up per-part ledgers, check the invariant and write summary.json."""
    from thresher.pipeline import ledger as ledger_mod
    from thresher.pipeline.outputs import write_json_atomic

    counts = ledger_mod.merge_counts(m["ledger"] for m in markers)
    rows_read = sum(m["rows_read"] for m in markers)
    ledger_mod.check_invariant(counts, rows_read)
    summary = {"parts": len(markers), "rows_read": rows_read, "ledger": counts, **(extra or {})}
    write_json_atomic(summary, Path(out_dir) / "summary.json")
    return summary
