"""Pilot runs: quick, real proxy trainings on slices of each pool, whose results a utility law is fitted on.

The proxy is a character n-gram language model (`thresher.metrics.fluency.FluencyModel`,
Kneser-Ney, over characters so that every run shares one closed vocabulary and
their cross-entropies compare) trained on a slice of one pool, whole passes
repeated as a plan would repeat them, scored in bits per character on documents
held out from every pool. A count model gains little from a repeated document, so
its utility decays fast with epochs. Every (pool, fraction) run is one Ray task;
a run's result depends only on its pool, fraction, order and seed, never on the
number of workers, and the observations are written sorted by pool and fraction.
"""
from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from thresher.metrics.errors import InputError
from thresher.metrics.fluency import FluencyModel
from thresher.pipeline.cluster import cluster_cpus, ensure_ray
from thresher.pipeline.materialize import repeat_counts
from thresher.pipeline.outputs import write_text_atomic
from thresher.pipeline.parts import Part
from thresher.pipeline.pools import load_pools_json, read_members
from thresher.pipeline.reader import ReadOptions, read_part
from thresher.pipeline.select import load_job
from thresher.pipeline.storage import place
from thresher.pipeline.tasks import run_remote

PILOT_COLUMNS = "run=run,pool=pool,seen=seen,unique=unique,value=value"
"""How the observations file's columns map onto an observation table (`--columns` syntax)."""
OBSERVATIONS = "observations.csv"


def as_characters(text: str) -> str:
    """One token per character (spaces shown as U+2581), lines kept: the proxy LM's closed vocabulary."""
    return "\n".join(" ".join(line.replace(" ", "\u2581")) for line in text.splitlines())


def _pool_texts(pools_dir: Path, holdout: float, max_docs: int | None, seed: int) -> tuple[dict[str, pa.Table], list[str]]:
    """Per pool: id, text, tokens of its training documents; plus the held-out texts (from every pool)."""
    info = load_pools_json(pools_dir)
    members = read_members(pools_dir)
    job = load_job(place(info["scored"]))
    read = {**job["read"], "carry": tuple(job["read"].get("carry", ())), "keep_fields": False, "strict": False}
    wanted = set(members["part"].to_pylist())
    chunks = []
    for spec in job["part_specs"]:
        part = Part(**spec)
        if part.key not in wanted:
            continue
        docs = read_part(part, ReadOptions(**read))
        mine = members.filter(pc.equal(members["part"], part.key))
        pos = pc.index_in(mine["id"], value_set=docs["id"])
        chunks.append(pa.table({"id": mine["id"], "pool": mine["pool"], "tokens": mine["tokens"],
                                "text": docs["text"].take(pos)}))
    table = pa.concat_tables(chunks)
    h = np.fromiter((xxhash.xxh64_intdigest(s.encode(), seed=seed) for s in table["id"].to_pylist()), np.uint64,
                    table.num_rows)
    held = (h % np.uint64(10_000)).astype(np.float64) < holdout * 10_000
    heldout = [as_characters(t) for t in table.filter(pa.array(held))["text"].to_pylist()]
    train = table.filter(pa.array(~held))
    out: dict[str, pa.Table] = {}
    for p in info["pools"]:
        sub = train.filter(pc.equal(train["pool"], p["name"]))
        if max_docs is not None and sub.num_rows > max_docs:
            order = np.argsort(h[~held][np.asarray(pc.equal(train["pool"], p["name"]))], kind="stable")[:max_docs]
            sub = sub.take(pa.array(np.sort(order)))
        chars = pa.array([as_characters(t) for t in sub["text"].to_pylist()], pa.string())
        out[p["name"]] = pa.table({"id": sub["id"], "text": chars, "tokens": sub["tokens"]})
    if max_docs is not None and len(heldout) > max_docs:
        heldout = heldout[:max_docs]
    return out, heldout


def pilot_run(pool: str, fraction: float, docs: pa.Table, heldout: list[str], order: int, seed: int) -> dict:
    """Train the proxy LM on `fraction` passes of a pool (whole passes repeated); bits per character on held-out text.

    `docs` and `heldout` hold character-tokenised text (`as_characters`); `seen` counts the pool's own unit.
    """
    t0 = time.perf_counter()
    tokens = docs["tokens"].to_numpy(zero_copy_only=False).astype(np.float64)
    unique = float(tokens.sum())
    reps = repeat_counts(docs["id"].combine_chunks(), tokens, fraction * unique, seed)
    texts = docs["text"].to_pylist()
    train = [texts[i] for i in np.repeat(np.arange(len(texts)), reps)]
    model = FluencyModel(order=order).fit(train)
    lp, count = model.log10_prob(heldout)
    bits = float(-lp.sum() / max(count.sum(), 1) * np.log2(10.0))
    return {"run": f"{pool}@{fraction:g}", "pool": pool, "fraction": fraction, "seen": float((reps * tokens).sum()),
            "unique": unique, "value": bits, "documents": int(len(texts)), "seconds": round(time.perf_counter() - t0, 2)}


def run_pilots(pools_dir: Path, out_dir: Path, fractions: list[float], holdout: float = 0.1, order: int = 3,
               max_docs: int | None = None, seed: int = 0, address: str | None = None, workers: int | None = None,
               quiet: bool = True, log: Callable[[str], None] = lambda s: None) -> Path:
    """Run every (pool, fraction) pilot as a Ray task; write and return `out_dir/observations.csv`."""
    import ray

    pools, heldout = _pool_texts(place(pools_dir), holdout, max_docs, seed)
    if len(heldout) < 5:
        raise InputError(f"only {len(heldout)} held-out documents for the pilot runs; raise fit.pilots.holdout")
    empty = [name for name, docs in pools.items() if docs.num_rows == 0]
    if empty:
        raise InputError(f"pool {empty[0]!r} has no training documents left for pilot runs")
    ensure_ray(address, quiet=quiet)
    held = ray.put(heldout)
    calls = []
    for name, docs in pools.items():
        ref = ray.put(docs)
        calls += [(name, f, ref, held, order, seed) for f in fractions]
    finished = 0

    def report(_: int, r: dict) -> None:
        nonlocal finished
        finished += 1
        log(f"         pilot {finished:>2}/{len(calls)}  {r['run']:<14} {r['seen']:>10.0f} words seen  "
            f"{r['value']:.4f} bits/char  ({r['seconds']:.1f} s)")

    rows = run_remote(pilot_run, calls, workers or cluster_cpus(), {"num_cpus": 1}, max_retries=3, on_result=report)
    rows.sort(key=lambda r: (r["pool"], r["fraction"]))
    path = place(out_dir) / OBSERVATIONS
    write_pilot_observations(rows, path)
    return path


def write_pilot_observations(rows: list[dict], path: Path) -> None:
    """The pilot observations file: one CSV row per run, columns in the order of the run's result."""
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(buf.getvalue(), path)
