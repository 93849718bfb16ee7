"""`thresher demo`: the whole loop on text every Python installation has.

The demo writes a corpus (standard-library docstrings, plus Debian's Python
documentation and other text packages when installed) and runs one embedded job
spec through the same runner as `thresher run`: score -> dedupe -> pools by
quality -> a utility law fitted on pilot runs (`thresher.pipeline.pilots`: quick
character n-gram LM trainings on pool slices, whose fast-decaying value per epoch
the fitted half-lives show) -> plans for three budgets -> materialize -> report.
"""
from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from thresher.jobs.demo_corpus import SPLIT, write_demo_tree

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
    corpus_seconds = round(time.perf_counter() - t0, 1)
    budgets = [float(f"{b:.2g}") for b in (0.05 * words, 0.25 * words, 1.0 * words)]
    spec = parse_spec(demo_spec(corpus, out / "job", budgets, max_docs), source="demo")
    summary = run_job(spec, log=log, quiet=quiet, address=address,
                      extra={"corpus": {"documents": stats.documents, "sources": stats.sources, "words": words,
                                  "seconds": corpus_seconds}})
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
