"""`thresher classifier train` and `thresher fluency train`: fit the reference models that scorers load.

--out may be a local path or a URI: the model's bytes come from its own writer (`to_bytes`) and
go up as one object; a local path is written as it always was (`save`: temporary name, then
rename). The documents to train on are read by `thresher.pipeline.shards.iter_documents`, so
they take what that reader takes.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

from thresher.jobs.cli import UsageError
from thresher.metrics.errors import ThresherError

CLASSIFIER_EPILOG = """\
example:
  thresher classifier train --positives curated/ --negatives 'raw/*.jsonl.gz' \\
      --out quality.json --max-docs 50000
  thresher score raw/ --scorers classifier --scorer-option classifier.model=quality.json

Positives are the reference pool (text you want more of); negatives are random
raw documents. With --max-docs, each side is a uniform random sample (seeded).
"""

FLUENCY_EPILOG = """\
example:
  thresher fluency train --reference curated/ --out ref.npz --order 3 \\
      --calibrate 'raw/*.jsonl.gz'
  thresher score raw/ --scorers fluency --scorer-option fluency.model=ref.npz

--calibrate stores CCNet's head/middle/tail perplexity cutoffs (30th and 60th
percentiles by default) measured on a sample of the pool to be bucketed;
without it the scorer writes perplexity only and fluency_bucket stays empty.
"""


def _texts(path: str, text_field: str) -> Iterator[str]:
    """Document texts under a path or glob, read through the pipeline's shard reader."""
    from thresher.pipeline.shards import iter_documents

    try:
        for batch in iter_documents(path, text_field=text_field):
            yield from (t for t in batch.column("text").to_pylist() if isinstance(t, str))
    except OSError as exc:  # the reader's own errors (ShardError) are ThresherErrors already
        raise UsageError(str(exc)) from exc


def sample_texts(path: str, text_field: str, max_docs: int | None, seed: int) -> tuple[list[str], int]:
    """(uniform random sample of at most max_docs texts in input order, number of texts read); reservoir sampling."""
    import numpy as np

    rng = np.random.default_rng(seed)
    keep: list[str] = []
    slot_of: list[int] = []
    seen = 0
    for text in _texts(path, text_field):
        if max_docs is None or len(keep) < max_docs:
            keep.append(text)
            slot_of.append(seen)
        else:
            j = int(rng.integers(0, seen + 1))
            if j < max_docs:
                keep[j] = text
                slot_of[j] = seen
        seen += 1
    order = np.argsort(slot_of, kind="stable")
    return [keep[i] for i in order], seen


def _positive_int(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value}")


def _say(args: argparse.Namespace, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg)


def run_classifier_train(args: argparse.Namespace) -> int:
    from thresher.jobs.embedding_files import commit, place
    from thresher.metrics.classifier import QualityClassifier

    _positive_int("--max-docs", args.max_docs)
    t0 = time.perf_counter()
    pos, n_pos = sample_texts(args.positives, args.text_field, args.max_docs, args.seed)
    neg, n_neg = sample_texts(args.negatives, args.text_field, args.max_docs, args.seed + 1)
    for name, docs, path in (("positives", pos, args.positives), ("negatives", neg, args.negatives)):
        if len(docs) < 2:
            raise UsageError(f"--{name} {path}: found {len(docs)} documents with a {args.text_field!r} field; need at least 2")
    _say(args, f"training on {len(pos)} positives (of {n_pos}) and {len(neg)} negatives (of {n_neg})")
    model = QualityClassifier(n_features=2**args.hash_bits, C=args.C, seed=args.seed).fit(pos, neg)
    out = commit(place(args.out), model.to_bytes())
    if model.validation_:
        v = model.validation_
        _say(args, f"held-out ({v['n']} docs): AUC {v['auc']:.3f}, accuracy {v['accuracy']:.3f}")
    _say(args, f"trained in {time.perf_counter() - t0:.1f}s; use it with:")
    _say(args, f"  thresher score INPUT --scorers classifier --scorer-option classifier.model={out}")
    print(out)
    return 0


def run_fluency_train(args: argparse.Namespace) -> int:
    from thresher.jobs.embedding_files import commit, place
    from thresher.metrics.fluency import FluencyModel

    _positive_int("--max-docs", args.max_docs)
    _positive_int("--calibrate-docs", args.calibrate_docs)
    try:
        lo, hi = (float(v) for v in args.percentiles.split(","))
    except ValueError:
        raise UsageError(f"--percentiles must be two numbers 'LOW,HIGH', got {args.percentiles!r}") from None
    if not 0 < lo < hi < 100:
        raise UsageError(f"--percentiles must satisfy 0 < LOW < HIGH < 100, got {args.percentiles}")
    t0 = time.perf_counter()
    if args.max_docs is not None:
        texts, n_read = sample_texts(args.reference, args.text_field, args.max_docs, args.seed)
    else:
        texts, n_read = _texts(args.reference, args.text_field), None
    try:
        model = FluencyModel(order=args.order, min_count=args.min_count).fit(texts)
    except ThresherError:
        raise  # from reading the reference: the message names the file already
    except ValueError as exc:
        raise UsageError(f"--reference {args.reference}: {exc}") from exc
    _say(args, f"fluency LM: order {model.order}, vocabulary {len(model.vocab_)} words, "
               f"{sum(k.size for k in model.keys_)} n-grams" + (f", {len(texts)} of {n_read} docs" if n_read else ""))
    if args.calibrate:
        sample, _ = sample_texts(args.calibrate, args.text_field, args.calibrate_docs, args.seed + 1)
        if not sample:
            raise UsageError(f"--calibrate {args.calibrate}: no documents with a {args.text_field!r} field")
        model.calibrate(sample, (lo, hi))
        c = model.cutoffs_
        _say(args, f"head/middle/tail cutoffs from {len(sample)} docs: perplexity {c[0]:.1f} / {c[1]:.1f}")
    where = place(args.out)
    # Locally the .npz streams to its file (it can be large); remotely its bytes go up as one object.
    out = str(model.save(where)) if isinstance(where, Path) else commit(where, model.to_bytes())
    _say(args, f"trained in {time.perf_counter() - t0:.1f}s; use it with:")
    _say(args, f"  thresher score INPUT --scorers fluency --scorer-option fluency.model={out}")
    print(out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter

    cls = sub.add_parser("classifier", help="train a DCLM-style quality classifier", description="Quality classifier models.")
    csub = cls.add_subparsers(dest="classifier_command", metavar="ACTION")
    t = csub.add_parser(
        "train",
        help="fit hashed uni+bigram logistic regression: reference pool vs random raw docs",
        description="Fit a DCLM-style quality classifier and save it as JSON.",
        epilog=CLASSIFIER_EPILOG,
        formatter_class=fmt,
    )
    t.add_argument("--positives", required=True, help="reference pool: file, directory or glob of jsonl/jsonl.gz/parquet/HF dataset")
    t.add_argument("--negatives", required=True, help="random raw documents, same formats")
    t.add_argument("--out", required=True, help="where to write the model (JSON): a path or a URI")
    t.add_argument("--text-field", default="text", help="field holding the document text (default: text)")
    t.add_argument("--max-docs", type=int, default=None, help="random sample at most N documents per side")
    t.add_argument("--hash-bits", type=int, default=20, choices=range(10, 25), metavar="{10..24}", help="log2 hash buckets (default 20)")
    t.add_argument("--C", type=float, default=4.0, help="inverse L2 regularisation (default 4)")
    t.add_argument("--seed", type=int, default=0, help="sampling and validation-split seed")
    t.set_defaults(handler=run_classifier_train)
    cls.set_defaults(handler=lambda a: (cls.print_help(), 2)[1])

    flu = sub.add_parser("fluency", help="train a CCNet-style n-gram fluency reference", description="Fluency reference models.")
    fsub = flu.add_subparsers(dest="fluency_command", metavar="ACTION")
    f = fsub.add_parser(
        "train",
        help="fit a Kneser-Ney n-gram LM on a reference pool",
        description="Fit a hashed-n-gram Kneser-Ney LM on a reference pool and save it as .npz.",
        epilog=FLUENCY_EPILOG,
        formatter_class=fmt,
    )
    f.add_argument("--reference", required=True, help="reference pool: file, directory or glob")
    f.add_argument("--out", required=True, help="where to write the model (.npz): a path or a URI")
    f.add_argument("--order", type=int, default=3, choices=range(1, 9), metavar="{1..8}", help="n-gram order (default 3)")
    f.add_argument("--min-count", type=int, default=2, help="words rarer than this become <unk> (default 2)")
    f.add_argument("--text-field", default="text", help="field holding the document text (default: text)")
    f.add_argument("--max-docs", type=int, default=None, help="random sample at most N reference documents")
    f.add_argument("--calibrate", default=None, help="sample of the pool to bucket, for head/middle/tail cutoffs")
    f.add_argument("--calibrate-docs", type=int, default=10_000, help="documents sampled from --calibrate (default 10000)")
    f.add_argument("--percentiles", default="30,60", help="head/middle and middle/tail percentiles (default 30,60)")
    f.add_argument("--seed", type=int, default=0, help="sampling seed")
    f.set_defaults(handler=run_fluency_train)
    flu.set_defaults(handler=lambda a: (flu.print_help(), 2)[1])
