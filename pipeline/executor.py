"""Map jobs: parts in, sidecars, ledgers and markers out, resumable and identical on every schedule.

`run_map_job` finds the input's parts, checks the output directory's manifest
(a rerun with other settings is refused, see `manifest`), skips the parts that
are complete and intact, and hands the rest to an engine (`engines`: a Ray task
per part, or a Ray Data stream); either way each part's outputs are written under
temporary names and renamed, and its completion marker is written last. Then
input ids are checked across parts (`unique_ids`) and the markers are added up
into summary.json and stats.json. The same rows give the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from thresher.metrics.errors import InputError
from thresher.pipeline.discovery import discover_listing
from thresher.pipeline.engines import RUNNERS, choose_engine
from thresher.pipeline.engines.steps import MALFORMED, PART_FILES, MapWork
from thresher.pipeline.manifest import (
    RUNTIME,
    JobConflict,
    as_json,
    changed_pending_shard,
    complete_parts,
    input_setting,
    job_settings,
    open_manifest,
    read_setting,
    shard_listing,
)
from thresher.pipeline.outputs import (
    TMP,
    part_file,
    read_markers,
    read_parquet,
    remove_stale_tmp,
    remove_tree,
    safe_join,
    write_json_atomic,
)
from thresher.pipeline.parts import Part
from thresher.pipeline.read_rows import MISSING_TEXT
from thresher.pipeline.reader import ReadOptions
from thresher.pipeline.shards import DEFAULT_PART_BYTES, DEFAULT_PART_ROWS, plan_parts
from thresher.pipeline.stage import Stage
from thresher.pipeline.storage import Location, at, is_remote, place
from thresher.pipeline.tasks import summarize_markers, thresher_errors
from thresher.pipeline.unique_ids import mark_ids_seen_in_earlier_parts

FORMAT_VERSION = 1


@dataclass
class MapJob:
    """A score-style job: read parts, run map stages, write sidecars keyed by doc id.

    Fields marked `RUNTIME` change how the job runs, not what it writes; every other
    field is part of the fingerprint a rerun must match.
    """

    input: str
    out_dir: Path = field(metadata=RUNTIME)
    stages: list[Stage]
    read: ReadOptions = field(default_factory=ReadOptions)
    part_bytes: int = DEFAULT_PART_BYTES
    part_rows: int = DEFAULT_PART_ROWS
    batch_rows: int = field(default=4096, metadata=RUNTIME)
    workers: int | None = field(default=None, metadata=RUNTIME)
    address: str | None = field(default=None, metadata=RUNTIME)
    quiet: bool = field(default=False, metadata=RUNTIME)
    kind: str = "score"
    engine: str = field(default="auto", metadata=RUNTIME)  # auto | tasks | data; see `choose_engine`
    stop_after_parts: int | None = field(default=None, metadata=RUNTIME)  # tests and drills: a driver that dies midway

    def fingerprint(self) -> dict:
        """What must match for a rerun to resume rather than start over (as saved in job.json)."""
        settings = job_settings(self)
        settings.update(input=input_setting(self.input), read=read_setting(self.read),
                        stages=[stage_description(s) for s in self.stages])
        return as_json(settings)


def stage_description(stage: Stage) -> dict:
    """A stage in the fingerprint: its name, its columns and types, and the params that decide its output."""
    return {"name": stage.name, "adds": {k: str(v) for k, v in stage.adds.items()}, "params": stage.params()}


def run_map_job(job: MapJob) -> dict:
    """Run (or resume) a map job and return its summary; see the module docstring."""
    from thresher.pipeline.cluster import cluster_cpus, ensure_ray

    out = place(job.out_dir)
    for where in (at(job.input), at(out)):
        if where.process_local:
            raise InputError(f"{where.uri}: memory:// lives in this process only, and Ray workers run in others; "
                             "use a local path or an object store for a job")
    out.mkdir(parents=True, exist_ok=True)
    engine = choose_engine(job.engine, job.stages)
    parts, pending = _saved_parts(out, job)
    if parts is None:
        listing = discover_listing(job.input)
        parts = plan_parts(listing.shards, job.part_bytes, job.part_rows,
                           sizes={k: v.size for k, v in listing.stats.items()} if listing.stats else None)
        open_manifest(out, {"fingerprint": job.fingerprint(), "parts": [p.key for p in parts],
                            "format_version": FORMAT_VERSION, "part_specs": [json.loads(p.to_json()) for p in parts],
                            "read": as_json(asdict(job.read)), "input": job.input,
                            "shards": shard_listing(listing.shards, listing.stats)})
        done = complete_parts(out, [p.key for p in parts])
        pending = [p for p in parts if p.key not in done]
    if job.stop_after_parts is not None:
        pending = pending[: job.stop_after_parts]
    t0 = time.perf_counter()
    if pending:
        ensure_ray(job.address, quiet=job.quiet)
        _clear_leftovers(out, pending)
        work = MapWork(out_dir=str(out), stages=job.stages, read=job.read, batch_rows=job.batch_rows,
                       workers=job.workers or cluster_cpus(), quiet=job.quiet)
        with thresher_errors():
            RUNNERS[engine](work, pending)
    if job.read.id_field and not any(m is None for m in read_markers(out, [p.key for p in parts])):
        mark_ids_seen_in_earlier_parts(out, parts, job.read)
    summary = summarize(out, parts, job.stages, time.perf_counter() - t0, skipped=len(parts) - len(pending))
    _check_text_field_found(summary, out, parts, job)
    return summary


def _saved_parts(out: Path | Location, job: MapJob) -> tuple[list[Part] | None, list[Part]]:
    """A rerun of a job over an object store: its parts from job.json, no listing and no planning.

    Listing millions of objects is the slow step of starting a job on an object store;
    a rerun reuses what the first run listed and planned. The shards still to be read
    are looked up and must match the saved listing (a changed object is refused, as a
    changed local file is); finished parts are checked against their markers as always.
    Local inputs are listed again (cheap), so a local rerun also notices new files.
    """
    if not is_remote(job.input) or not (out / "job.json").is_file():
        return None, []
    saved = open_manifest(out, {"fingerprint": job.fingerprint()})
    if "part_specs" not in saved or "shards" not in saved:
        return None, []
    parts = [Part.from_json(json.dumps(spec)) for spec in saved["part_specs"]]
    done = complete_parts(out, [p.key for p in parts])
    pending = [p for p in parts if p.key not in done]
    changed = changed_pending_shard(saved["shards"], {p.shard_id: p.path for p in pending})
    if changed:
        raise JobConflict(f"{out}: the input changed since the job started ({changed}); use a new --out directory, "
                          "or --overwrite to start over")
    return parts, pending


class TextFieldNotFound(InputError):
    """No row of the whole input has the text field: a wrong --text-field, not a corpus of bad rows."""


def _check_text_field_found(summary: dict, out: Path, parts: list[Part], job: MapJob) -> None:
    """Stop with one line when every row of the job lacks the text field, naming the fields the input has."""
    ledger = summary["ledger"]
    if not ledger["rows"] or ledger["malformed"] != ledger["rows"]:
        return
    reasons = ledger["malformed_by_reason"]
    missing = sum(n for r, n in reasons.items() if r.startswith(MISSING_TEXT))
    if missing != ledger["rows"]:
        return
    field = job.read.text_field
    raise TextFieldNotFound(f"{job.input}: no row has the text field {field!r} (fields seen: {_fields_seen(out, parts)}); "
                            f"rerun with --text-field NAME and a new --out (or --overwrite)")


def _fields_seen(out: Path, parts: list[Part]) -> str:
    """The field names of the first quarantined row that has any: its raw JSON object, or a columnar reason's list."""
    for p in parts:
        path = part_file(out, MALFORMED, p.key)
        if not path.exists():
            continue
        table = read_parquet(path, columns=["reason", "raw"])
        for reason, raw in zip(table["reason"].to_pylist(), table["raw"].to_pylist()):
            if "(columns: " in (reason or ""):
                return reason.split("(columns: ", 1)[1].rstrip(")")
            try:
                record = json.loads(raw or "")
            except ValueError:
                continue
            if isinstance(record, dict) and record:
                return ", ".join(sorted(map(str, record)))
    return "none"


def _clear_leftovers(out: Path | Location, pending: list[Part]) -> None:
    """Chunks and half-written files of a killed run: its chunks may be cut differently, so start those parts clean.

    On an object store one listing of the scratch prefix finds the parts that left chunks (uploads leave no
    half-written objects), instead of two requests per pending part.
    """
    if isinstance(out, Location):
        scratch = out / TMP
        left = {e.relative.rsplit("/", 1)[0] for e in scratch.files()} if scratch.is_dir() else set()  # key/NNN.parquet
        for p in pending:
            if p.key in left:
                remove_tree(safe_join(out, f"{TMP}/{p.key}"))
        return
    for p in pending:
        remove_tree(safe_join(out, f"{TMP}/{p.key}"))
        for sub in PART_FILES:
            target = part_file(out, sub, p.key)
            remove_stale_tmp(target.parent, target.name)


def _add_counters(total: dict[str, Any], counters: dict[str, Any]) -> None:
    """Add one part's stage counters into `total`: numbers add, {key: number} maps add per key."""
    for name, value in counters.items():
        if isinstance(value, dict):
            into = total.setdefault(name, {})
            for key, n in value.items():
                into[key] = into.get(key, 0) + n
        else:
            total[name] = total.get(name, 0) + value


def summarize(out: Path, parts: list[Part], stages: list[Stage], seconds: float, skipped: int = 0) -> dict:
    """Add up the markers of all parts into summary.json and stats.json."""
    markers = read_markers(out, [p.key for p in parts])
    for p, m in zip(parts, markers):
        if m is None:
            raise RuntimeError(f"part {p.key} has no completion marker; rerun the job to finish it")
    stage_stats: dict[str, dict] = {}
    for s in stages:
        agg: dict[str, Any] = {"rows_in": 0, "rows_out": 0, "seconds": 0.0, "fail_reasons": {}}
        for m in markers:
            _add_counters(agg, m["stages"].get(s.name, {}))
        for name, value in agg.items():
            if isinstance(value, dict):
                agg[name] = dict(sorted(value.items()))
        agg["docs_per_second"] = agg["rows_in"] / agg["seconds"] if agg["seconds"] else None
        stage_stats[s.name] = agg
    digest = hashlib.sha256()
    for m in markers:
        for name in sorted(m["outputs"]):
            digest.update(f"{m['part']['shard_id']}/{m['part']['index']}/{name}={m['outputs'][name]}\n".encode())
    summary = summarize_markers(out, markers, {"parts_skipped_as_complete": skipped, "wall_seconds": round(seconds, 3),
                                               "content_hash": digest.hexdigest()})
    write_json_atomic({"stages": stage_stats}, out / "stats.json")
    summary["stages"] = stage_stats
    return summary
