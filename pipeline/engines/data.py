"""The `data` engine: parts stream through Ray Data, and model stages stay loaded in actor pools.

A read step turns each part into batches; one `map_batches` per stage follows
(stateless tasks, or an actor pool for a stage with setup, so a model loads once
per worker and is torn down when the pool ends); a write step spills each batch's
rows to chunk files per part and returns one small report row per part. The
driver adds up the reports and, once a part's rows are all written, submits a
finalize task that puts the chunks in row order and writes the outputs and marker.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from thresher.pipeline import storage
from thresher.pipeline.engines.steps import MapWork, apply_stage, secs_column, write_part_outputs
from thresher.pipeline.outputs import TMP, read_parquet, remove_tree, safe_join, write_parquet_atomic
from thresher.pipeline.parts import Part
from thresher.pipeline.reader import MalformedInput, ReadOptions, read_part
from thresher.pipeline.stage import Stage
from thresher.pipeline.tasks import RemoteTasks, keep_message, original_error, progress, run_remote


def read_step(batch: pa.Table, read: ReadOptions, batch_rows: int,
              storage_options: dict | None = None) -> Iterator[pa.Table]:
    """Each part named in `batch` as row batches tagged with the part's key and row count."""
    if storage_options is not None:
        storage.configure(storage_options)
    for part_json in batch["part"].to_pylist():
        part = Part.from_json(part_json)
        with keep_message():
            table = read_part(part, read)
        n = table.num_rows
        if n == 0:  # a sentinel row tells the driver that this part is empty
            table = pa.table(
                {
                    "id": pa.array([None], pa.string()),
                    "text": pa.array([None], pa.string()),
                    "__row": pa.array([-1], pa.int64()),
                    "__malformed": pa.array([None], pa.string()),
                    "__raw": pa.array([None], pa.string()),
                    **{c: pa.array([None], pa.string()) for c in table.column_names if c not in ("id", "text") and not c.startswith("__")},
                }
            )
        table = table.append_column("__part", pa.array([part.key] * table.num_rows, pa.string()))
        table = table.append_column("__part_rows", pa.array([n] * table.num_rows, pa.int64()))
        for start in range(0, table.num_rows, batch_rows):
            yield table.slice(start, batch_rows)


def stage_task(batch: pa.Table, stage: Stage) -> pa.Table:
    with keep_message():
        return apply_stage(stage, batch)


class StageActor:
    """Holds one stage for a worker: `setup()` when the actor starts, `teardown()` when the pool lets it go."""

    def __init__(self, stage: Stage) -> None:
        with keep_message():
            stage.setup()
        self.stage = stage

    def __call__(self, batch: pa.Table) -> pa.Table:
        with keep_message():
            return apply_stage(self.stage, batch)

    def __del__(self) -> None:  # Ray Data drops the callable when the actor exits gracefully
        stage = getattr(self, "stage", None)
        if stage is not None:
            stage.teardown()


def write_step(batch: pa.Table, tmp_root: str, stage_names: list[str],
               storage_options: dict | None = None) -> pa.Table:
    """Spill the batch's rows per part to chunk files; return one small report row per part."""
    if storage_options is not None:
        storage.configure(storage_options)
    with keep_message():
        return _spill(batch, tmp_root, stage_names)


def _spill(batch: pa.Table, tmp_root: str, stage_names: list[str]) -> pa.Table:
    keys = batch["__part"].unique().to_pylist()
    reports: dict[str, list] = defaultdict(list)
    secs_cols = [secs_column(s) for s in stage_names]
    for key in keys:
        sub = batch.filter(pc.equal(batch["__part"], key))
        part_rows = sub["__part_rows"][0].as_py()
        real = sub.filter(pc.greater_equal(sub["__row"], 0))
        if real.num_rows:
            first = pc.min(real["__row"]).as_py()
            keep = [c for c in real.column_names if c not in ("text", "__part", "__part_rows") and c not in secs_cols]
            path = safe_join(tmp_root, f"{key}/{first:012d}.parquet")
            write_parquet_atomic(real.select(keep), path, durable=False)  # scratch: redone if lost
        else:
            first = -1
        reports["part"].append(key)
        reports["first_row"].append(first)
        reports["rows"].append(real.num_rows)
        reports["part_rows"].append(part_rows)
        for s, c in zip(stage_names, secs_cols):
            reports[f"secs_{s}"].append(float(pc.sum(real[c]).as_py() or 0.0) if real.num_rows else 0.0)
    return pa.table(dict(reports))


def finalize_part(out_dir: str, part_json: str, stages: list[Stage], carry: tuple[str, ...],
                  stage_secs: dict[str, float]) -> dict:
    """Assemble a part's chunks in row order, write its outputs and then its marker."""
    part = Part.from_json(part_json)
    out = storage.place(out_dir)
    chunk_dir = safe_join(out, f"{TMP}/{part.key}")
    chunks = [e.location for e in storage.at(chunk_dir).files()
              if e.relative.endswith(".parquet") and "/" not in e.relative and not e.relative.startswith(".")] \
        if chunk_dir.is_dir() else []
    table = None
    if chunks:
        table = pa.concat_tables([read_parquet(c) for c in chunks], promote_options="permissive")
        table = table.sort_by("__row")
        rows = table["__row"].to_numpy()
        if len(rows) and (len(set(rows.tolist())) != len(rows)):
            raise RuntimeError(f"part {part.key}: overlapping chunks in {chunk_dir}; rerun to redo the part")
    marker = write_part_outputs(out, part, table, stages, carry, stage_secs)
    remove_tree(chunk_dir)
    return marker


def _dataset(work: MapWork, pending: list[Part]):
    """The stream: read step, one map per stage, write step; each yields small report tables."""
    import ray.data

    ds = ray.data.from_items([{"part": p.to_json()} for p in pending], override_num_blocks=len(pending))
    options = storage.current_options()
    ds = ds.map_batches(read_step, fn_kwargs={"read": work.read, "batch_rows": work.batch_rows, "storage_options": options},
                        batch_size=1,
                        batch_format="pyarrow", compute=ray.data.TaskPoolStrategy(size=work.workers), num_cpus=1)
    for stage in work.stages:
        res = stage.resources.ray_args()
        if stage.has_setup:
            ds = ds.map_batches(StageActor, fn_constructor_kwargs={"stage": stage}, batch_size=None, batch_format="pyarrow",
                                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=work.workers), **res)
        else:
            ds = ds.map_batches(stage_task, fn_kwargs={"stage": stage}, batch_size=None, batch_format="pyarrow",
                                compute=ray.data.TaskPoolStrategy(size=work.workers), **res)
    return ds.map_batches(write_step, fn_kwargs={"tmp_root": str(storage.at(work.out_dir) / TMP),
                                                 "stage_names": [s.name for s in work.stages],
                                                 "storage_options": options},
                          batch_size=None, batch_format="pyarrow", compute=ray.data.TaskPoolStrategy(size=work.workers),
                          num_cpus=1)


def _check_strictly(part_json: str, read: ReadOptions) -> None:
    """Read a part in strict mode and throw the rows away: raises MalformedInput at its first bad row."""
    read_part(Part.from_json(part_json), read)


def _first_malformed(work: MapWork, pending: list[Part]) -> None:
    """Raise the MalformedInput of the first bad row in input order.

    Ray Data runs parts in whatever order its scheduler picks, so the bad row it hit
    first depends on timing; strict mode promises the first one in the input.
    """
    run_remote(_check_strictly, [(p.to_json(), work.read) for p in pending], work.workers)


def run(work: MapWork, pending: list[Part]) -> None:
    try:
        _stream(work, pending)
    except Exception as exc:
        if work.read.strict and isinstance(original_error(exc), MalformedInput):
            _first_malformed(work, pending)
        raise


def _stream(work: MapWork, pending: list[Part]) -> None:
    import ray

    by_key = {p.key: p for p in pending}
    stages = ray.put(work.stages)
    finalize = RemoteTasks(finalize_part, work.workers, {"num_cpus": 0.5}, max_retries=3, bounded=False,
                           bar=progress(len(by_key), 0, work.quiet))
    seen_rows: dict[str, int] = defaultdict(int)
    seen_chunks: dict[str, set] = defaultdict(set)
    secs: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    expected: dict[str, int] = {}
    for report in _dataset(work, pending).iter_batches(batch_format="pyarrow", batch_size=None):
        for row in report.to_pylist():
            key = row["part"]
            chunk = row["first_row"]
            if chunk in seen_chunks[key]:
                continue  # a retried task reported the same chunk again
            seen_chunks[key].add(chunk)
            expected[key] = row["part_rows"]
            seen_rows[key] += row["rows"]
            for s in work.stages:
                secs[key][s.name] += row[f"secs_{s.name}"]
            if seen_rows[key] == expected[key]:
                finalize.submit(work.out_dir, by_key[key].to_json(), stages, work.read.carry, dict(secs[key]))
        finalize.poll()
    missing = [k for k in by_key if k not in expected or seen_rows[k] != expected[k]]
    if missing:
        raise RuntimeError(f"{len(missing)} parts did not report all rows (first: {missing[0]}); rerun to resume")
    finalize.finish()
