"""What both engines do the same way: run a stage on a batch, and write a part's outputs and marker.

An engine only schedules: it reads parts, feeds their rows through `apply_stage`
batch by batch, and hands each part's rows (in row order) to `write_part_outputs`,
which writes the sidecar, ledger and quarantine under temporary names, renames
them, and writes the completion marker last. So the two engines cannot drift
apart in what they write.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from thresher.pipeline import ledger as ledger_mod
from thresher.pipeline.outputs import marker_path, write_json_atomic, write_part_file
from thresher.pipeline.parts import Part
from thresher.pipeline.reader import ReadOptions
from thresher.pipeline.stage import Stage

SIDECARS, LEDGER, MALFORMED = "sidecars", "ledger", "malformed"
PART_FILES = (SIDECARS, LEDGER, MALFORMED)


@dataclass(frozen=True)
class MapWork:
    """What an engine needs to run a map job's pending parts."""

    out_dir: str
    stages: list[Stage]
    read: ReadOptions
    batch_rows: int
    workers: int
    quiet: bool


def secs_column(stage_name: str) -> str:
    """The per-row seconds column a stage's step appends (dropped before anything is written)."""
    return f"__secs_{stage_name}"


@contextmanager
def stages_set_up(stages: list[Stage]) -> Iterator[None]:
    """Every stage's `setup()` before, and `teardown()` after (also on failure), in reverse order."""
    ready: list[Stage] = []
    try:
        for stage in stages:
            stage.setup()
            ready.append(stage)
        yield
    finally:
        for stage in reversed(ready):
            stage.teardown()


def apply_stage(stage: Stage, batch: pa.Table) -> pa.Table:
    """Run a stage on the readable rows of a batch and scatter its columns back; append its seconds per row."""
    t0 = time.perf_counter()
    ok = pc.is_valid(batch["text"])
    n_ok = pc.sum(ok.cast(pa.int64())).as_py() or 0
    schema = stage.output_schema()
    if n_ok == batch.num_rows:
        added = stage.run_checked(batch)
    elif n_ok == 0:
        added = pa.table({f.name: pa.nulls(batch.num_rows, f.type) for f in schema}, schema=schema)
    else:
        sub = stage.run_checked(batch.filter(ok))
        # positions of readable rows; unreadable rows get nulls
        idx = pc.cumulative_sum(ok.cast(pa.int64()))
        take = pc.if_else(ok, pc.subtract(idx, 1), pa.scalar(None, pa.int64()))
        added = pa.table({f.name: sub[f.name].take(take) for f in schema}, schema=schema)
    for name in added.column_names:
        batch = batch.append_column(name, added[name])
    secs = (time.perf_counter() - t0) / max(1, batch.num_rows)
    return batch.append_column(secs_column(stage.name), pa.array([secs] * batch.num_rows, pa.float64()))


def _empty_rows(stages: list[Stage], carry: tuple[str, ...]) -> pa.Table:
    """A part without rows, in the shape of one with rows."""
    cols = {"id": pa.array([], pa.string()), "__row": pa.array([], pa.int64()), "__malformed": pa.array([], pa.string()),
            "__raw": pa.array([], pa.string())}
    cols.update({c: pa.array([], pa.string()) for c in carry})
    cols.update({f.name: pa.array([], f.type) for s in stages for f in s.output_schema()})
    return pa.table(cols)


def write_part_outputs(
    out: Path, part: Part, table: pa.Table | None, stages: list[Stage], carry: tuple[str, ...],
    stage_secs: dict[str, float],
) -> dict:
    """Sidecar, ledger and quarantine of a part's rows (in row order; None for no rows), then its marker.

    The sidecar's schema is the stages' declared Arrow schema, whatever the batches
    carried, so every part's sidecar has the same column types.
    """
    table = _empty_rows(stages, carry) if table is None else table
    bad = pc.is_valid(table["__malformed"])
    good = table.filter(pc.invert(bad))
    carried = [c for c in carry if c in table.column_names]
    stage_fields = [f for s in stages for f in s.output_schema()]
    schema = pa.schema([pa.field("id", pa.string())] + [good.schema.field(c) for c in carried] + stage_fields)
    sidecar = good.select(schema.names).cast(schema)
    ledger = ledger_mod.initial_ledger(table["id"].combine_chunks(), table["__malformed"].combine_chunks())
    outputs: dict[str, str] = {}
    write_part_file(sidecar, out, SIDECARS, part.key, outputs)
    write_part_file(ledger, out, LEDGER, part.key, outputs)
    quarantine = table.filter(bad).select(["id", "__row", "__malformed", "__raw"]).rename_columns(["id", "row", "reason", "raw"])
    write_part_file(quarantine, out, MALFORMED, part.key, outputs)
    counts = ledger_mod.count(ledger)
    ledger_mod.check_invariant(counts, table.num_rows)
    stage_entries = {}
    for s in stages:
        stats = s.checked_stats(sidecar.select(list(s.adds)))
        stage_entries[s.name] = {"rows_in": good.num_rows, "rows_out": good.num_rows, **stats,
                                 "seconds": stage_secs.get(s.name, 0.0)}
    marker = {"part": json.loads(part.to_json()), "rows_read": table.num_rows, "ledger": counts, "outputs": outputs,
              "stages": stage_entries}
    write_json_atomic(marker, marker_path(out, part.key))
    return marker
