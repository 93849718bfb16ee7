"""`thresher demo`: the whole loop on text every Python installation has.

Builds a corpus from the standard library's docstrings (and Debian's Python
documentation when installed), scores it on Ray, selects by quality, and writes
a summary. Every step is the same code path a user runs from the CLI.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Callable

from pipeline.corpus import build_corpus
from pipeline.executor import MapJob, run_map_job
from pipeline.reader import ReadOptions
from pipeline.registry import make_scorer
from pipeline.scorers import DEFAULT_SCORERS
from pipeline.tasks import run_part_tasks, summarize_markers

from jobs.demo_corpus import SPLIT, write_stdlib_tree

QUALITY_WHERE = "gopher_quality_pass and gopher_repetition_pass"


def run_demo(out: Path, log: Callable[[str], None], quiet: bool = False, address: str | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    steps: dict[str, dict] = {}

    log("[1/4] building the corpus from the standard library's docstrings")
    texts = out / "texts"
    shutil.rmtree(texts, ignore_errors=True)
    write_stdlib_tree(texts)
    corpus = out / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    stats = build_corpus(texts, corpus, split=SPLIT, min_chars=1, docs_per_shard=2000)
    steps["corpus"] = {"documents": stats.documents, "sources": stats.sources, "shards": stats.shards}
    log(f"      {stats.documents} documents from {len(stats.sources)} sources")

    log("[2/4] scoring on Ray: " + ", ".join(DEFAULT_SCORERS))
    scored = out / "scored"
    job = MapJob(input=str(corpus), out_dir=scored, stages=[make_scorer(n) for n in DEFAULT_SCORERS],
                 read=ReadOptions(carry=("source",)), address=address, quiet=quiet)
    summary = run_map_job(job)
    steps["score"] = {"ledger": summary["ledger"], "stages": summary["stages"]}

    log(f"[3/4] selecting: {QUALITY_WHERE}")
    from pipeline.select import load_job, select_part
    from pipeline.shards import Part

    selected = out / "selected"
    shutil.rmtree(selected, ignore_errors=True)
    scored_job = load_job(scored)
    parts = [Part(**s) for s in scored_job["part_specs"]]
    markers = run_part_tasks(parts, select_part, selected,
                             {"scored": str(scored), "where": QUALITY_WHERE, "read": scored_job["read"]},
                             address=address, quiet=quiet, desc="select")
    sel = summarize_markers(selected, markers, {"where": QUALITY_WHERE})
    steps["select"] = {"ledger": sel["ledger"]}

    log("[4/4] writing the summary")
    per_source = _pass_rates(scored)
    result = {"steps": steps, "pass_rate_by_source": per_source, "seconds": round(time.perf_counter() - t0, 1)}
    (out / "summary.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def _pass_rates(scored: Path) -> dict[str, dict[str, float]]:
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    table = pads.dataset(scored / "sidecars", format="parquet").to_table(
        columns=["source", "gopher_quality_pass", "gopher_repetition_pass", "c4_pass"])
    rates: dict[str, dict[str, float]] = {}
    for source in sorted(set(table["source"].to_pylist())):
        sub = table.filter(pc.equal(table["source"], source))
        rates[source] = {"documents": sub.num_rows, **{
            c: round(pc.mean(sub[c].cast("int8")).as_py(), 4) for c in ("gopher_quality_pass", "gopher_repetition_pass", "c4_pass")}}
    return rates
