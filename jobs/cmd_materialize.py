"""`thresher materialize`: a plan becomes a training manifest (doc id x repeats) and shards."""
from __future__ import annotations

import argparse
from pathlib import Path

from thresher.jobs.common import add_ray_options, check_clearable, check_out_reachable, prepare_out, print_outputs, recorded_inputs, say

EXAMPLES = """examples:
  thresher materialize plan.json --pools pools/ --out train/
  thresher materialize plan.json --pools pools/ --out train/ --expand --seed 7   # one row per repetition

Each pool's documents are repeated floor(epochs) times; the fractional pass takes
a seeded, stable run of documents up to the planned tokens. The output loads with
`datasets.load_dataset("train/", split="train")`; manifest.parquet lists id, pool
and repeats.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("materialize", help="write the training manifest and shards of a plan",
                       description="Turn plan.json (from `thresher plan` or `thresher run`) into manifest.parquet "
                                   "(doc id x repeat count) and Parquet shards of the chosen mixture.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("plan", help="plan.json")
    p.add_argument("--pools", required=True,
                   help="output directory of `thresher pools` the plan was made over, or the pools.json in it")
    p.add_argument("--out", required=True, help="output directory (manifest.parquet, data/, README.md, summary.json)")
    p.add_argument("--expand", action="store_true", help="one row per repetition, shuffled within each shard")
    p.add_argument("--seed", type=int, default=0, help="picks the documents of a partial pass (default 0)")
    p.add_argument("--overwrite", action="store_true", help="delete a previous output in --out")
    add_ray_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from thresher.jobs.planning_files import pools_folder
    from thresher.pipeline.materialize import materialize
    from thresher.pipeline.safety import check_out_writable
    from thresher.pipeline.storage import is_remote

    if not is_remote(args.out):  # an object store's prefix is checked by prepare_out (a probe write)
        check_out_writable(args.out)  # an --out that can never be one is the first thing to say; it creates nothing
    if args.overwrite and not is_remote(args.out):
        check_clearable(Path(args.out))  # likewise an --overwrite that would be refused
    pools = pools_folder(args.pools)  # checked before --out is made
    # the shards are read from the score job's input behind the pools: --out must stay out of it too
    out = prepare_out(args.out, args.overwrite, inputs=[args.plan, pools, *recorded_inputs(pools)])
    out = check_out_reachable(out, args.address, args.shared_out, quiet=getattr(args, "quiet", False))
    res = materialize(args.plan, pools, out, seed=args.seed, expand=args.expand, workers=args.workers,
                      address=args.address, quiet=getattr(args, "quiet", False))
    for name, f in res["pools"].items():
        say(args, f"  {name:<14} {f['documents']:>9} documents  {f['seen']:>14.0f} {res['unit']} seen "
                  f"(planned {f['planned_seen']:.0f}, {f['planned_epochs']:.2f} epochs)")
    say(args, f"{res['documents']} documents, {res['rows']} rows in {res['shards']} shards")
    print_outputs({"manifest": out / "manifest.parquet", "data": out / "data", "summary": out / "summary.json"})
    return 0
