"""The Ray executor for map jobs: parts in, sidecars, ledgers and markers out.

Two engines run the same work and write the same bytes. `tasks` (the default for
stages without setup) runs one Ray task per part: read, every stage batch by
batch, outputs, marker. `data` streams parts through Ray Data: a read step, one
`map_batches` per stage (tasks, or an actor pool for stages with per-worker
setup, so a model loads once per worker), and a writer that spills each batch's
sidecar columns to chunk files; only small reports come back to the driver,
which launches one finalize task per finished part to put the chunks in row
order. Either way the sidecar, ledger and quarantine are written under
temporary names and renamed, and the completion marker is written last. A rerun
skips parts that have a marker, and the same rows give the same bytes.
"""
from __future__ import annotations

import errno
import hashlib
import json
import re
import shutil
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from thresher.pipeline import ledger as ledger_mod
from thresher.pipeline.outputs import (
    TMP,
    completed_keys,
    file_sha256,
    marker_path,
    part_file,
    read_marker,
    remove_stale_tmp,
    safe_join,
    write_json_atomic,
    write_parquet_atomic,
    write_part_file,
)
from thresher.pipeline.reader import ReadOptions, read_part
from thresher.pipeline.shards import DEFAULT_PART_BYTES, DEFAULT_PART_ROWS, Part, discover, plan_parts
from thresher.pipeline.stage import Resources, Stage
from thresher.metrics.errors import InputError

SIDECARS, LEDGER, MALFORMED = "sidecars", "ledger", "malformed"
INTERNAL = ("__part", "__row", "__part_rows", "__malformed", "__raw")


class JobConflict(InputError):
    """The output directory holds a different job; resuming it would mix results."""


@dataclass
class MapJob:
    """A score-style job: read parts, run map stages, write sidecars keyed by doc id."""

    input: str
    out_dir: Path
    stages: list[Stage]
    read: ReadOptions = field(default_factory=ReadOptions)
    part_bytes: int = DEFAULT_PART_BYTES
    part_rows: int = DEFAULT_PART_ROWS
    batch_rows: int = 4096
    workers: int | None = None
    address: str | None = None
    quiet: bool = False
    kind: str = "score"
    engine: str = "auto"  # auto | tasks | data; see `choose_engine` (outputs do not depend on it)
    stop_after_parts: int | None = None  # for tests and drills: simulate a driver that dies midway

    def fingerprint(self) -> dict:
        """What must match for a rerun to resume rather than start over."""
        return json.loads(json.dumps({
            "kind": self.kind,
            "input": str(Path(self.input).resolve()) if not any(c in self.input for c in "*?[") else self.input,
            "read": {k: v for k, v in asdict(self.read).items() if k != "strict"},
            "stages": [stage_description(s) for s in self.stages],
            "part_bytes": self.part_bytes,
            "part_rows": self.part_rows,
        }, default=str))  # through JSON, so it compares equal to the copy saved in job.json


def stage_description(stage: Stage) -> dict:
    options = getattr(stage, "options", None)
    return {"name": stage.name, "adds": {k: str(v) for k, v in stage.adds.items()}, "options": options or {}}


# ---------------------------------------------------------------- worker-side steps


def _read_step(batch: pa.Table, read: ReadOptions, batch_rows: int) -> Iterator[pa.Table]:
    for part_json in batch["part"].to_pylist():
        part = Part.from_json(part_json)
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


def _apply_stage(stage: Stage, batch: pa.Table) -> pa.Table:
    """Run a stage on the readable rows of a batch and scatter its columns back."""
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
    return batch.append_column(f"__secs_{stage.name}", pa.array([secs] * batch.num_rows, pa.float64()))


def _stage_task(batch: pa.Table, stage: Stage) -> pa.Table:
    return _apply_stage(stage, batch)


class _StageActor:
    """Holds one stage whose setup (e.g. loading a model) runs once per worker."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        stage.setup()

    def __call__(self, batch: pa.Table) -> pa.Table:
        return _apply_stage(self.stage, batch)


def _write_step(batch: pa.Table, tmp_root: str, stage_names: list[str]) -> pa.Table:
    """Spill the batch's rows per part to chunk files; return one small report row per part."""
    keys = batch["__part"].unique().to_pylist()
    reports: dict[str, list] = defaultdict(list)
    secs_cols = [f"__secs_{s}" for s in stage_names]
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


def _finalize_part(
    out_dir: str, part_json: str, stage_meta: list[dict], carry: list[str], stage_secs: dict[str, float]
) -> dict:
    """Assemble a part's chunks in row order, write its outputs and then its marker."""
    part = Part.from_json(part_json)
    out = Path(out_dir)
    chunk_dir = safe_join(out, f"{TMP}/{part.key}")
    chunks = sorted(chunk_dir.glob("*.parquet")) if chunk_dir.is_dir() else []
    table = None
    if chunks:
        table = pa.concat_tables([pq.read_table(c) for c in chunks], promote_options="permissive")
        table = table.sort_by("__row")
        rows = table["__row"].to_numpy()
        if len(rows) and (len(set(rows.tolist())) != len(rows)):
            raise RuntimeError(f"part {part.key}: overlapping chunks in {chunk_dir}; rerun to redo the part")
    marker = _write_part_outputs(out, part, part_json, table, stage_meta, carry, stage_secs)
    shutil.rmtree(chunk_dir, ignore_errors=True)
    return marker


def _write_part_outputs(
    out: Path, part: Part, part_json: str, table: pa.Table | None, stage_meta: list[dict], carry: list[str],
    stage_secs: dict[str, float],
) -> dict:
    """Sidecar, ledger and quarantine of a part's rows (in row order; None for no rows), then its marker."""
    stage_cols = [(name, pa.type_for_alias(t) if isinstance(t, str) else t) for m in stage_meta for name, t in m["adds"]]
    if table is None:
        cols = {"id": pa.array([], pa.string()), "__row": pa.array([], pa.int64()), "__malformed": pa.array([], pa.string()),
                "__raw": pa.array([], pa.string())}
        cols.update({c: pa.array([], pa.string()) for c in carry})
        cols.update({name: pa.array([], t) for name, t in stage_cols})
        table = pa.table(cols)
    bad = pc.is_valid(table["__malformed"])
    good = table.filter(pc.invert(bad))
    sidecar_cols = ["id"] + [c for c in carry if c in table.column_names] + [n for n, _ in stage_cols]
    sidecar = good.select(sidecar_cols)
    schema = pa.schema([pa.field("id", pa.string())]
                       + [sidecar.schema.field(c) for c in sidecar_cols[1 : len(sidecar_cols) - len(stage_cols)]]
                       + [pa.field(n, t) for n, t in stage_cols])
    sidecar = sidecar.cast(schema)
    ledger = ledger_mod.initial_ledger(table["id"].combine_chunks(), table["__malformed"].combine_chunks())
    outputs: dict[str, str] = {}
    write_part_file(sidecar, out, SIDECARS, part.key, outputs)
    write_part_file(ledger, out, LEDGER, part.key, outputs)
    quarantine = table.filter(bad).select(["id", "__row", "__malformed", "__raw"]).rename_columns(["id", "row", "reason", "raw"])
    write_part_file(quarantine, out, MALFORMED, part.key, outputs)
    flags = {}
    for m in stage_meta:
        col = m.get("reason_column")
        if col and col in good.column_names:
            vc = pc.value_counts(good[col].drop_null()).to_pylist() if good.num_rows else []
            flags[m["name"]] = {r["values"]: r["counts"] for r in sorted(vc, key=lambda r: r["values"])}
    counts = ledger_mod.count(ledger)
    ledger_mod.check_invariant(counts, table.num_rows)
    marker = {
        "part": json.loads(part_json),
        "rows_read": table.num_rows,
        "ledger": counts,
        "outputs": outputs,
        "stages": {m["name"]: {"rows_in": good.num_rows, "rows_out": good.num_rows, "fail_reasons": flags.get(m["name"], {}),
                               "seconds": stage_secs.get(m["name"], 0.0)} for m in stage_meta},
    }
    write_json_atomic(marker, marker_path(out, part.key))
    return marker


def _process_part(
    out_dir: str, part_json: str, stages: list[Stage], read: ReadOptions, batch_rows: int, stage_meta: list[dict],
    carry: list[str],
) -> dict:
    """A whole part in one task: read, every stage batch by batch, outputs and marker (the `tasks` engine)."""
    part = Part.from_json(part_json)
    for stage in stages:
        if stage.has_setup:
            stage.setup()
    table = read_part(part, read)
    pieces: list[pa.Table] = []
    secs: dict[str, float] = defaultdict(float)
    for start in range(0, table.num_rows, batch_rows):
        batch = table.slice(start, batch_rows)
        for stage in stages:
            batch = _apply_stage(stage, batch)
            col = f"__secs_{stage.name}"
            secs[stage.name] += float(pc.sum(batch[col]).as_py() or 0.0)
            batch = batch.drop_columns([col])
        pieces.append(batch.drop_columns(["text"]))
    whole = pa.concat_tables(pieces).combine_chunks() if pieces else None
    return _write_part_outputs(Path(out_dir), part, part_json, whole, stage_meta, carry, dict(secs))


# ---------------------------------------------------------------- driver


def _stage_meta(stages: list[Stage]) -> list[dict]:
    return [
        {"name": s.name, "adds": [(k, str(v)) for k, v in s.adds.items()], "reason_column": getattr(s, "reason_column", None)}
        for s in stages
    ]


def _check_manifest(job: MapJob, parts: list[Part]) -> dict:
    out = Path(job.out_dir)
    manifest = {"fingerprint": job.fingerprint(), "parts": [p.key for p in parts], "format_version": 1,
                "part_specs": [json.loads(p.to_json()) for p in parts], "read": asdict(job.read), "input": job.input}
    path = out / "job.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("fingerprint") != manifest["fingerprint"]:
            raise JobConflict(
                f"{out} holds a different job (input, options or stages differ); use a new --out directory or --overwrite"
            )
        if old.get("parts") != manifest["parts"]:
            raise JobConflict(f"{out}: the input's shards changed since the job started; use a new --out directory")
    else:
        write_json_atomic(manifest, path)
    return manifest


def run_map_job(job: MapJob) -> dict:
    """Run (or resume) a map job and return its summary; see the module docstring."""
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _, shards = discover(job.input)
    parts = plan_parts(shards, job.part_bytes, job.part_rows)
    _check_manifest(job, parts)
    done = completed_keys(out)
    done = {p.key for p in parts if p.key in done and _outputs_intact(out, p.key)}
    pending = [p for p in parts if p.key not in done]
    if job.stop_after_parts is not None:
        pending = pending[: job.stop_after_parts]
    meta = _stage_meta(job.stages)
    carry = list(job.read.carry)
    t0 = time.perf_counter()
    if pending:
        try:
            _run_pending(job, pending, meta, carry)
        except Exception as exc:
            plain = plain_error(exc)
            if plain is None:
                raise
            raise plain from exc
    if job.read.id_field and not any(read_marker(out, p.key) is None for p in parts):
        _mark_ids_seen_in_earlier_parts(out, parts, job.read)
    summary = summarize(out, parts, job.stages, time.perf_counter() - t0, skipped=len(parts) - len(pending))
    return summary


def _outputs_intact(out: Path, key: str) -> bool:
    """A marker counts only while the files it names are there with the bytes it recorded.

    A part whose outputs were deleted, truncated or altered loses its marker and is redone.
    """
    marker = read_marker(out, key)
    ok = marker is not None
    if ok:
        for name, digest in marker.get("outputs", {}).items():
            path = part_file(out, name, key)
            if not path.exists() or file_sha256(path) != digest:
                ok = False
                break
    if not ok:
        marker_path(out, key).unlink(missing_ok=True)
    return ok


def plain_error(exc: BaseException) -> Exception | None:
    """Our own error (full disk, strict-mode input, unsafe name) out of Ray's wrappers, or None.

    Ray Data re-raises a task's exception as a `UserCodeException` carrying only the
    remote traceback text, so the error is recognised by its qualified name there.
    """
    from thresher.pipeline.outputs import OutputWriteError
    from thresher.pipeline.reader import MalformedInput
    from thresher.pipeline.safety import UnsafePath

    for err in (getattr(exc, "cause", None), exc):  # a Ray task error carries the original as `cause`
        if type(err) in (OutputWriteError, MalformedInput, UnsafePath):
            return err
    found = re.findall(r"^thresher\.pipeline\.(?:outputs|reader|safety)\.(OutputWriteError|MalformedInput|UnsafePath): (.*)$",
                       str(exc), re.MULTILINE)
    if not found:
        return None
    name, message = found[-1]
    if name == "OutputWriteError":
        m = re.match(r"\[Errno (\d+)\] (.*)", message)
        return OutputWriteError(int(m.group(1)), m.group(2)) if m else OutputWriteError(errno.EIO, message)
    return {"MalformedInput": MalformedInput, "UnsafePath": UnsafePath}[name](message)


ENGINES = ("auto", "tasks", "data")


def choose_engine(job: MapJob) -> str:
    """`tasks` (one Ray task per part) unless a stage loads state in `setup()`: then `data`.

    A task per part costs little besides the work itself, which matters for light
    stages (heuristics, signatures) whose work per part is under a second. Ray Data
    keeps model stages in an actor pool, so a model loads once per worker, not per part.
    """
    if job.engine not in ENGINES:
        raise ValueError(f"unknown engine {job.engine!r}; choose one of {', '.join(ENGINES)}")
    if job.engine != "auto":
        return job.engine
    return "data" if any(s.has_setup for s in job.stages) else "tasks"


def _run_pending(job: MapJob, pending: list[Part], meta: list[dict], carry: list[str]) -> None:
    from thresher.pipeline.cluster import cluster_cpus, ensure_ray

    out = Path(job.out_dir)
    engine = choose_engine(job)
    ensure_ray(job.address, quiet=job.quiet)
    for p in pending:  # chunks of a killed run may be cut differently: start those parts clean
        shutil.rmtree(safe_join(out, f"{TMP}/{p.key}"), ignore_errors=True)
        for sub in (SIDECARS, LEDGER, MALFORMED):  # and half-written files of a killed writer go too
            target = part_file(out, sub, p.key)
            remove_stale_tmp(target.parent, target.name)
    workers = job.workers or cluster_cpus()
    if engine == "tasks":
        _run_pending_tasks(job, pending, meta, carry, workers)
    else:
        _run_pending_data(job, pending, meta, carry, workers)


def _task_resources(stages: list[Stage]) -> dict:
    """One task runs every stage in turn, so it reserves the most any of them declares."""
    return Resources(cpus=max((s.resources.cpus for s in stages), default=1.0),
                     gpus=max((s.resources.gpus for s in stages), default=0.0),
                     memory_mb=max((s.resources.memory_mb or 0 for s in stages), default=0) or None).ray_args()


def _run_pending_tasks(job: MapJob, pending: list[Part], meta: list[dict], carry: list[str], workers: int) -> None:
    import ray

    from thresher.pipeline.tasks import progress, run_remote

    bar = progress(len(pending), 0, job.quiet)
    stages = ray.put(job.stages)
    calls = [(str(job.out_dir), p.to_json(), stages, job.read, job.batch_rows, meta, carry) for p in pending]
    run_remote(_process_part, calls, workers, _task_resources(job.stages), bar=bar, max_retries=3)


def _run_pending_data(job: MapJob, pending: list[Part], meta: list[dict], carry: list[str], workers: int) -> None:
    import ray
    import ray.data

    out = Path(job.out_dir)
    by_key = {p.key: p for p in pending}
    ds = ray.data.from_items([{"part": p.to_json()} for p in pending], override_num_blocks=len(pending))
    ds = ds.map_batches(_read_step, fn_kwargs={"read": job.read, "batch_rows": job.batch_rows}, batch_size=1,
                        batch_format="pyarrow", compute=ray.data.TaskPoolStrategy(size=workers), num_cpus=1)
    for stage in job.stages:
        res = stage.resources.ray_args()
        if stage.has_setup:
            ds = ds.map_batches(_StageActor, fn_constructor_kwargs={"stage": stage}, batch_size=None, batch_format="pyarrow",
                                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=workers), **res)
        else:
            ds = ds.map_batches(_stage_task, fn_kwargs={"stage": stage}, batch_size=None, batch_format="pyarrow",
                                compute=ray.data.TaskPoolStrategy(size=workers), **res)
    ds = ds.map_batches(_write_step, fn_kwargs={"tmp_root": str(out / TMP), "stage_names": [s.name for s in job.stages]},
                        batch_size=None, batch_format="pyarrow", compute=ray.data.TaskPoolStrategy(size=workers), num_cpus=1)

    finalize = ray.remote(num_cpus=0.5, max_retries=3)(_finalize_part)
    seen_rows: dict[str, int] = defaultdict(int)
    seen_chunks: dict[str, set] = defaultdict(set)
    secs: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    expected: dict[str, int] = {}
    futures: dict[Any, str] = {}
    from thresher.pipeline.tasks import progress

    bar = progress(len(by_key), 0, job.quiet)
    finished_parts = 0

    def launch(key: str) -> None:
        ref = finalize.remote(str(out), by_key[key].to_json(), meta, carry, dict(secs[key]))
        futures[ref] = key

    def collect(block: bool) -> None:
        nonlocal finished_parts
        if not futures:
            return
        ready, _ = ray.wait(list(futures), num_returns=len(futures) if block else 1, timeout=None if block else 0)
        for ref in ready:
            ray.get(ref)  # re-raises a finalize failure with its traceback
            futures.pop(ref)
            finished_parts += 1
            if bar:
                bar.update(1)

    for report in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        for row in report.to_pylist():
            key = row["part"]
            chunk = row["first_row"]
            if chunk in seen_chunks[key]:
                continue  # a retried task reported the same chunk again
            seen_chunks[key].add(chunk)
            expected[key] = row["part_rows"]
            seen_rows[key] += row["rows"]
            for s in job.stages:
                secs[key][s.name] += row[f"secs_{s.name}"]
            if seen_rows[key] == expected[key]:
                launch(key)
        collect(block=False)
    missing = [k for k in by_key if k not in expected or seen_rows[k] != expected[k]]
    if missing:
        raise RuntimeError(f"{len(missing)} parts did not report all rows (first: {missing[0]}); rerun to resume")
    collect(block=True)
    if bar:
        bar.close()


CROSS_PART_DUPLICATE = "duplicate id across parts: "


def _mark_ids_seen_in_earlier_parts(out: Path, parts: list[Part], read: ReadOptions) -> int:
    """User-given ids must be unique over the whole job: a later copy of an id becomes a malformed row.

    Parts are finalized independently, so this runs once all are complete, over the
    ledgers (ids only). A part that holds a later copy gets its ledger, sidecar and
    quarantine rewritten and then its marker; the pass is idempotent, so a run killed
    midway is repaired by the next one. Returns how many rows it marked.
    """
    tables = []
    for i, p in enumerate(parts):
        path = part_file(out, LEDGER, p.key)
        if path.exists():
            t = pq.read_table(path, columns=["id", "status", "reason"])
            order = np.int64(i) * (1 << 32) + np.arange(t.num_rows, dtype=np.int64)
            tables.append(t.append_column("__order", pa.array(order)))
    if not tables:
        return 0
    led = pa.concat_tables(tables)
    earlier = pc.starts_with(pc.fill_null(led["reason"], ""), CROSS_PART_DUPLICATE)
    cand = led.filter(pc.or_(pc.equal(led["status"], "kept"), earlier))
    firsts = cand.group_by("id").aggregate([("__order", "min"), ("__order", "count")])
    firsts = firsts.filter(pc.greater(firsts["__order_count"], 1))
    if firsts.num_rows == 0:
        return 0
    joined = cand.join(firsts, "id")
    joined = joined.filter(pc.not_equal(joined["__order"], joined["__order_min"]))
    later = joined.select(["id", "__order", "__order_min"]).to_pylist()
    by_part: dict[int, dict[int, tuple[str, str]]] = defaultdict(dict)
    for r in later:
        first = parts[r["__order_min"] >> 32]
        by_part[r["__order"] >> 32][r["__order"] & 0xFFFFFFFF] = (r["id"], f"{CROSS_PART_DUPLICATE}{r['id']!r} (first in {first.shard_id})")
    if read.strict:
        i = min(by_part)
        pos, (doc_id, reason) = min(by_part[i].items())
        rows = read_part(parts[i], ReadOptions(**{**asdict(read), "strict": False}))
        hit = rows.filter(pc.equal(rows["id"], doc_id))["__row"].to_pylist()
        line = f"line {hit[0] + 1}: " if hit else ""
        from thresher.pipeline.reader import MalformedInput

        raise MalformedInput(f"{parts[i].path}: {line}{reason} (run without --strict to quarantine bad rows)")
    for i in sorted(by_part):
        _rewrite_part_with_duplicates(out, parts[i], read, by_part[i])
    return len(later)


def _rewrite_part_with_duplicates(out: Path, part: Part, read: ReadOptions, dups: dict[int, tuple[str, str]]) -> None:
    """Mark ledger positions `dups` malformed, drop them from the sidecar, quarantine them; marker last."""
    ledger_path = part_file(out, LEDGER, part.key)
    ledger = pq.read_table(ledger_path)
    status, reason = ledger["status"].to_pylist(), ledger["reason"].to_pylist()
    for pos, (_, why) in dups.items():
        status[pos], reason[pos] = "malformed", why
    new_ledger = ledger_mod.ledger_table(ledger["id"].combine_chunks(), pa.array(status, pa.string()),
                                         pa.array(reason, pa.string()), ledger["duplicate_of"].combine_chunks())
    if not new_ledger.equals(ledger):
        write_parquet_atomic(new_ledger, ledger_path)
    ids = pa.array(sorted({doc_id for doc_id, _ in dups.values()}), pa.string())
    side_path = part_file(out, SIDECARS, part.key)
    if side_path.exists():
        side = pq.read_table(side_path)
        keep = pc.invert(pc.is_in(side["id"], value_set=ids))
        if not pc.all(keep).as_py():
            side = side.filter(keep)
            if side.num_rows:
                write_parquet_atomic(side, side_path)
            else:
                side_path.unlink()
    q_path = part_file(out, MALFORMED, part.key)
    old_q = pq.read_table(q_path) if q_path.exists() else None
    have = set(old_q.filter(pc.starts_with(pc.fill_null(old_q["reason"], ""), CROSS_PART_DUPLICATE))["id"].to_pylist()) \
        if old_q is not None else set()
    if have != set(ids.to_pylist()):
        rows = read_part(part, ReadOptions(**{**asdict(read), "strict": False}))
        rows = rows.filter(pc.and_(pc.is_in(rows["id"], value_set=ids), pc.is_null(rows["__malformed"])))
        why = {doc_id: r for doc_id, r in dups.values()}
        from thresher.pipeline.reader import RAW_KEEP_BYTES

        new_q = pa.table({"id": rows["id"], "row": rows["__row"],
                          "reason": pa.array([why[i] for i in rows["id"].to_pylist()], pa.string()),
                          "raw": pc.utf8_slice_codeunits(rows["text"], 0, RAW_KEEP_BYTES)})
        if old_q is not None:
            old_q = old_q.filter(pc.invert(pc.starts_with(pc.fill_null(old_q["reason"], ""), CROSS_PART_DUPLICATE)))
            new_q = pa.concat_tables([old_q, new_q.cast(old_q.schema)])
        write_parquet_atomic(new_q.sort_by("row"), q_path)
    marker = read_marker(out, part.key)
    outputs = {}
    for name, path in ((SIDECARS, side_path), (LEDGER, ledger_path), (MALFORMED, q_path)):
        if path.exists():
            outputs[name] = file_sha256(path)
    counts = ledger_mod.count(new_ledger)
    ledger_mod.check_invariant(counts, marker["rows_read"])
    kept = counts["kept"]
    stages = {name: {**st, "rows_in": kept, "rows_out": kept} for name, st in marker["stages"].items()}
    fresh = {**marker, "ledger": counts, "outputs": outputs, "stages": stages}
    if fresh != marker:
        write_json_atomic(fresh, marker_path(out, part.key))


def summarize(out: Path, parts: list[Part], stages: list[Stage], seconds: float, skipped: int = 0) -> dict:
    """Add up the markers of all parts into summary.json and stats.json."""
    markers = []
    for p in parts:
        m = read_marker(out, p.key)
        if m is None:
            raise RuntimeError(f"part {p.key} has no completion marker; rerun the job to finish it")
        markers.append(m)
    counts = ledger_mod.merge_counts(m["ledger"] for m in markers)
    rows_read = sum(m["rows_read"] for m in markers)
    ledger_mod.check_invariant(counts, rows_read)
    stage_stats: dict[str, dict] = {}
    for s in stages:
        agg = {"rows_in": 0, "rows_out": 0, "seconds": 0.0, "fail_reasons": defaultdict(int)}
        for m in markers:
            st = m["stages"].get(s.name, {})
            agg["rows_in"] += st.get("rows_in", 0)
            agg["rows_out"] += st.get("rows_out", 0)
            agg["seconds"] += st.get("seconds", 0.0)
            for r, n in st.get("fail_reasons", {}).items():
                agg["fail_reasons"][r] += n
        agg["fail_reasons"] = dict(sorted(agg["fail_reasons"].items()))
        agg["docs_per_second"] = agg["rows_in"] / agg["seconds"] if agg["seconds"] else None
        stage_stats[s.name] = agg
    digest = hashlib.sha256()
    for m in markers:
        for name in sorted(m["outputs"]):
            digest.update(f"{m['part']['shard_id']}/{m['part']['index']}/{name}={m['outputs'][name]}\n".encode())
    summary = {
        "parts": len(parts),
        "parts_skipped_as_complete": skipped,
        "rows_read": rows_read,
        "ledger": counts,
        "wall_seconds": round(seconds, 3),
        "content_hash": digest.hexdigest(),
    }
    write_json_atomic({"stages": stage_stats}, out / "stats.json")
    write_json_atomic(summary, out / "summary.json")
    summary["stages"] = stage_stats
    return summary
