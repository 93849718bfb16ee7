"""`thresher select`: keep documents whose scores satisfy an expression."""
from __future__ import annotations

import argparse

from thresher.jobs.cli import UsageError
from thresher.jobs.common import add_ray_options, check_out_reachable, prepare_out, print_outputs, recorded_inputs, say

EXAMPLES = """examples:
  thresher select scored/ --where "gopher_quality_pass and gopher_repetition_pass" --out selected/
  thresher select scored/ --where "c4_pass or gopher_words > 500" --out selected/
  thresher select scored/ --where "source in ('docs', 'faq') and gopher_mean_word_length < 8" --out selected/

The expression may use score columns, numbers, strings, comparisons, + - * /,
and/or/not, `in (...)`, and abs(), log(), is_null(), is_valid(). Rows with a
missing score are not selected. Kept documents are written as Parquet shards
with their id and all input fields; the ledger records why each row was dropped.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("select", help="keep documents whose scores satisfy an expression",
                       description="Select documents from a `thresher score` output by an expression over score columns.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scored", help="output directory of `thresher score`")
    p.add_argument("--where", required=True, help="boolean expression over score columns")
    p.add_argument("--out", required=True, help="output directory (shards/, ledger/, summary.json)")
    p.add_argument("--overwrite", action="store_true", help="delete a previous select output in --out")
    add_ray_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json

    from thresher.pipeline import expression
    from thresher.pipeline.ledger import format_counts
    from thresher.pipeline.outputs import parquet_dataset, write_json_atomic
    from thresher.pipeline.select import load_job, select_part
    from thresher.pipeline.shards import Part
    from thresher.pipeline.storage import at, place
    from thresher.pipeline.tasks import run_part_tasks, summarize_markers

    scored = place(args.scored)
    job = load_job(scored)
    wanted = expression.columns(args.where)
    side = scored / "sidecars"
    if side.is_dir() and any(e.relative.endswith(".parquet") for e in at(side).files()):
        names = parquet_dataset(side).schema.names
        unknown = [c for c in wanted if c not in names]
        if unknown:
            raise UsageError(f"--where uses unknown column(s) {unknown}; sidecar columns: {', '.join(names)}")
    out = prepare_out(args.out, args.overwrite, inputs=[args.scored, *recorded_inputs(scored)])
    out = check_out_reachable(out, args.address, args.shared_out, quiet=getattr(args, "quiet", False))
    fingerprint = {"kind": "select", "scored": str(scored.resolve()), "where": args.where}
    manifest_path = out / "job.json"
    if manifest_path.exists() and json.loads(manifest_path.read_text()).get("fingerprint") != fingerprint:
        raise UsageError(f"{out} holds a different job; use a new --out or --overwrite")
    parts = [Part(**spec) for spec in job["part_specs"]]
    write_json_atomic({"fingerprint": fingerprint, "parts": [p.key for p in parts], "scored_job": job}, manifest_path)
    markers = run_part_tasks(parts, select_part, out, {"scored": str(scored), "where": args.where, "read": job["read"]},
                             workers=args.workers, address=args.address, quiet=args.quiet, desc="select")
    summary = summarize_markers(out, markers, {"where": args.where,
                                               "kept_documents": sum(m["kept_documents"] for m in markers)})
    say(args, format_counts(summary["ledger"]))
    print_outputs({"shards": out / "shards", "summary": out / "summary.json"})
    return 0
