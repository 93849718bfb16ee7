"""`thresher demo` and its pilot runs: the whole loop on text every Python installation has.

The demo writes a corpus (standard-library docstrings, plus Debian's Python
documentation and other text packages when installed) and runs one embedded job
spec through the same runner as `thresher run`: score -> dedupe -> pools by
quality -> a utility law fitted on pilot runs -> plans for three budgets ->
materialize -> report.

Pilot runs are real, quick proxy trainings: a character n-gram language model
(`thresher.metrics.fluency.FluencyModel`, Kneser-Ney, over characters so that every run
shares one closed vocabulary and their cross-entropies compare) trained on a
slice of one pool, whole passes repeated as a plan would repeat them, scored in
bits per character on documents held out from every pool. A count model gains
little from a repeated document, so its utility decays fast with epochs: the
fitted half-lives show it.
"""
from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.jobs.demo_corpus import SPLIT, write_demo_tree

PILOT_COLUMNS = "run=run,pool=pool,seen=seen,unique=unique,value=value"

# Gopher's share of words with a letter: prose scores high, code listings, tables and numbers low
DEMO_QUALITY = "gopher_alpha_words_ratio"
DEMO_WHERE = "gopher_words >= 20 and gopher_words <= 3000"


def demo_spec(corpus: Path, out: Path, budgets: list[float], max_docs: int | None) -> dict[str, Any]:
    """The embedded job: the same keys a user writes in a YAML spec (see jobs/examples/)."""
    pilots: dict[str, Any] = {"fractions": [0.125, 0.25, 0.5, 1.0, 2.0], "holdout": 0.1, "order": 5,
                              "max_docs": max(50, max_docs // 4) if max_docs else 700}
    return {
        "name": "thresher-demo",
        "input": str(corpus),
        "out": str(out),
        "read": {"carry": ["source"]},
        "score": {"scorers": ["gopher_quality", "gopher_repetition", "c4"]},
        "dedupe": {"method": "minhash", "threshold": 0.8},
        "pools": {"score": DEMO_QUALITY, "method": "quantiles", "edges": [0.4, 0.75],
                  "names": ["low", "mid", "high"], "where": DEMO_WHERE, "tokens": "gopher_words"},
        "fit": {"law": "goyal", "pilots": pilots, "grid": "small", "max_starts": 12},
        "plan": {"budgets": budgets},
        "materialize": {},
    }


def run_demo(out: Path, log: Callable[[str], None], quiet: bool = False, address: str | None = None,
             max_docs: int | None = None) -> dict:
    """Build the corpus, then run the embedded spec; returns the job summary (also in summary.json)."""
    from thresher.jobs.cmd_run import run_job
    from thresher.jobs.job_spec import parse_spec
    from thresher.pipeline.corpus import build_corpus

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    log("[corpus] text from the standard library's docstrings and installed documentation")
    texts = out / "texts"
    shutil.rmtree(texts, ignore_errors=True)
    found = write_demo_tree(texts, max_docs=max_docs)
    corpus = out / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    stats = build_corpus(texts, corpus, split=SPLIT, min_chars=1, docs_per_shard=2000)
    log(f"         {stats.documents} documents from {len(stats.sources)} sources "
        f"({', '.join(f'{k} {v}' for k, v in sorted(found.items(), key=lambda kv: -kv[1])[:6])}, ...)")
    # Budgets in words seen, relative to the corpus (about half of it ends in pools): a slice, about half
    # the pooled words, and about two passes over them.
    words = _corpus_words(corpus)
    budgets = [float(f"{b:.2g}") for b in (0.05 * words, 0.25 * words, 1.0 * words)]
    spec = parse_spec(demo_spec(corpus, out / "job", budgets, max_docs), source="demo")
    summary = run_job(spec, log=log, quiet=quiet, address=address,
                      extra={"corpus": {"documents": stats.documents, "sources": stats.sources, "words": words}})
    summary["demo_seconds"] = round(time.perf_counter() - t0, 1)
    return summary


def _corpus_words(corpus: Path) -> int:
    import gzip
    import json

    n = 0
    for f in sorted(corpus.rglob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            n += sum(len(json.loads(line)["text"].split()) for line in fh)
    return n


# ---------------------------------------------------------------- pilot runs


def as_characters(text: str) -> str:
    """One token per character (spaces shown as U+2581), lines kept: the proxy LM's closed vocabulary."""
    return "\n".join(" ".join(line.replace(" ", "\u2581")) for line in text.splitlines())


def _pool_texts(pools_dir: Path, holdout: float, max_docs: int | None, seed: int) -> tuple[dict[str, pa.Table], list[str]]:
    """Per pool: id, text, tokens of its training documents; plus the held-out texts (from every pool)."""
    import xxhash

    from thresher.pipeline.pools import load_pools_json, read_members
    from thresher.pipeline.reader import ReadOptions, read_part
    from thresher.pipeline.select import load_job
    from thresher.pipeline.shards import Part

    info = load_pools_json(pools_dir)
    members = read_members(pools_dir)
    job = load_job(Path(info["scored"]))
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
    from thresher.metrics.fluency import FluencyModel
    from thresher.pipeline.materialize import repeat_counts

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
               max_docs: int | None = None, seed: int = 0, address: str | None = None, quiet: bool = True,
               log: Callable[[str], None] = lambda s: None) -> Path:
    """Run every (pool, fraction) pilot as a Ray task; write and return observations.csv."""
    import ray

    from thresher.pipeline.cluster import ensure_ray

    pools, heldout = _pool_texts(Path(pools_dir), holdout, max_docs, seed)
    if len(heldout) < 5:
        raise ValueError(f"only {len(heldout)} held-out documents for the pilot runs; raise fit.pilots.holdout")
    ensure_ray(address, quiet=quiet)
    held_ref = ray.put(heldout)
    task = ray.remote(num_cpus=1)(pilot_run)
    refs = []
    for name, docs in pools.items():
        if docs.num_rows == 0:
            raise ValueError(f"pool {name!r} has no training documents left for pilot runs")
        ref = ray.put(docs)
        refs += [task.remote(name, f, ref, held_ref, order, seed) for f in fractions]
    rows = []
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        r = ray.get(done[0])
        rows.append(r)
        log(f"         pilot {len(rows):>2}/{len(refs)}  {r['run']:<14} {r['seen']:>10.0f} words seen  "
            f"{r['value']:.4f} bits/char  ({r['seconds']:.1f} s)")
    rows.sort(key=lambda r: (r["pool"], r["fraction"]))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "observations.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path
