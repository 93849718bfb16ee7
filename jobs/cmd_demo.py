"""`thresher demo`: run the embedded default end to end."""
from __future__ import annotations

import argparse
from pathlib import Path

from jobs.common import print_outputs, say

EXAMPLES = """examples:
  thresher demo                      # writes ./thresher-demo/
  thresher demo --out /tmp/demo --quiet
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole loop on built-in text (no downloads)",
                       description="Build a corpus from the Python standard library's docstrings, score it on Ray, "
                                   "select by quality and write a summary.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="thresher-demo", help="output directory (default: ./thresher-demo)")
    p.add_argument("--address", help="Ray cluster address (default: local Ray)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from jobs.demo import run_demo

    out = Path(args.out)
    result = run_demo(out, log=lambda s: say(args, s), quiet=args.quiet, address=args.address)
    for source, r in result["pass_rate_by_source"].items():
        say(args, f"  {source:<18} {r['documents']:>6} docs  gopher quality {r['gopher_quality_pass']:.0%}  "
                  f"repetition {r['gopher_repetition_pass']:.0%}  c4 {r['c4_pass']:.0%}")
    say(args, f"done in {result['seconds']} s")
    print_outputs({"summary": out / "summary.json", "scored": out / "scored", "selected": out / "selected"})
    return 0
