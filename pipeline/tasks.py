"""Per-part Ray tasks for steps that work on whole parts (select, materialize, dedupe phases).

Each task writes its outputs and then its completion marker, exactly like a map
job; the driver only sees the markers' small JSON.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa

from pipeline.outputs import completed_keys, read_marker
from pipeline.shards import Part

PartFn = Callable[..., dict]


def _task_step(batch: pa.Table, fn: PartFn, out_dir: str, kwargs: dict) -> pa.Table:
    markers = [json.dumps(fn(Part.from_json(p), Path(out_dir), **kwargs), sort_keys=True) for p in batch["part"].to_pylist()]
    return pa.table({"marker": pa.array(markers, pa.string())})


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
        import ray.data

        from pipeline.cluster import cluster_cpus, ensure_ray

        ensure_ray(address, quiet=quiet)
        size = workers or cluster_cpus()
        ds = ray.data.from_items([{"part": p.to_json()} for p in pending], override_num_blocks=len(pending))
        ds = ds.map_batches(_task_step, fn_kwargs={"fn": fn, "out_dir": str(out_dir), "kwargs": kwargs or {}},
                            batch_size=1, batch_format="pyarrow", compute=ray.data.TaskPoolStrategy(size=size), num_cpus=1)
        bar = None
        if not quiet:
            from tqdm import tqdm

            bar = tqdm(total=len(parts), initial=len(parts) - len(pending), unit="part", desc=desc, file=sys.stderr)
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            if bar:
                bar.update(batch.num_rows)
        if bar:
            bar.close()
    markers = []
    for p in parts:
        m = read_marker(out_dir, p.key)
        if m is None:
            raise RuntimeError(f"part {p.key} has no completion marker after the run; rerun to finish it")
        markers.append(m)
    return markers


def summarize_markers(out_dir: Path, markers: list[dict], extra: dict[str, Any] | None = None) -> dict:
    """Add up per-part ledgers, check the invariant and write summary.json."""
    from pipeline import ledger as ledger_mod
    from pipeline.outputs import write_json_atomic

    counts = ledger_mod.merge_counts(m["ledger"] for m in markers)
    rows_read = sum(m["rows_read"] for m in markers)
    ledger_mod.check_invariant(counts, rows_read)
    summary = {"parts": len(markers), "rows_read": rows_read, "ledger": counts, **(extra or {})}
    write_json_atomic(summary, Path(out_dir) / "summary.json")
    return summary
