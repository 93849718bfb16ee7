"""`thresher corpus build`: a tree of text files becomes jsonl.gz shards labelled by source."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from thresher.jobs.cli import UsageError
from thresher.jobs.common import positive_int, print_outputs, say

EXAMPLES = """examples:
  thresher corpus build --from texts/ --out shards/                    # one document per file
  thresher corpus build --from texts/ --out shards/ --split blank      # blank-line separated blocks
  thresher corpus build --from fortunes/ --out shards/ --split 'sep:^%$'
  thresher corpus build --from texts/ --out shards/ --include-suffix .xml --include-suffix ""
  thresher corpus build --from texts/ --out shards/ --include-all     # every file that is text

Each immediate sub-folder of --from is one source; documents get a `source` field.
Files skipped (suffix not read as text, binary, unreadable, too large) are counted on
stderr and listed with their reasons in <out>/_skipped_files.json.
"""
SKIPPED_FILE = "_skipped_files.json"  # "_" first: discovery never takes it for a shard of the corpus


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("corpus", help="build corpora from local text",
                       description="Build jsonl.gz shards from local text files.")
    csub = p.add_subparsers(dest="corpus_command", metavar="ACTION")
    b = csub.add_parser("build", help="turn a tree of text files into shards labelled by source",
                        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--from", dest="src", required=True, help="root folder; each sub-folder is a source")
    b.add_argument("--out", required=True, help="output folder for <source>/<source>-NNNNN.jsonl.gz")
    b.add_argument("--split", default="file", help="file (default), blank, or sep:REGEX")
    b.add_argument("--min-chars", type=int, default=1, help="drop documents shorter than this (default 1)")
    b.add_argument("--docs-per-shard", type=positive_int, default=20_000)
    b.add_argument("--include-suffix", action="append", default=[], metavar="SUFFIX",
                   help="also read files with this suffix as text (repeatable; \"\" for files without one)")
    b.add_argument("--include-all", action="store_true",
                   help="read every file as text unless it is binary, unreadable or too large")
    b.set_defaults(handler=run_build)
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])


def run_build(args: argparse.Namespace) -> int:
    from thresher.pipeline.corpus import build_corpus, skipped_summary
    from thresher.pipeline.outputs import write_json_atomic
    from thresher.pipeline.storage import place

    try:
        stats = build_corpus(args.src, args.out, split=args.split, min_chars=args.min_chars,
                             docs_per_shard=args.docs_per_shard, include_suffixes=args.include_suffix,
                             include_all=args.include_all)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    for source, n in stats.sources.items():
        say(args, f"  {source:<24} {n:>8} documents")
    say(args, f"{stats.documents} documents from {len(stats.sources)} sources in {stats.shards} shards")
    outputs: dict[str, Path | str] = {"shards": args.out}
    listing = place(args.out) / SKIPPED_FILE
    if stats.skipped_files:
        # stderr, and even with --quiet: files left out of a corpus are what users must not miss
        hint = "" if args.include_all else "; --include-suffix SUFFIX or --include-all reads them"
        print(f"{skipped_summary(stats)}{hint if stats.skipped_suffixes else ''}", file=sys.stderr)
        write_json_atomic({"files": stats.skipped_files, "suffixes": stats.skipped_suffixes}, listing)
        outputs["skipped"] = listing
    elif listing.is_file():
        listing.unlink()  # from an earlier run of ours; this one skipped nothing
    print_outputs(outputs)
    return 0
