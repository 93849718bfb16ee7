"""Tiny model files for the model-backed scorers, trained in the test itself (seconds, no downloads)."""
from __future__ import annotations

import json
from pathlib import Path

from thresher.metrics.classifier import QualityClassifier
from thresher.metrics.fluency import FluencyModel

GOOD = ["The report describes the method and the results in detail.", "Our analysis of the data shows a clear trend.",
        "The river carried small boats from the northern villages to the market town.",
        "Farmers brought apples, honey and wool to the square every morning."]
BAD = ["buy now!!! free free click", "win win win prize casino", "cheap pills click here now", "free crypto bonus !!!"]


def fluency_model(path: Path, texts: list[str] = GOOD, order: int = 2) -> str:
    """A calibrated n-gram reference model (so sidecars get a bucket as well as a perplexity)."""
    model = FluencyModel(order=order, min_count=1).fit(texts)
    model.calibrate(GOOD + BAD)
    return str(model.save(path))


def classifier_model(path: Path, good: list[str] = GOOD, bad: list[str] = BAD) -> str:
    return str(QualityClassifier(n_features=2**12, validation_fraction=0).fit(good, bad).save(path))


def write_corpus(root: Path, n_files: int = 3) -> list[dict]:
    """A few shards mixing good, bad, non-English and empty texts, one malformed row; returns the records."""
    root.mkdir(parents=True, exist_ok=True)
    extra = ["Le chat dort sur le canapé depuis ce matin.", "Der Hund läuft schnell über die grüne Wiese.", ""]
    records = []
    for f in range(n_files):
        rows = [{"text": t, "source": f"src{f}"} for t in (GOOD + BAD + extra)[f:] + [f"document {f} of the set"]]
        records += rows
        lines = [json.dumps(r) for r in rows]
        if f == 1:
            lines.insert(2, "{not json")
        (root / f"s{f}.jsonl").write_text("\n".join(lines) + "\n")
    return records
