"""`thresher pools`: cut scored documents into pools by score quantiles or thresholds."""
from __future__ import annotations

import argparse

from thresher.jobs.cli import UsageError
from thresher.jobs.common import prepare_out, print_outputs, recorded_inputs, say

EXAMPLES = """examples:
  thresher pools scored/ --score gopher_alpha_words_ratio --quantiles 0.5,0.9 --out pools/
  thresher pools scored/ --score classifier_prob --thresholds 0.2,0.6 --names low,mid,high --out pools/
  thresher pools scored/ classified/ --score classifier_prob --where "gopher_words >= 50" --quantiles 0.5 --out pools/
  thresher pools scored/ --dedupe deduped/ --score "gopher_stop_words * 1.0 / (gopher_words + 1)" \\
      --quantiles 0.4,0.75 --where "gopher_words >= 8" --out pools/

SCORED is a `thresher score` output (or several over the same input, joined on doc id). --score is a sidecar column or arithmetic over
columns (higher = better). Documents that fail --where, have no score, or are
duplicates in --dedupe join no pool. pools.json is the --pools file of `thresher
plan`; members/ lists which pool each document joined (read by `thresher materialize`).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pools", help="cut scored documents into pools by score quantiles or thresholds",
                       description="Group the documents of a score job into pools by a score; count documents and "
                                   "unique tokens per pool (pools.json).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scored", nargs="+", help="output directory of `thresher score`; several (the same input scored "
                                             "by other scorers): their sidecar columns are joined on doc id")
    p.add_argument("--score", required=True, help="sidecar column or arithmetic expression; higher is better")
    cut = p.add_mutually_exclusive_group(required=True)
    cut.add_argument("--quantiles", help="comma-separated fractions in (0, 1), e.g. 0.5,0.9")
    cut.add_argument("--thresholds", help="comma-separated score values, e.g. 0.2,0.6")
    p.add_argument("--names", help="pool names, lowest score first (default: from the cuts)")
    p.add_argument("--where", help="boolean expression a document must satisfy to join a pool")
    p.add_argument("--dedupe", help="a `thresher dedupe` output over the same input: duplicates join no pool")
    p.add_argument("--tokens", default="gopher_words", help="column with each document's token count (default gopher_words)")
    p.add_argument("--unit", choices=("tokens", "samples"), default="tokens", help="unique size unit (default tokens)")
    p.add_argument("--out", required=True, help="output directory (pools.json, members/, summary.json)")
    p.add_argument("--overwrite", action="store_true", help="delete a previous pools output in --out")
    p.set_defaults(handler=run)


def _floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"{flag} {text!r} must be comma-separated numbers") from None


def run(args: argparse.Namespace) -> int:
    from thresher.pipeline.pools import PoolSpec, build_pools

    method, edges = ("quantiles", _floats(args.quantiles, "--quantiles")) if args.quantiles else \
        ("thresholds", _floats(args.thresholds, "--thresholds"))
    names = tuple(n.strip() for n in args.names.split(",")) if args.names else None
    spec = PoolSpec(score=args.score, method=method, edges=edges, names=names, where=args.where,
                    tokens=args.tokens, unit=args.unit)
    main, *also = args.scored
    upstream = [*args.scored, args.dedupe, *(r for s in args.scored for r in recorded_inputs(s)),
                *recorded_inputs(args.dedupe)]
    out = prepare_out(args.out, args.overwrite, inputs=upstream)
    result = build_pools(main, out, spec, dedupe=args.dedupe, also=also)
    for p in result["pools"]:
        say(args, f"  {p['name']:<14} {p['documents']:>9} documents {p['unique']:>14.0f} {result['unit']} unique  "
                  f"score {p['score_low']:.4g} .. {p['score_high']:.4g}")
    print_outputs({"pools": out / "pools.json", "members": out / "members", "summary": out / "summary.json"})
    return 0
