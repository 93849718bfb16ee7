"""`thresher run JOB.yaml`: score -> dedupe -> pools -> fit -> plan -> materialize, then the report.

Each stage writes under `<out>/<stage>/`; score and dedupe resume from their own
markers, the cheap stages are redone. A stage that fails stops the job with exit
code 1 and names the stage; a bad spec is a usage error (exit code 2).
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from thresher.jobs.common import add_shared_out_option, check_out_reachable, prepare_out, print_outputs, say
from thresher.metrics.errors import JobFailed, ThresherError

EXAMPLES = """examples:
  thresher run jobs/examples/local.yaml --dry-run     # validate and list the stages
  thresher run jobs/examples/local.yaml
  thresher run job.yaml --overwrite --quiet            # start over; print only output paths
  ray job submit --address http://127.0.0.1:8265 --working-dir . -- thresher run jobs/examples/cluster.yaml

A stage runs when its section is present in the spec; see jobs/examples/README.md
for every key. Exit codes: 0 ok, 1 a stage failed, 2 bad spec or arguments.
"""


class StageFailed(JobFailed):
    """A stage of a job raised; the message names the stage and the stage's own error (exit code 1)."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"stage {stage} failed: {message}")
        self.stage = stage


def _json_keys(value: Any) -> Any:
    """The spec with every mapping key as text: YAML allows numbers, dates and mixes of them as keys, JSON does not."""
    if isinstance(value, dict):
        return {str(k): _json_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_keys(v) for v in value]
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a YAML job spec: score, dedupe, pools, fit, plan, materialize, report",
                       description="Run the stages of a YAML job spec in order and write summary.json and report.html.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="job spec (YAML)")
    p.add_argument("--dry-run", action="store_true", help="validate the spec and print the stages it would run")
    p.add_argument("--overwrite", action="store_true", help="delete the job's previous output folder first")
    p.add_argument("--address", help="Ray cluster address (overrides ray.address in the spec)")
    add_shared_out_option(p)
    p.set_defaults(handler=run)


def budget_label(b: float) -> str:
    """1500000 -> '1.5M': plan and materialize folder names."""
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if b >= scale:
            return f"{b / scale:.3g}{suffix}"
    return f"{b:.3g}"


def run(args: argparse.Namespace) -> int:
    from thresher.jobs.job_report import timing
    from thresher.jobs.job_spec import load_spec
    from thresher.pipeline import storage
    from thresher.pipeline.safety import check_out_outside_input

    spec = load_spec(args.spec)
    # the spec's storage section, with --storage-option taking precedence over it
    storage.configure({**spec.storage, **storage.current_options()})
    spec.out = storage.place(str(spec.out))  # made again: a Location keeps the options it was made with
    if spec.input is not None and not storage.is_remote(spec.input) and not storage.is_remote(spec.out):
        check_out_outside_input(spec.input, spec.out)  # a dry run validates this too
    if args.dry_run:
        print(f"job {spec.name}: {len(spec.stages)} stage(s), output {spec.out}")
        for line in spec.describe():
            print("  " + line)
        return 0
    prepare_out(spec.out, args.overwrite, inputs=[spec.input])
    quiet = getattr(args, "quiet", False)
    # spec.out is already absolute (resolved against the spec's folder); this refuses it on a multi-node cluster
    check_out_reachable(spec.out, args.address or spec.ray["address"], args.shared_out, quiet=quiet,
                        label="the spec's out")
    summary = run_job(spec, log=lambda s: say(args, s), quiet=quiet, address=args.address)
    say(args, f"done: {timing(summary)}")
    print_outputs(output_paths(spec, summary))
    return 0


def output_paths(spec, summary: dict) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    for stage in spec.stages:
        if stage == "plan":
            for label, plan in summary["plan"]["plans"].items():
                paths[f"plan {label}"] = plan["path"]
        elif stage == "materialize":
            for label in summary["materialize"]:
                paths[f"materialized {label}"] = spec.stage_dir(stage) / label
        else:
            paths[stage] = spec.stage_dir(stage)
    paths["summary"] = spec.out / "summary.json"
    if spec.report:
        paths["report"] = spec.out / "report.html"
    return paths


def run_job(spec, log: Callable[[str], None], quiet: bool = False, address: str | None = None,
            extra: dict[str, Any] | None = None) -> dict:
    """Run a validated spec's stages; returns the job summary (written to summary.json with report.html)."""
    from thresher.pipeline.outputs import write_json_atomic

    spec.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(_json_keys({"source": spec.source, "stages": spec.stages, "sections": spec.sections,
                                  "input": spec.input, "read": spec.read, "ray": spec.ray}), spec.out / "job-spec.json")
    address = address or spec.ray["address"]
    summary: dict[str, Any] = {"name": spec.name, "spec": spec.source, "stages": {}, **(extra or {})}
    t0 = time.perf_counter()
    steps = {"score": _score, "dedupe": _dedupe, "pools": _pools, "fit": _fit, "plan": _plan,
             "materialize": _materialize}
    errors = (ThresherError, ValueError, RuntimeError, OSError)  # the stages' own errors and the libraries' plain ones
    for i, stage in enumerate(spec.stages, 1):
        log(f"[{i}/{len(spec.stages)}] {stage}")
        t1 = time.perf_counter()
        try:
            summary[stage] = steps[stage](spec, summary, log, quiet, address)
        except errors as exc:
            raise StageFailed(stage, str(getattr(exc, "cause", None) or exc)) from exc
        summary["stages"][stage] = round(time.perf_counter() - t1, 2)
        log(f"         {stage} done in {summary['stages'][stage]:.1f} s")
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    if spec.report:
        from thresher.jobs.job_report import write_report

        log(f"[report] {spec.out / 'report.html'}")
        write_report(spec, summary)
    write_json_atomic(summary, spec.out / "summary.json")
    return summary


def _read_options(spec):
    from thresher.pipeline.reader import ReadOptions

    r = spec.read
    return ReadOptions(text_field=r["text_field"], id_field=r["id_field"], carry=tuple(r["carry"]), strict=r["strict"])


def _score(spec, summary, log, quiet, address) -> dict:
    from thresher.jobs.cmd_score import build_stages
    from thresher.pipeline.executor import MapJob, run_map_job
    from thresher.pipeline.ledger import format_counts

    o = spec.sections["score"]
    stages = build_stages(o["scorers"], o["options"])  # a UsageError is a ValueError: the stage fails
    job = MapJob(input=spec.input, out_dir=spec.stage_dir("score"), stages=stages, read=_read_options(spec),
                 part_bytes=spec.read["part_mb"] * 1024 * 1024, workers=spec.ray["workers"], address=address,
                 quiet=quiet)
    res = run_map_job(job)
    for line in format_counts(res["ledger"]).splitlines():
        log("         " + line)
    return {"ledger": res["ledger"], "parts": res["parts"], "wall_seconds": res["wall_seconds"],
            "stages": {k: {"rows_in": v["rows_in"], "docs_per_second": v["docs_per_second"],
                           "fail_reasons": v["fail_reasons"]} for k, v in res["stages"].items()}}


def _dedupe(spec, summary, log, quiet, address) -> dict:
    from thresher.pipeline.dedupe import DedupeJob, run_dedupe

    o = spec.sections["dedupe"]
    job = DedupeJob(input=str(spec.stage_dir("score")), out_dir=spec.stage_dir("dedupe"), method=o["method"],
                    threshold=o["threshold"], num_perm=o["num_perm"], ngram=o["ngram"], keep_by=o["keep_by"],
                    seed=o["seed"], verify=o["verify"], workers=spec.ray["workers"], address=address, quiet=quiet)
    res = run_dedupe(job)
    st = res["stats"]
    log(f"         {res['groups']} duplicate groups among {res['documents']} documents; "
        f"{res['ledger']['duplicate']} documents marked duplicate")
    return {"ledger": res["ledger"], "groups": res["groups"], "documents": res["documents"],
            "group_sizes": st["group_sizes"], "params": st["params"], "wall_seconds": res["wall_seconds"]}


def _pools(spec, summary, log, quiet, address) -> dict:
    from thresher.pipeline.pools import PoolSpec, build_pools

    o = spec.sections["pools"]
    pspec = PoolSpec(score=o["score"], method=o["method"], edges=tuple(o["edges"]),
                     names=tuple(o["names"]) if o["names"] else None, where=o["where"], tokens=o["tokens"],
                     unit=o["unit"])
    dedupe = spec.stage_dir("dedupe") if "dedupe" in spec.stages else None
    res = build_pools(spec.stage_dir("score"), spec.stage_dir("pools"), pspec, dedupe=dedupe)
    excluded = json.loads((spec.stage_dir("pools") / "summary.json").read_text())["excluded"]
    for p in res["pools"]:
        log(f"         pool {p['name']:<10} {p['documents']:>7} documents {p['unique']:>12.0f} {res['unit']} unique  "
            f"score {p['score_low']:.3g}..{p['score_high']:.3g}")
    return {"unit": res["unit"], "pools": res["pools"], "cuts": res["cuts"], "excluded": excluded,
            "path": str(spec.stage_dir("pools") / "pools.json")}


def _fit(spec, summary, log, quiet, address) -> dict:
    import warnings

    from thresher.mixtures.fitting import fit
    from thresher.mixtures.observations import load_observations
    from thresher.pipeline.outputs import commit_bytes
    from thresher.pipeline.storage import is_remote

    o = spec.sections["fit"]
    out = spec.stage_dir("fit")
    out.mkdir(parents=True, exist_ok=True)
    unit = summary.get("pools", {}).get("unit", "tokens")
    if o["pilots"] is not None:
        from thresher.pipeline.pilots import PILOT_COLUMNS, run_pilots

        p = o["pilots"]
        log(f"         pilot runs: character {p['order']}-gram LM trained on {p['fractions']} passes of each pool, "
            f"scored in bits per character on {p['holdout']:.0%} held-out documents")
        obs_path = run_pilots(spec.stage_dir("pools"), out, p["fractions"], holdout=p["holdout"], order=p["order"],
                              max_docs=p["max_docs"], seed=p["seed"], address=address, workers=spec.ray["workers"],
                              quiet=quiet, log=log)
        columns, source = PILOT_COLUMNS, "pilot proxy runs"
    else:
        obs_path, columns, source = o["observations"], o["columns"], "observations file"
    if is_remote(obs_path):
        from thresher.jobs.cmd_laws import load_run_table

        obs = load_run_table(str(obs_path), columns, unit=unit)
    else:
        obs = load_observations(obs_path, columns, unit=unit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = fit(obs, o["law"], law_options=o["options"], fixed={k: float(v) for k, v in o["fix"].items()},
                     grid=o["grid"], max_starts=o["max_starts"], bootstrap=o["bootstrap"], seed=o["seed"],
                     two_stage=o["two_stage"])
    fit_path = out / "fit.json"
    commit_bytes(fitted.to_bytes(), fit_path)
    m = fitted.metrics
    log(f"         law {fitted.law_name} fitted on {fitted.n_obs} observations ({source}); "
        + ", ".join(f"{k} {v:.4g}" for k, v in m.items() if isinstance(v, float)))
    return {"law": fitted.law_name, "source": source, "observations": str(obs_path), "columns": columns,
            "path": str(fit_path),
            "params": fitted.params, "metrics": m, "n_obs": fitted.n_obs, "share_at_best": fitted.share_at_best,
            "notes": fitted.notes + [str(w.message) for w in caught], "seconds": round(fitted.seconds, 2)}


def _plan(spec, summary, log, quiet, address) -> dict:
    import numpy as np

    from thresher.jobs.cmd_laws import _load_fit
    from thresher.jobs.planning_files import load_pools, save_frontier, save_plan
    from thresher.mixtures.planning import frontier, plan

    o = spec.sections["plan"]
    out = spec.stage_dir("plan")
    fitted = _load_fit(summary["fit"]["path"])
    pools, unit = load_pools(summary["pools"]["path"])
    plans = {}
    for b in o["budgets"]:
        p = plan(fitted, pools, b, params=o["params"], max_epochs=o["max_epochs"], level=o["level"],
                 fit_path=summary["fit"]["path"])
        label = budget_label(b)
        path = out / f"plan-{label}.json"
        save_plan(p, path)
        mix = ", ".join(f"{r['name']} {r['weight']:.0%} x{r['epochs']:.2f}" for r in p.pool_rows())
        log(f"         budget {label:>6}: {mix}; predicted {p.predicted:.4f}")
        plans[label] = {"budget": b, "path": str(path), "predicted": p.predicted, "label": p.label,
                        "interval": p.interval, "pools": p.pool_rows()}
    lo, hi = min(o["budgets"]), max(o["budgets"])
    grid = np.geomspace(lo / 4, hi * 2, 12)
    fr = frontier(fitted, pools, grid, params=o["params"], max_epochs=o["max_epochs"], level=o["level"],
                  fit_path=summary["fit"]["path"])
    save_frontier(fr, out / "frontier.json")
    return {"unit": unit, "plans": plans, "frontier": str(out / "frontier.json")}


def _materialize(spec, summary, log, quiet, address) -> dict:
    from thresher.pipeline.materialize import materialize
    from thresher.pipeline.outputs import remove_tree

    o = spec.sections["materialize"]
    budgets = o["budgets"] or spec.sections["plan"]["budgets"]
    results = {}
    for b in budgets:
        label = budget_label(b)
        dest = spec.stage_dir("materialize") / label
        if dest.exists():
            remove_tree(dest)  # cheap to redo, and the plan may have changed with the fit
        res = materialize(summary["plan"]["plans"][label]["path"], spec.stage_dir("pools"), dest, seed=o["seed"],
                          expand=o["expand"], workers=spec.ray["workers"], address=address, quiet=quiet)
        log(f"         budget {label:>6}: {res['documents']} documents, {res['rows']} rows, "
            f"{res['materialized_seen']:.0f} {res['unit']} seen -> {dest}")
        results[label] = res
    return results
