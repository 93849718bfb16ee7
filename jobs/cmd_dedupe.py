"""`thresher dedupe`: exact, MinHash-LSH or semantic duplicate groups; sidecars get `duplicate_of`."""
from __future__ import annotations

import argparse

from thresher.jobs.cli import UsageError
from thresher.jobs.common import (
    add_ray_options,
    add_read_options,
    check_out_reachable,
    positive_int,
    prepare_out,
    print_outputs,
    recorded_inputs,
    say,
    split_list,
)

EXAMPLES = """examples:
  thresher dedupe shards/ --out deduped/                      # MinHash-LSH, Jaccard >= 0.8, verified
  thresher dedupe shards/ --out exact/ --method exact
  thresher dedupe scored/ --out deduped/ --keep-by gopher_words # keep the member with the most words
  thresher dedupe shards/ --out sem/ --method semantic --threshold 0.95
  thresher dedupe shards/ --out deduped/ --num-perm 256 --ngram 3 --threshold 0.7 --no-verify

INPUT is raw shards or a `thresher score` output directory (its input is re-read
and its sidecars provide --keep-by columns). Each group keeps one representative:
the highest --keep-by value, else the first in input order. A rerun with the
same --out resumes: finished signature parts and finished phases are skipped.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dedupe", help="find duplicate groups; mark all but one representative as duplicates",
                       description="Deduplicate INPUT (shards or a `thresher score` output) by exact hash, MinHash-LSH "
                                   "near-duplicates, or semantic similarity (SemDeDup), on Ray.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="file, directory or glob of shards, or a `thresher score` output directory")
    p.add_argument("--out", required=True, help="output directory (sidecars/, ledger/, summary.json, stats.json)")
    p.add_argument("--method", choices=("exact", "minhash", "semantic"), default="minhash", help="default: minhash")
    p.add_argument("--threshold", type=float, default=None,
                   help="minhash: Jaccard similarity (default 0.8); semantic: cosine similarity, 1 - eps (default 0.95)")
    p.add_argument("--eps", type=float, default=None, help="semantic: SemDeDup's eps (same as --threshold 1-eps)")
    p.add_argument("--num-perm", type=positive_int, default=128, help="minhash: permutations per signature (default 128)")
    p.add_argument("--ngram", type=positive_int, default=5, help="minhash: words per shingle (default 5)")
    p.add_argument("--bands", type=positive_int, default=None, help="minhash: LSH bands (default: chosen from the threshold)")
    p.add_argument("--rows", type=positive_int, default=None, help="minhash: rows per band (with --bands)")
    p.add_argument("--no-verify", action="store_true",
                   help="minhash: accept LSH candidate pairs without checking their exact Jaccard")
    p.add_argument("--keep-by", metavar="COLUMN", help="keep the member with the highest value of this column")
    p.add_argument("--seed", type=int, default=1, help="seed of the permutations and of k-means (default 1)")
    p.add_argument("--clusters", type=positive_int, default=None, help="semantic: k-means clusters (default: documents/1000)")
    p.add_argument("--embedder", default="hashing", help="semantic: hashing (default, no weights), wordllama, minilm")
    p.add_argument("--bins", type=positive_int, default=None, help="shuffle partitions of the global phases (default: docs/50k, >= 4)")
    p.add_argument("--overwrite", action="store_true", help="delete a previous job in --out instead of resuming it")
    add_read_options(p)
    add_ray_options(p)
    p.set_defaults(handler=run)


def _threshold(args: argparse.Namespace) -> float | None:
    if args.eps is not None:
        if args.method != "semantic":
            raise UsageError("--eps applies to --method semantic only; use --threshold")
        if args.threshold is not None:
            raise UsageError("give --threshold or --eps, not both")
        if not 0.0 < args.eps < 1.0:
            raise UsageError(f"--eps must be in (0, 1), got {args.eps}")
        return 1.0 - args.eps
    return args.threshold


def run(args: argparse.Namespace) -> int:
    from thresher.pipeline.dedupe import DedupeJob, run_dedupe
    from thresher.pipeline.ledger import format_counts
    from thresher.pipeline.reader import ReadOptions

    if args.method == "exact" and args.threshold is not None:
        raise UsageError("--threshold does not apply to --method exact")
    threshold = _threshold(args)
    read = ReadOptions(text_field=args.text_field, id_field=args.id_field, carry=tuple(split_list(args.carry)),
                       strict=args.strict)
    # a score output stands for its own input, which is read again: --out must stay out of both
    out = prepare_out(args.out, args.overwrite, inputs=[args.input, *recorded_inputs(args.input)])
    out = check_out_reachable(out, args.address, args.shared_out, quiet=getattr(args, "quiet", False))
    job = DedupeJob(input=args.input, out_dir=out, method=args.method,
                    threshold=threshold, num_perm=args.num_perm, ngram=args.ngram, bands=args.bands, rows=args.rows,
                    verify=not args.no_verify, keep_by=args.keep_by, seed=args.seed, bins=args.bins,
                    clusters=args.clusters, embedder=args.embedder, read=read, part_bytes=args.part_mb * 1024 * 1024,
                    workers=args.workers, address=args.address, quiet=getattr(args, "quiet", False))
    summary = run_dedupe(job)
    stats = summary["stats"]
    say(args, format_counts(summary["ledger"]))
    hist = stats["group_sizes"]
    big = {k: v for k, v in hist.items() if k != "1"}
    say(args, f"{summary['groups']} duplicate groups among {summary['documents']} documents; "
              f"group sizes: {', '.join(f'{k}x{v}' for k, v in big.items()) or 'none'}")
    if args.method == "minhash":
        p = stats["params"]
        line = f"LSH {p['bands']} bands x {p['rows']} rows; {stats.get('candidate_pairs', 0)} candidate pairs"
        if p["verify"]:
            line += f", {stats.get('verified_pairs', 0)} at Jaccard >= {p['threshold']}"
        say(args, line)
    say(args, f"{summary['wall_seconds']:.1f} s, {summary['docs_per_second'] or 0:.0f} docs/s")
    out = job.out_dir
    print_outputs({"sidecars": out / "sidecars", "ledger": out / "ledger", "summary": out / "summary.json",
                   "stats": out / "stats.json"})
    return 0
