"""`thresher corpus build`: a tree of text files becomes jsonl.gz shards labelled by source."""
from __future__ import annotations

import argparse

from thresher.jobs.cli import UsageError
from thresher.jobs.common import print_outputs, say

EXAMPLES = """examples:
  thresher corpus build --from texts/ --out shards/                    # one document per file
  thresher corpus build --from texts/ --out shards/ --split blank      # blank-line separated blocks
  thresher corpus build --from fortunes/ --out shards/ --split 'sep:^%$'

Each immediate sub-folder of --from is one source; documents get a `source` field.
"""


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
    b.add_argument("--docs-per-shard", type=int, default=20_000)
    b.set_defaults(handler=run_build)
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])


def run_build(args: argparse.Namespace) -> int:
    from thresher.pipeline.corpus import build_corpus

    try:
        stats = build_corpus(args.src, args.out, split=args.split, min_chars=args.min_chars,
                             docs_per_shard=args.docs_per_shard)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    for source, n in stats.sources.items():
        say(args, f"  {source:<24} {n:>8} documents")
    say(args, f"{stats.documents} documents from {len(stats.sources)} sources in {stats.shards} shards"
              + (f"; skipped {len(stats.skipped_files)} unreadable files" if stats.skipped_files else ""))
    print_outputs({"shards": args.out})
    return 0
