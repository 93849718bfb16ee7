"""Materialize: a plan becomes a training manifest and the shards of its mixture.

A plan gives each pool a share of the budget (`seen`) and so its epochs. Every
document of a pool is repeated floor(epochs) times; the fractional epoch goes to
a seeded, hash-ordered run of documents until the pool's planned tokens are
reached, so a rerun picks the same documents. Outputs:

    manifest.parquet       id, pool, repeats, tokens, part: the doc id x repeat count table
    data/<part>.parquet    the chosen documents with their input fields, pool and repeats
                           (with `expand`, one row per repetition, shuffled within the shard)
    README.md              a dataset card whose `configs` make `datasets.load_dataset(DIR)` read data/
    summary.json           planned against materialized tokens per pool
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.pipeline.outputs import (
    file_sha256,
    marker_path,
    read_parquet,
    write_json_atomic,
    write_parquet_atomic,
    write_part_file,
    write_text_atomic,
)
from thresher.pipeline.plans import PlanError, read_plan
from thresher.pipeline.pools import load_pools_json, read_members
from thresher.pipeline.reader import ReadOptions, read_part
from thresher.pipeline.shards import Part
from thresher.pipeline.storage import place

DATA = "data"
_CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: "data/**/*.parquet"
---
# Materialized mixture

Written by `thresher materialize` from `{plan}`: {documents} documents, {rows} training rows
({unit} seen: {seen:.0f}). Each row carries its `pool` and `repeats`{expand}.
Load it with `datasets.load_dataset("path/to/this/folder", split="train")`.
"""


MaterializeError = PlanError  # a plan that is not one, or does not fit its pools: the name callers catch


def _order_key(ids: pa.Array, seed: int) -> np.ndarray:
    """A seeded pseudo-random order that depends only on the doc ids (stable across reruns and parts)."""
    import xxhash

    return np.fromiter((xxhash.xxh64_intdigest(s.encode("utf-8"), seed=seed) for s in ids.to_pylist()), np.uint64, len(ids))


def repeat_counts(ids: pa.Array, tokens: np.ndarray, target: float, seed: int = 0) -> np.ndarray:
    """Repeats per document so that sum(repeats * tokens) first reaches `target` (whole pool passes first)."""
    tokens = np.asarray(tokens, dtype=np.float64)
    total = float(tokens.sum())
    if total <= 0 or target <= 0:
        return np.zeros(len(tokens), dtype=np.int64)
    full = int(np.floor(target / total + 1e-12))
    rest = target - full * total
    reps = np.full(len(tokens), full, dtype=np.int64)
    if rest > 1e-9 * total:
        order = np.argsort(_order_key(ids, seed), kind="stable")
        cum = np.cumsum(tokens[order])
        take = int(np.searchsorted(cum, rest, side="left")) + 1  # the document that crosses the target is in
        reps[order[: min(take, len(order))]] += 1
    return reps


def build_manifest(plan: dict, pools_dir: str | Path, seed: int = 0, plan_source: str = "plan",
                   pools_json: dict | None = None) -> tuple[pa.Table, dict]:
    """The doc id x repeat count table for a plan (as `read_plan` returns it), and per-pool figures.

    pools_json: the pools.json already read from `pools_dir` (read here when not given).
    """
    pools_json = load_pools_json(pools_dir) if pools_json is None else pools_json
    known = {p["name"]: p for p in pools_json["pools"]}
    unit = plan.get("unit", pools_json.get("unit", "tokens"))
    if unit != pools_json.get("unit", "tokens"):
        raise MaterializeError(f"{plan_source}: plan unit {unit!r} differs from the pools' unit {pools_json.get('unit')!r}")
    budget = float(plan["budget"])
    rows = [r for r in plan["pools"] if float(r["weight"]) > 0]
    unknown = [r["name"] for r in rows if r["name"] not in known]
    if unknown:
        raise MaterializeError(f"{plan_source}: pool(s) {unknown} are not in {pools_dir}/pools.json "
                               f"(pools: {', '.join(known)})")
    members = read_members(pools_dir, [r["name"] for r in rows])
    tables, figures = [], {}
    for r in rows:
        sub = members.filter(pc.equal(members["pool"], r["name"]))
        tok = sub["tokens"].to_numpy(zero_copy_only=False).astype(np.float64) if unit == "tokens" else np.ones(sub.num_rows)
        target = float(r.get("seen", float(r["weight"]) * budget))
        reps = repeat_counts(sub["id"].combine_chunks(), tok, target, seed)
        keep = reps > 0
        chosen = sub.filter(pa.array(keep)).append_column("repeats", pa.array(reps[keep], pa.int64()))
        tables.append(chosen.select(["id", "pool", "repeats", "tokens", "part"]))
        figures[r["name"]] = {"weight": float(r["weight"]), "planned_seen": target,
                              "planned_epochs": float(r.get("epochs", target / max(tok.sum(), 1))),
                              "documents": int(keep.sum()), "unique_used": float(tok[keep].sum()),
                              "seen": float((reps * tok).sum()), "pool_unique": float(tok.sum())}
    manifest = pa.concat_tables(tables) if tables else pa.table({"id": pa.array([], pa.string())})
    return manifest, {"unit": unit, "budget": budget, "pools": figures}


def materialize_part(part: Part, out_dir: Path, manifest: str, read: dict, expand: bool, seed: int) -> dict:
    """Write one part's chosen documents (a Ray task; see `thresher.pipeline.tasks.run_part_tasks`)."""
    man = read_parquet(manifest, filters=[("part", "=", part.key)], columns=["id", "pool", "repeats"])
    opts = ReadOptions(**{**read, "carry": tuple(read.get("carry", ())), "keep_fields": True, "strict": False})
    docs = read_part(part, opts)
    docs = docs.filter(pc.is_null(docs["__malformed"]))
    docs = docs.drop_columns([c for c in docs.column_names if c.startswith("__")])
    pos = pc.index_in(man["id"], value_set=docs["id"])
    if man.num_rows and pc.any(pc.is_null(pos)).as_py():
        missing = man["id"].filter(pc.is_null(pos))[0].as_py()
        raise MaterializeError(f"part {part.key}: manifest id {missing!r} is not in the input any more; did it change?")
    chosen = docs.take(pos) if man.num_rows else docs.slice(0, 0)
    for name in ("pool", "repeats"):
        if name in chosen.column_names:
            chosen = chosen.drop_columns([name])
        chosen = chosen.append_column(name, man[name])
    outputs: dict[str, str] = {}
    if expand and chosen.num_rows:
        idx = np.repeat(np.arange(chosen.num_rows), chosen["repeats"].to_numpy())
        rng = np.random.default_rng([seed, *part.key.encode()])
        chosen = chosen.take(pa.array(rng.permutation(idx)))
    write_part_file(chosen, out_dir, DATA, part.key, outputs)
    marker = {"part": json.loads(part.to_json()), "documents": man.num_rows, "rows": chosen.num_rows, "outputs": outputs}
    write_json_atomic(marker, marker_path(out_dir, part.key))
    return marker


def materialize(plan_path: str | Path, pools_dir: str | Path, out: str | Path, *, seed: int = 0, expand: bool = False,
                workers: int | None = None, address: str | None = None, quiet: bool = True) -> dict[str, Any]:
    """Write manifest.parquet, data/ shards, README.md and summary.json for a plan; return the summary."""
    from thresher.pipeline.select import load_job
    from thresher.pipeline.tasks import run_part_tasks

    out = place(out)
    plan = read_plan(plan_path)
    pools_json = load_pools_json(pools_dir)
    manifest, figures = build_manifest(plan, pools_dir, seed, str(plan_path), pools_json)
    job = load_job(place(pools_json["scored"]))
    fingerprint = {"plan": file_sha256(plan_path), "pools": str(place(pools_dir).resolve()), "seed": seed,
                   "expand": expand}
    job_path = out / "job.json"
    if job_path.exists() and json.loads(job_path.read_text()).get("fingerprint") != fingerprint:
        raise MaterializeError(f"{out} holds a different materialization; use a new --out or --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic({"fingerprint": fingerprint, "kind": "materialize"}, job_path)
    write_parquet_atomic(manifest, out / "manifest.parquet")
    wanted = set(manifest["part"].to_pylist()) if manifest.num_rows else set()
    parts = [Part(**s) for s in job["part_specs"]]
    parts = [p for p in parts if p.key in wanted]
    markers = run_part_tasks(parts, materialize_part, out,
                             {"manifest": str((out / "manifest.parquet").resolve()), "read": job["read"],
                              "expand": expand, "seed": seed},
                             workers=workers, address=address, quiet=quiet, desc="materialize")
    rows = sum(m["rows"] for m in markers)
    seen = sum(f["seen"] for f in figures["pools"].values())
    summary = {**figures, "documents": manifest.num_rows, "rows": rows, "expand": expand, "seed": seed,
               "shards": sum(1 for m in markers if m["outputs"]), "plan": str(place(plan_path).resolve()),
               "planned_budget": float(plan["budget"]), "materialized_seen": seen}
    write_text_atomic(_CARD.format(plan=place(plan_path).name, documents=manifest.num_rows, rows=rows,
                                   unit=figures["unit"], seen=seen, expand=" (one row per repetition)" if expand else ""),
                      out / "README.md")
    write_json_atomic(summary, out / "summary.json")
    return summary
