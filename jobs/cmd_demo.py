"""`thresher demo`: run the embedded default job end to end on local text."""
from __future__ import annotations

import argparse
from pathlib import Path

from thresher.jobs.cli import UsageError
from thresher.jobs.common import check_out_reachable, print_outputs, say

EXAMPLES = """examples:
  thresher demo                          # writes ./thresher-demo/, about a minute on 2 cores
  thresher demo --out /tmp/demo --quiet  # only the output paths
  thresher demo --max-docs 600           # a reduced corpus: faster still

Corpus (standard-library docstrings, plus Python docs, fortunes, Perl manuals and
the Anarchist FAQ when their Debian packages are installed) -> score -> dedupe ->
pools by quality -> a utility law fitted on pilot proxy runs -> plans for three
budgets -> materialized training sets -> report.html. No downloads.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole loop on built-in text (no downloads)",
                       description="Build a corpus from local text and run the embedded job: score, dedupe, pools, "
                                   "fit a utility law on pilot runs, plan three budgets, materialize, report.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="thresher-demo", help="output directory (default: ./thresher-demo)")
    p.add_argument("--address", help="Ray cluster address (default: local Ray)")
    p.add_argument("--max-docs", type=int, default=None, help="cap the corpus at about this many documents")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from thresher.jobs.cmd_run import output_paths
    from thresher.jobs.demo import run_demo
    from thresher.jobs.job_report import timing

    if args.max_docs is not None and args.max_docs < 100:
        raise UsageError(f"--max-docs must be at least 100, got {args.max_docs}")
    # the demo builds its corpus on this machine: on a cluster of several nodes it needs a shared folder
    out = check_out_reachable(Path(args.out), args.address, quiet=getattr(args, "quiet", False))
    summary = run_demo(out, log=lambda s: say(args, s), quiet=getattr(args, "quiet", False), address=args.address,
                       max_docs=args.max_docs)
    say(args, f"done in {summary['demo_seconds']:.1f} s: {timing(summary)}, then the report")
    job = out / "job"
    paths = {"corpus": out / "corpus"}
    paths.update(output_paths(_Layout(job, summary), summary))
    print_outputs(paths)
    return 0


class _Layout:
    """Enough of a JobSpec for `output_paths`."""

    def __init__(self, out: Path, summary: dict) -> None:
        self.out = out
        from thresher.jobs.job_spec import STAGES

        self.stages = [s for s in STAGES if s in summary["stages"]]
        self.report = True

    def stage_dir(self, stage: str) -> Path:
        return self.out / stage
