"""`thresher vendors SPEC.yaml --out DIR`: which data vendors to buy from, how much, and how sure we are."""
from __future__ import annotations

import argparse
from pathlib import Path

from thresher.jobs.cli import UsageError
from thresher.jobs.common import print_outputs, say

EXAMPLES = """example spec (paths relative to the spec file):
  budget: 2000
  currency: USD
  owned:
    - {name: catalogue, path: owned.npz}     # x (n, d) and labels (n,)
  target: {path: validation.npz}
  proxy: {kind: classifier, model: logistic}
  vendors:
    - name: acme
      sample: acme_sample.jsonl            # {"embedding": [...], "label": 3} per line
      available: 20000
      price: 0.05                          # per sample
    - name: globex
      sample: globex_sample.npz
      available: 8000
      price: {unit: sample, tiers: [{upto: 1000, amount: 0.2}, {upto: null, amount: 0.1}]}
  ot: {solver: sinkhorn}                   # optional OT second opinion

examples:
  thresher vendors vendors.yaml --out vendor-report
  thresher vendors text-vendors.yaml --out out --quiet

Proxies: classifier (labelled embeddings, or labelled text embedded with the hashing embedder),
ngram (unlabelled text: n-gram LM perplexity on the target texts), pilot_csv (your own runs:
columns vendor, quantity, metric; quantity 0 for owned-only runs). Writes report.json,
report.html and quarantine/VENDOR.jsonl for rows set aside.
"""


def run(args: argparse.Namespace) -> int:
    from thresher.jobs.embedding_files import place, shown
    from thresher.jobs.vendor_report import write_reports
    from thresher.jobs.vendor_spec import load_spec
    from thresher.jobs.vendor_workflow import evaluate_spec

    spec = load_spec(args.spec)
    out = place(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {shown(out)} exists and is not a folder")
    if isinstance(out, Path):
        out.mkdir(parents=True, exist_ok=True)  # a store has no folders to make: its objects' names hold them
    result = evaluate_spec(spec, out, log=lambda s: say(args, s))
    paths = write_reports(out, result)
    if not getattr(args, "quiet", False):
        cur = result["spec"]["currency"]
        for v in result["vendors"]:
            g = v["gain"]
            extra = f", ask for ~{v['more_samples']} more rows" if v.get("more_samples") else ""
            print(f"  {v['name']:<16} {v['decision']:<4} qty {v['quantity']:>8.0f}  cost {v['cost']:>10.2f} {cur}  "
                  f"gain {g['mean']:+.4f} [{g['low']:+.4f}, {g['high']:+.4f}]  P(helps) {g['p_helps']:.2f}{extra}")
        p = result["purchase"]
        print(f"  purchase: {p['total_cost']:.2f} {cur} of budget {result['budget']}, "
              f"predicted {result['metric']} gain {p['predicted_gain']['mean']:+.4f}")
    print_outputs(paths)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "vendors",
        help="evaluate data vendors from revealed samples and prices: buy, skip or ask for more",
        description="Value each vendor's revealed sample against owned data and a target set with a proxy "
                    "(or your pilot runs), predict the metric change with an interval, and choose the best "
                    "purchase under the budget.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("spec", help="vendor spec (YAML): a path or a URI")
    p.add_argument("--out", required=True, help="output folder (a path or a URI) for report.json, report.html and "
                                                "quarantine/")
    p.set_defaults(handler=run)
