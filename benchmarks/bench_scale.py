"""Load: score + exact dedupe + MinHash dedupe on up to 1,000,000 real-text documents on one small machine.

Run:  python -m benchmarks.bench_scale                       # 100k, 300k and 1M documents
      python -m benchmarks.bench_scale --docs 10000,30000     # quicker

The documents come from the Debian text corpus (`benchmarks.text_corpus`, about
108k documents from 11 sources). Beyond its size, document i is a perturbed copy
of original i mod n: copy r substitutes a fraction 0.03 r of its words (r = 1, 2,
...) with words drawn from the corpus vocabulary, so the first copies are near-
duplicates (5-gram Jaccard about 0.86 and 0.73) and later ones are new texts made of
the same words. Corpora are written once as jsonl.gz shards of 5,000 documents.

Each size runs in a fresh process with its own local Ray (all CPUs). Wall time is
per step; peak memory is the largest sampled sum of resident memory (RSS) over
that process and all its descendants (Ray's GCS, raylet, workers), sampled every
0.5 s, so memory Ray's object store shares between processes can be counted more
than once: an upper bound.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

OUT = Path(os.environ.get("THRESHER_BENCH_OUT", "bench-out")) / "scale"
DOCS_PER_SHARD = 5000
STEPS = ("score", "exact", "minhash")


def perturb(words: list[str], rate: float, vocab: np.ndarray, rng: np.random.Generator) -> str:
    """Substitute each word with probability `rate` by a vocabulary word."""
    out = np.array(words, dtype=object)
    hits = rng.random(len(words)) < rate
    out[hits] = vocab[rng.integers(0, len(vocab), int(hits.sum()))]
    return " ".join(out.tolist())


def write_corpus(n: int, root: Path) -> dict:
    """The first n documents (originals, then perturbed copies) as jsonl.gz shards, built once."""
    done = root / "_built.json"
    if done.exists():
        return json.loads(done.read_text())
    from benchmarks.text_corpus import build, load_texts

    texts, sources = load_texts(build())
    base = len(texts)
    rng = np.random.default_rng(0)
    sample = rng.choice(base, size=min(base, 20000), replace=False)
    vocab = np.array(sorted({w for i in sample for w in texts[i].split()}), dtype=object)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    buf: list[str] = []
    shard = 0
    for i in range(n):
        j, r = i % base, i // base
        if r == 0:
            text = texts[j]
        else:
            text = perturb(texts[j].split(), min(0.5, 0.03 * r), vocab, np.random.default_rng([j, r]))
        buf.append(json.dumps({"text": text, "source": sources[j]}, ensure_ascii=False) + "\n")
        if len(buf) == DOCS_PER_SHARD or i == n - 1:
            with gzip.GzipFile(root / f"docs-{shard:05d}.jsonl.gz", "wb", mtime=0) as fh:
                fh.write("".join(buf).encode("utf-8"))
            buf, shard = [], shard + 1
    info = {"documents": n, "originals": min(n, base), "perturbed_copies": max(0, n - base), "shards": shard,
            "bytes_gz": sum(p.stat().st_size for p in root.glob("*.jsonl.gz"))}
    done.write_text(json.dumps(info))
    return info


def run_one(corpus: Path, work: Path, step_file: Path) -> dict:
    """In the child: the three steps in order, each timed; returns their summaries."""
    from thresher.pipeline.cluster import ensure_ray
    from thresher.pipeline.dedupe import DedupeJob, run_dedupe
    from thresher.pipeline.executor import MapJob, run_map_job
    from thresher.pipeline.registry import make_scorer
    from thresher.pipeline.scorers import DEFAULT_SCORERS

    t0 = time.perf_counter()
    ensure_ray(quiet=True)
    results: dict = {"ray_start_seconds": round(time.perf_counter() - t0, 2)}
    shutil.rmtree(work, ignore_errors=True)
    for step in STEPS:
        step_file.write_text(step)
        t0 = time.perf_counter()
        if step == "score":
            s = run_map_job(MapJob(input=str(corpus), out_dir=work / "score", quiet=True,
                                   stages=[make_scorer(n) for n in DEFAULT_SCORERS]))
            extra = {"kept": s["ledger"]["kept"], "malformed": s["ledger"]["malformed"], "rows": s["rows_read"]}
        else:
            s = run_dedupe(DedupeJob(input=str(corpus), out_dir=work / step, method=step, quiet=True))
            extra = {"rows": s["rows_read"], "duplicates": s["ledger"]["duplicate"], "groups": s["groups"]}
        results[step] = {"seconds": round(time.perf_counter() - t0, 2), **extra}
    step_file.write_text("done")
    return results


def _psutil():
    """psutil as Ray ships it (importing ray puts its bundled copy on the path)."""
    import psutil
    import ray  # noqa: F401

    return psutil


def tree_rss(pid: int) -> int:
    psutil = _psutil()

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(n: int, corpus: Path) -> dict:
    """Run one size in a child process, sampling its process tree's memory per step."""
    work = OUT / f"work-{n}"
    step_file = OUT / f"step-{n}.txt"
    result_file = OUT / f"result-{n}.json"
    step_file.write_text("start")
    result_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.bench_scale", "--child", str(corpus), str(work), str(step_file),
           str(result_file)]
    proc = subprocess.Popen(cmd, env={**os.environ, "RAY_DEDUP_LOGS": "1"})
    peaks: dict[str, int] = {}
    while proc.poll() is None:
        step = step_file.read_text().strip() if step_file.exists() else "start"
        peaks[step] = max(peaks.get(step, 0), tree_rss(proc.pid))
        time.sleep(0.5)
    if proc.returncode:
        raise SystemExit(f"size {n}: the child failed with exit code {proc.returncode}")
    res = json.loads(result_file.read_text())
    for step in STEPS:
        res[step]["peak_rss_mb"] = round(peaks.get(step, 0) / 2**20)
    res["peak_rss_mb"] = round(max(peaks.values()) / 2**20)
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", default="100000,300000,1000000", help="comma-separated corpus sizes")
    ap.add_argument("--child", nargs=4, metavar=("CORPUS", "WORK", "STEP_FILE", "RESULT"), help=argparse.SUPPRESS)
    ap.add_argument("--keep", action="store_true", help="keep the job outputs (they are deleted after each size)")
    args = ap.parse_args(argv)
    if args.child:
        corpus, work, step_file, result = map(Path, args.child)
        Path(result).write_text(json.dumps(run_one(corpus, work, step_file)))
        return
    psutil = _psutil()
    OUT.mkdir(parents=True, exist_ok=True)
    sizes = [int(x) for x in args.docs.split(",") if x.strip()]
    print(f"machine: {psutil.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.1f} GiB RAM, "
          f"load average {os.getloadavg()[0]:.2f} at start")
    rows = []
    for n in sizes:
        t0 = time.perf_counter()
        info = write_corpus(n, OUT / f"corpus-{n}")
        print(f"corpus {n}: {info['originals']} original + {info['perturbed_copies']} perturbed documents, "
              f"{info['shards']} shards, {info['bytes_gz'] / 2**20:.0f} MiB gzip ({time.perf_counter() - t0:.0f} s)",
              flush=True)
        res = measure(n, OUT / f"corpus-{n}")
        res["load_after"] = round(os.getloadavg()[0], 2)
        rows.append((n, res))
        print(json.dumps({"docs": n, **res}), flush=True)
        if not args.keep:
            shutil.rmtree(OUT / f"work-{n}", ignore_errors=True)
    print()
    print("| documents | step | wall s | docs/s | peak RSS (MiB, process tree) | result |")
    print("|---|---|---|---|---|---|")
    for n, res in rows:
        for step in STEPS:
            r = res[step]
            what = (f"{r['kept']} kept, {r['malformed']} malformed" if step == "score"
                    else f"{r['duplicates']} duplicates in {r['groups']} groups")
            print(f"| {n:,} | {step} | {r['seconds']:.0f} | {n / r['seconds']:.0f} | {r['peak_rss_mb']:,} | {what} |")
        total = sum(res[s]["seconds"] for s in STEPS)
        print(f"| {n:,} | all three | {total:.0f} | {n / total:.0f} | {res['peak_rss_mb']:,} | "
              f"Ray start {res['ray_start_seconds']:.0f} s, load average after {res['load_after']} |")


if __name__ == "__main__":
    main()
