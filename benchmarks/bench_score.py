"""Heuristic scoring: ours vs datatrove's Gopher and C4 filters on the same real corpus.

Run:  python -m benchmarks.bench_score [--docs 60000] [--peer-docs 20000] [--ray]

Both sides run in this one process on the same documents, in the same order:
ours as Arrow batches of 4096 through `thresher.metrics.heuristics`, datatrove's
`GopherQualityFilter`, `GopherRepetitionFilter` and `C4QualityFilter` calling
`filter()` per document (each on a fresh Document, so C4's line removal does not
leak into the other rules). Reading and writing are excluded on both sides.
Agreement is on pass/fail per rule set; disagreements are listed by reason.
With --ray it also times the full `thresher score` job (read, score, write).
"""
from __future__ import annotations

import argparse
import collections
import time

import pyarrow as pa

from benchmarks.text_corpus import build, load_texts
from thresher.metrics import heuristics as H

RULE_SETS = (("gopher_quality", H.gopher_quality), ("gopher_repetition", H.gopher_repetition), ("c4", H.c4))


def run_ours(texts: list[str], batch: int = 4096) -> tuple[float, dict[str, pa.Table]]:
    parts: dict[str, list[pa.Table]] = {name: [] for name, _ in RULE_SETS}
    t0 = time.perf_counter()
    for i in range(0, len(texts), batch):
        arr = pa.array(texts[i : i + batch], pa.string())
        for name, fn in RULE_SETS:
            parts[name].append(fn(arr))
    secs = time.perf_counter() - t0
    return secs, {k: pa.concat_tables(v) for k, v in parts.items()}


def run_datatrove(texts: list[str]) -> tuple[float, dict[str, list[tuple[bool, str | None]]]]:
    from datatrove.data import Document
    from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter

    filters = {"gopher_quality": GopherQualityFilter(), "gopher_repetition": GopherRepetitionFilter(),
               "c4": C4QualityFilter()}
    out: dict[str, list] = {k: [] for k in filters}
    t0 = time.perf_counter()
    for i, text in enumerate(texts):
        for name, f in filters.items():
            r = f.filter(Document(text=text, id=str(i)))
            out[name].append(r if isinstance(r, tuple) else (bool(r), None))
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=60_000, help="documents for our scorer (default 60000)")
    ap.add_argument("--peer-docs", type=int, default=None, help="documents for datatrove (default: same as --docs)")
    ap.add_argument("--ray", action="store_true", help="also time the full `thresher score` job on Ray")
    ap.add_argument("--models", action="store_true", help="also report docs/s of the model-based scorers")
    args = ap.parse_args()

    root = build()
    texts, sources = load_texts(root, limit=args.docs)
    peer_n = min(args.peer_docs or len(texts), len(texts))
    mb = sum(len(t.encode()) for t in texts) / 1e6
    print(f"corpus: {len(texts)} documents, {mb:.1f} MB, {len(set(sources))} sources ({root})")

    ours_s, ours = run_ours(texts)
    # time ours on exactly the peer's documents too, so the ratio compares like with like
    ours_peer_s, _ = run_ours(texts[:peer_n])
    peer_s, peer = run_datatrove(texts[:peer_n])
    print(f"\n{'system':<34}{'docs':>8}{'seconds':>10}{'docs/s':>10}")
    print(f"{'thresher (all docs)':<34}{len(texts):>8}{ours_s:>10.1f}{len(texts) / ours_s:>10.0f}")
    print(f"{'thresher (peer docs)':<34}{peer_n:>8}{ours_peer_s:>10.1f}{peer_n / ours_peer_s:>10.0f}")
    print(f"{'datatrove 3 filters':<34}{peer_n:>8}{peer_s:>10.1f}{peer_n / peer_s:>10.0f}")
    print(f"throughput ratio (thresher / datatrove, same docs): {peer_s / ours_peer_s:.2f}x")

    print("\npass/fail agreement on the datatrove documents")
    all_ours = [True] * peer_n
    all_peer = [True] * peer_n
    for name, _ in RULE_SETS:
        o_pass = ours[name][f"{name}_pass"].to_pylist()[:peer_n]
        o_reason = ours[name][f"{name}_reason"].to_pylist()[:peer_n]
        p_pass = [p for p, _ in peer[name]]
        agree = sum(a == b for a, b in zip(o_pass, p_pass)) / peer_n
        all_ours = [a and b for a, b in zip(all_ours, o_pass)]
        all_peer = [a and b for a, b in zip(all_peer, p_pass)]
        print(f"  {name:<20} {agree:.2%}   (pass rate: thresher {sum(o_pass) / peer_n:.1%}, "
              f"datatrove {sum(p_pass) / peer_n:.1%})")
        diff = collections.Counter(
            (o_reason[i] or "pass", peer[name][i][1] or "pass", sources[i]) for i in range(peer_n) if o_pass[i] != p_pass[i])
        for (ro, rp, src), n in diff.most_common(6):
            print(f"      {n:>5}  thresher={ro:<26} datatrove={rp:<28} source={src}")
    overall = sum(a == b for a, b in zip(all_ours, all_peer)) / peer_n
    print(f"  {'all three':<20} {overall:.2%}")

    if args.models:
        try:
            from benchmarks.scorer_throughput import measure
        except ImportError:
            print("\nmodel-based scorers: not available in this checkout")
        else:
            ref = [t for t, s in zip(texts, sources) if s == "python-docs"][:3000]
            print("\nmodel-based scorers (one process):")
            for row in measure(texts[:20_000], ref):
                print(f"  {row['scorer']:<24}{row['docs_per_s']:>10.0f} docs/s")

    if args.ray:
        import tempfile

        from thresher.pipeline.executor import MapJob, run_map_job
        from thresher.pipeline.reader import ReadOptions
        from thresher.pipeline.registry import make_scorer

        with tempfile.TemporaryDirectory() as tmp:
            job = MapJob(input=str(root), out_dir=__import__("pathlib").Path(tmp) / "out",
                         stages=[make_scorer(n) for n, _ in RULE_SETS], read=ReadOptions(carry=("source",)), quiet=True)
            t0 = time.perf_counter()
            summary = run_map_job(job)
            secs = time.perf_counter() - t0
        print(f"\nthresher score job on Ray (read + score + write, {summary['rows_read']} docs): "
              f"{secs:.1f} s, {summary['rows_read'] / secs:.0f} docs/s end to end")


if __name__ == "__main__":
    main()
