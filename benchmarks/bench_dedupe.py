"""Near-duplicate detection: ours vs datatrove's MinHash pipeline vs datasketch's MinHashLSH.

Run:  python -m benchmarks.bench_dedupe [--docs N] [--threshold 0.8] [--num-perm 128] [--ngram 5]
      python -m benchmarks.bench_dedupe --scale 1000000      # wall time at 100k and at N documents

The corpus is the real Debian text corpus (`benchmarks.text_corpus`) plus planted
near-duplicates: copies of a tenth of the documents with word edits (substitute,
delete, insert) at known rates. Ground truth is exact Jaccard on the same word
5-gram shingles for every pair at or above the threshold (found exactly by a
prefix-filtered similarity join, then checked set by set), grouped into
connected components. Every system sees the same tokens (the peers get our
normalised text, words joined by single spaces), the same number of
permutations and the same threshold: datatrove gets the same bands x rows as
ours, datasketch chooses its own from the threshold as it does by default.

Each system runs in its own process; peak memory is the largest sampled sum of
resident memory over that process and all its descendants (Ray's workers, the
datatrove task pool). Throughput is documents over the wall time of the
deduplication (reading included, Ray's start-up reported apart). Quality is
pair-counting precision/recall/F1 of "same group" against the true components,
and document-level F1 of "belongs to a duplicate group".
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.text_corpus import build, load_texts

EDIT_RATES = (0.0, 0.01, 0.02, 0.03, 0.05, 0.10, 0.20)
DOCS_PER_SHARD = 5000
OUT = Path(os.environ.get("THRESHER_BENCH_OUT", "bench-out")) / "dedupe"


# ---------------------------------------------------------------- corpus


def edit_words(words: list[str], rate: float, vocab: list[str], rng: np.random.Generator) -> list[str]:
    """Each word is edited with probability `rate`: substituted, deleted or followed by an inserted word."""
    if rate <= 0:
        return list(words)
    out: list[str] = []
    hits = rng.random(len(words)) < rate
    kinds = rng.integers(0, 3, len(words))
    picks = rng.integers(0, len(vocab), len(words))
    for w, hit, kind, pick in zip(words, hits, kinds, picks):
        if not hit:
            out.append(w)
        elif kind == 0:
            out.append(vocab[pick])
        elif kind == 2:
            out.extend((w, vocab[pick]))
    return out or list(words)


def plant(texts: list[str], fraction: float, seed: int) -> tuple[list[str], list[float | None]]:
    """Texts plus edited copies of `fraction` of them (documents of ten words or more), shuffled."""
    rng = np.random.default_rng(seed)
    vocab = sorted({w for t in texts[:5000] for w in t.split()})
    eligible = [i for i, t in enumerate(texts) if len(t.split()) >= 10]
    chosen = rng.choice(eligible, size=int(len(texts) * fraction), replace=False)
    docs = list(texts)
    rates: list[float | None] = [None] * len(texts)
    for k, i in enumerate(sorted(chosen.tolist())):
        rate = EDIT_RATES[k % len(EDIT_RATES)]
        docs.append(" ".join(edit_words(texts[i].split(), rate, vocab, rng)))
        rates.append(rate)
    order = rng.permutation(len(docs))
    return [docs[i] for i in order], [rates[i] for i in order]


def scaled(texts: list[str], n: int, seed: int) -> list[str]:
    """n documents from the real ones: heavily edited variants (new documents) plus 10% planted copies."""
    rng = np.random.default_rng(seed)
    vocab = sorted({w for t in texts[:5000] for w in t.split()})
    base: list[str] = list(texts[: int(n * 0.9)])
    while len(base) < int(n * 0.9):
        t = texts[int(rng.integers(0, len(texts)))]
        base.append(" ".join(edit_words(t.split(), 0.5, vocab, rng)))
    docs, _ = plant(base, (n - len(base)) / len(base), seed + 1)
    return docs[:n]


def write_corpus(docs: list[str], root: Path) -> list[str]:
    """Raw shards for ours; normalised-token shards for the peers. Returns the doc ids in order."""
    from thresher.pipeline.dedupe.shingles import normalise

    raw, norm = root / "raw", root / "peers"
    for d in (raw, norm):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    ids = []
    for s in range(0, len(docs), DOCS_PER_SHARD):
        name = f"part-{s // DOCS_PER_SHARD:05d}.jsonl"
        chunk = docs[s : s + DOCS_PER_SHARD]
        toks = pc.utf8_split_whitespace(normalise(pa.array(chunk))).to_pylist()
        with open(raw / name, "w") as fr, open(norm / name, "w") as fn:
            for row, (text, words) in enumerate(zip(chunk, toks)):
                doc_id = f"{name}#{row}"
                ids.append(doc_id)
                fr.write(json.dumps({"text": text}) + "\n")
                words = [w for w in words if w]
                if words:  # datatrove skips empty texts, which would shift its row numbers
                    fn.write(json.dumps({"id": doc_id, "text": " ".join(words)}) + "\n")
    return ids


# ---------------------------------------------------------------- ground truth


def true_pairs(texts: list[str], threshold: float, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """All pairs with Jaccard >= threshold on our shingle sets, exactly (prefix filtering + verification)."""
    from thresher.pipeline.dedupe.fuzzy import jaccard, sorted_sets

    sets = pa.concat_arrays([sorted_sets(pa.array(texts[s : s + 20000]), ngram) for s in range(0, len(texts), 20000)])
    lengths = pc.list_value_length(sets).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(sets).to_numpy()
    doc = pc.list_parent_indices(sets).to_numpy()
    tokens, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    rank = np.empty(len(tokens), np.int64)
    rank[np.lexsort((tokens, counts))] = np.arange(len(tokens))  # rarest first
    r = rank[inverse]
    order = np.lexsort((r, doc))
    r, doc_sorted = r[order], doc[order]
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    pos = np.arange(len(r)) - starts[doc_sorted]
    prefix = lengths[doc_sorted] - np.ceil(threshold * lengths[doc_sorted] - 1e-9).astype(np.int64) + 1
    keep = pos < prefix
    tok, dd = r[keep], doc_sorted[keep]
    o = np.lexsort((dd, tok))
    tok, dd = tok[o], dd[o]
    bounds = np.flatnonzero(np.concatenate(([True], tok[1:] != tok[:-1], [True])))
    us, vs = [], []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b - a < 2:
            continue
        members = dd[a:b]
        i, j = np.triu_indices(len(members), 1)
        us.append(members[i])
        vs.append(members[j])
    if not us:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    u, v = np.concatenate(us), np.concatenate(vs)
    size_ok = np.minimum(lengths[u], lengths[v]) >= threshold * np.maximum(lengths[u], lengths[v]) - 1e-9
    u, v = u[size_ok], v[size_ok]
    pairs = np.unique(np.stack([np.minimum(u, v), np.maximum(u, v)], 1), axis=0)
    u, v = pairs[:, 0], pairs[:, 1]
    j = np.concatenate([jaccard(sets.take(pa.array(u[s : s + 200000])), sets.take(pa.array(v[s : s + 200000])))
                        for s in range(0, len(u), 200000)]) if len(u) else np.zeros(0)
    ok = j >= threshold - 1e-12
    return u[ok], v[ok]


def components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Component label per document (singletons get their own index)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g = coo_matrix((np.ones(len(u)), (u, v)), shape=(n, n))
    return connected_components(g, directed=False)[1]


def scores(n: int, truth: np.ndarray, pred: np.ndarray) -> dict:
    """Pair-counting precision/recall/F1 of 'same group', and document F1 of 'in a duplicate group'."""
    def pairs(labels: np.ndarray) -> int:
        _, c = np.unique(labels, return_counts=True)
        return int(np.sum(c * (c - 1) // 2))

    both = truth.astype(np.int64) * (int(pred.max()) + 1) + pred
    tp, t_all, p_all = pairs(both), pairs(truth), pairs(pred)
    prec = tp / p_all if p_all else 1.0
    rec = tp / t_all if t_all else 1.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    in_t = np.bincount(truth, minlength=n)[truth] > 1
    in_p = np.bincount(pred, minlength=n)[pred] > 1
    dtp = int(np.sum(in_t & in_p))
    dp = dtp / max(1, int(in_p.sum()))
    dr = dtp / max(1, int(in_t.sum()))
    return {"precision": prec, "recall": rec, "f1": f1, "doc_f1": 2 * dp * dr / (dp + dr) if dp + dr else 0.0,
            "true_pairs": t_all, "pred_pairs": p_all}


# ---------------------------------------------------------------- systems (each run in a child process)


def run_ours(work: Path, args: argparse.Namespace) -> dict:
    import pyarrow.dataset as pads

    from thresher.pipeline.cluster import ensure_ray
    from thresher.pipeline.dedupe import DedupeJob, run_dedupe

    t0 = time.perf_counter()
    ensure_ray(quiet=True)
    ray_s = time.perf_counter() - t0
    out = work / "ours-out"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    summary = run_dedupe(DedupeJob(input=str(work / "raw"), out_dir=out, method="minhash", threshold=args.threshold,
                                   num_perm=args.num_perm, ngram=args.ngram, quiet=True))
    secs = time.perf_counter() - t0
    side = pads.dataset(out / "sidecars", format="parquet").to_table(columns=["id", "duplicate_of"])
    dup = side.filter(pc.is_valid(side["duplicate_of"]))
    p = summary["stats"]["params"]
    return {"seconds": secs, "startup_seconds": ray_s, "members": dup["id"].to_pylist(),
            "groups": dup["duplicate_of"].to_pylist(), "bands": p["bands"], "rows": p["rows"],
            "note": f"{p['bands']}x{p['rows']}, exact Jaccard verification of candidates"}


def run_datatrove(work: Path, args: argparse.Namespace) -> dict:
    import logging

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupSignature
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.utils.hashing import HashConfig

    logging.disable(logging.WARNING)
    from loguru import logger

    logger.remove()
    b, r = args.bands, args.rows
    # the default xxhash path passes str to xxhash, which xxhash >= 4 refuses; sha1 is datatrove's other hash
    cfg = MinhashConfig(n_grams=args.ngram, num_buckets=b, hashes_per_bucket=r, hash_config=HashConfig(64, "sha1"))
    base = work / "datatrove"
    shutil.rmtree(base, ignore_errors=True)
    files = sorted((work / "peers").glob("*.jsonl"))
    n_tasks = len(files)
    t0 = time.perf_counter()
    LocalPipelineExecutor([JsonlReader(str(work / "peers")), MinhashDedupSignature(str(base / "sigs"), cfg)],
                          tasks=n_tasks, workers=2, logging_dir=str(base / "logs1")).run()
    LocalPipelineExecutor([MinhashDedupBuckets(str(base / "sigs"), str(base / "buckets"), config=cfg)],
                          tasks=b, workers=2, logging_dir=str(base / "logs2")).run()
    LocalPipelineExecutor([MinhashDedupCluster(str(base / "buckets"), str(base / "ids"), config=cfg, save_cluster_id=True)],
                          tasks=1, workers=1, logging_dir=str(base / "logs3")).run()
    secs = time.perf_counter() - t0
    members, groups = [], []
    for rank, f in enumerate(files):
        ids = [json.loads(line)["id"] for line in f.read_text().splitlines()]
        path = base / "ids" / f"{rank:06d}.clusters"
        if path.exists():
            raw = np.frombuffer(path.read_bytes(), "<u4").reshape(-1, 2)
            members.extend(ids[i] for i in raw[:, 0])
            groups.extend(f"c{c}" for c in raw[:, 1])
    return {"seconds": secs, "startup_seconds": 0.0, "members": members, "groups": groups, "bands": b, "rows": r,
            "note": f"{b}x{r} (same as ours), stages 1-3, {n_tasks} tasks on 2 workers"}


def run_datasketch(work: Path, args: argparse.Namespace) -> dict:
    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=args.threshold, num_perm=args.num_perm)
    sketches = {}
    n = args.ngram
    for f in sorted((work / "peers").glob("*.jsonl")):
        for line in f.read_text().splitlines():
            row = json.loads(line)
            w = row["text"].split()
            grams = [" ".join(w[i : i + n]).encode() for i in range(len(w) - n + 1)] if len(w) >= n else [" ".join(w).encode()]
            m = MinHash(num_perm=args.num_perm, seed=1)
            m.update_batch(grams)
            lsh.insert(row["id"], m)
            sketches[row["id"]] = m
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    for key, m in sketches.items():
        for other in lsh.query(m):
            if other != key:
                a, b = find(key), find(other)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    secs = time.perf_counter() - t0
    members = [k for k in sketches if find(k) != k or k in parent]
    return {"seconds": secs, "startup_seconds": 0.0, "members": members, "groups": [find(k) for k in members],
            "bands": lsh.b, "rows": lsh.r, "note": f"{lsh.b}x{lsh.r} (its own choice), one process"}


SYSTEMS = {"ours": run_ours, "datatrove": run_datatrove, "datasketch": run_datasketch}


# ---------------------------------------------------------------- measuring a child process tree


def _tree_rss(root: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            rss[int(d)] = int(Path(f"/proc/{d}/statm").read_text().split()[1]) * page
            children.setdefault(ppid, []).append(int(d))
        except (OSError, ValueError, IndexError):
            continue
    total, stack = 0, [root]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack.extend(children.get(p, []))
    return total


def run_child(system: str, work: Path, args: argparse.Namespace) -> dict:
    result = work / f"result-{system}.json"
    result.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.bench_dedupe", "--child", system, "--work", str(work),
           "--threshold", str(args.threshold), "--num-perm", str(args.num_perm), "--ngram", str(args.ngram),
           "--bands", str(args.bands), "--rows", str(args.rows)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(work / f"{system}.log", "w"))
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            stop.wait(0.25)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    rc = proc.wait()
    stop.set()
    th.join()
    if rc != 0 or not result.exists():
        raise SystemExit(f"{system} failed (exit {rc}); see {work / (system + '.log')}")
    out = json.loads(result.read_text())
    out["peak_mb"] = peak / 2**20
    return out


def predicted_labels(ids: list[str], res: dict) -> np.ndarray:
    index = {d: i for i, d in enumerate(ids)}
    labels = np.arange(len(ids), dtype=np.int64)
    names: dict[str, int] = {}
    for m, g in zip(res["members"], res["groups"]):
        labels[index[m]] = len(ids) + names.setdefault(g, len(names))
    # a representative named as the group of its members joins them
    for g, k in names.items():
        if g in index:
            labels[index[g]] = len(ids) + k
    return labels


# ---------------------------------------------------------------- main


def compare(args: argparse.Namespace) -> None:
    from thresher.pipeline.dedupe.lsh import choose_bands

    texts, _ = load_texts(build())
    if args.docs:
        texts = texts[: args.docs]
    docs, rates = plant(texts, args.plant, args.seed)
    work = OUT / f"compare-{len(docs)}"
    work.mkdir(parents=True, exist_ok=True)
    ids = write_corpus(docs, work)
    mb = sum(len(d.encode()) for d in docs) / 1e6
    print(f"corpus: {len(texts)} real documents + {len(docs) - len(texts)} planted copies "
          f"(edit rates {', '.join(f'{r:.0%}' for r in EDIT_RATES)}) = {len(docs)} documents, {mb:.1f} MB")
    t0 = time.perf_counter()
    u, v = true_pairs(docs, args.threshold, args.ngram)
    truth = components(len(docs), u, v)
    sizes = np.bincount(truth)
    print(f"ground truth: {len(u)} pairs with Jaccard >= {args.threshold} on word {args.ngram}-grams, "
          f"{int(np.sum(sizes > 1))} groups, {int(np.sum(sizes[sizes > 1]))} documents in groups "
          f"({time.perf_counter() - t0:.0f} s)")
    if args.bands is None:
        p = choose_bands(args.threshold, args.num_perm, 0.05, 0.95)
        args.bands, args.rows = p.bands, p.rows
    rows = []
    for system in args.systems.split(","):
        res = run_child(system, work, args)
        pred = predicted_labels(ids, res)
        sc = scores(len(docs), truth, pred)
        rows.append((system, res, sc))
        print(f"  {system}: {res['seconds']:.1f} s, peak {res['peak_mb']:.0f} MB, F1 {sc['f1']:.4f}", flush=True)
    print(f"\n{'system':<12}{'docs/s':>9}{'seconds':>9}{'peak MB':>9}{'precision':>11}{'recall':>8}{'F1':>8}"
          f"{'doc F1':>8}  setting")
    for system, res, sc in rows:
        print(f"{system:<12}{len(docs) / res['seconds']:>9.0f}{res['seconds']:>9.1f}{res['peak_mb']:>9.0f}"
              f"{sc['precision']:>11.4f}{sc['recall']:>8.4f}{sc['f1']:>8.4f}{sc['doc_f1']:>8.4f}  {res['note']}")
    ours = next((r for r in rows if r[0] == "ours"), None)
    if ours:
        if ours[1]["startup_seconds"]:
            print(f"(ours: Ray start-up {ours[1]['startup_seconds']:.1f} s not included)")
        for system, res, _ in rows:
            if system != "ours":
                print(f"throughput ours / {system}: {res['seconds'] / ours[1]['seconds']:.2f}x")
    print("\nrecall by planted edit rate (planted copy grouped with its source)")
    by_rate: dict[str, dict[float, list[int]]] = {}
    for system, res, _ in rows:
        pred = predicted_labels(ids, res)
        grouped = np.bincount(pred)[pred] > 1
        hits: dict[float, list[int]] = {r: [0, 0] for r in EDIT_RATES}
        for i, rate in enumerate(rates):
            if rate is not None:
                hits[rate][1] += 1
                hits[rate][0] += int(grouped[i])
        by_rate[system] = hits
    print(f"{'edit rate':<10}" + "".join(f"{s:>12}" for s, _, _ in rows) + f"{'truth':>12}")
    for rate in EDIT_RATES:
        line = f"{rate:<10.0%}"
        for s, _, _ in rows:
            h = by_rate[s][rate]
            line += f"{h[0] / max(1, h[1]):>12.3f}"
        t_hits = sum(1 for i, r in enumerate(rates) if r == rate and sizes[truth[i]] > 1)
        t_all = sum(1 for r in rates if r == rate)
        print(line + f"{t_hits / max(1, t_all):>12.3f}")


def scale(args: argparse.Namespace) -> None:
    texts, _ = load_texts(build())
    results = []
    for n in (100_000, args.scale):
        docs = scaled(texts, n, args.seed)
        work = OUT / f"scale-{n}"
        work.mkdir(parents=True, exist_ok=True)
        write_corpus(docs, work)
        del docs
        if args.bands is None:
            args.bands, args.rows = 16, 8
        res = run_child("ours", work, args)
        results.append((n, res))
        print(f"{n:>9} docs: {res['seconds']:.1f} s ({n / res['seconds']:.0f} docs/s), peak {res['peak_mb']:.0f} MB, "
              f"{len(res['members'])} duplicates found", flush=True)
        shutil.rmtree(work / "ours-out", ignore_errors=True)
    (n0, r0), (n1, r1) = results
    print(f"wall time x{r1['seconds'] / r0['seconds']:.2f} for x{n1 / n0:.0f} documents")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=None, help="real documents to use (default: all, about 108k)")
    ap.add_argument("--plant", type=float, default=0.1, help="fraction of documents copied with edits (default 0.1)")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--ngram", type=int, default=5)
    ap.add_argument("--bands", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--systems", default="ours,datatrove,datasketch")
    ap.add_argument("--scale", type=int, default=None, help="time ours at 100k and at this many documents instead")
    ap.add_argument("--child", choices=sorted(SYSTEMS), help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        work = Path(args.work)
        res = SYSTEMS[args.child](work, args)
        (work / f"result-{args.child}.json").write_text(json.dumps(res))
        return
    if args.scale:
        scale(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
