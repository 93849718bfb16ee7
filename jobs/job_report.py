"""The job report: one HTML file with embedded figures, readable offline, next to summary.json.

Sections follow the stages that ran: score histograms per source, the ledger
breakdown, duplicate group sizes, pools, utility decay per pool (with the pilot
observations the law was fitted on), the budget frontier and the mixture weights
of each plan. Every figure is drawn from the job's own outputs on disk.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from thresher.jobs.html_report import Report, new_figure
from thresher.pipeline.ledger import STATUSES
from thresher.pipeline.plans import read_frontier

MAX_SOURCES = 10


def _score_table(spec, columns: list[str]):
    from thresher.pipeline.outputs import parquet_dataset

    side = spec.stage_dir("score") / "sidecars"
    ds = parquet_dataset(side)
    have = [c for c in columns if c in ds.schema.names]
    return ds.to_table(columns=have)


def _histograms(report: Report, spec, summary: dict) -> None:
    from thresher.pipeline.pools import score_values

    if "pools" in spec.stages:
        expr = spec.sections["pools"]["score"]
        from thresher.pipeline import expression

        cols = expression.columns(expr)
    else:
        expr, cols = "gopher_words", ["gopher_words"]
    table = _score_table(spec, cols + ["source"])
    if any(c not in table.column_names for c in cols) or table.num_rows == 0:
        report.paragraph(f"(no {expr!r} column to draw)", note=True)
        return
    values = score_values(expr, table)
    sources = table["source"].to_pylist() if "source" in table.column_names else ["all"] * table.num_rows
    src = np.asarray(sources, dtype=str)
    names, counts = np.unique(src, return_counts=True)
    ranked = [n for _, n in sorted(zip(-counts, names))]
    top, rest = ranked[:MAX_SOURCES], ranked[MAX_SOURCES:]
    fig, (ax,) = new_figure(8, 4.2)
    finite = values[np.isfinite(values)]
    bins = np.linspace(finite.min(), finite.max(), 41) if len(finite) and finite.max() > finite.min() else 20
    for name in top:
        v = values[(src == name) & np.isfinite(values)]
        ax.hist(v, bins=bins, histtype="step", density=True, lw=1.3, label=f"{name} ({len(v)})")
    if rest:  # every source is in the figure: the smallest ones together, named as such
        v = values[np.isin(src, rest) & np.isfinite(values)]
        ax.hist(v, bins=bins, histtype="step", density=True, lw=1.3, ls=":", color="gray",
                label=f"{len(rest)} other sources ({len(v)})")
    for cut in summary.get("pools", {}).get("cuts", []):
        ax.axvline(cut, color="black", ls="--", lw=1)
    ax.set_xlabel(f"score: {expr}")
    ax.set_ylabel("density")
    ax.set_title("Score histogram per source (dashed: pool cuts)")
    ax.legend(fontsize=7, ncols=2)
    report.figure(fig, "score histograms per source")


def _ledger(report: Report, spec, summary: dict) -> None:
    rows = []
    for stage in ("score", "dedupe"):
        led = summary.get(stage, {}).get("ledger")
        if led:
            rows.append({"stage": stage, "rows": led["rows"], **{s: led[s] for s in STATUSES},
                         "sum ok": sum(led[s] for s in STATUSES) == led["rows"]})
    report.table(rows, ["stage", "rows", *STATUSES, "sum ok"])
    final = summary.get("dedupe", summary.get("score", {})).get("ledger")
    pools = summary.get("pools")
    if not final:
        return
    labels = ["kept", "duplicate", "dropped", "malformed"]
    vals = [final[k] for k in labels]
    if pools:
        ex = pools["excluded"]
        labels = ["pooled", "duplicate", "excluded: where", "excluded: no score", "malformed", "dropped"]
        pooled = sum(p["documents"] for p in pools["pools"])
        vals = [pooled, final["duplicate"], ex["where"], ex["no_score"], final["malformed"], final["dropped"]]
    fig, (ax,) = new_figure(7, 2.8)
    ax.barh(labels[::-1], vals[::-1], color="tab:blue")
    for y, v in enumerate(vals[::-1]):
        ax.text(v, y, f" {v}", va="center", fontsize=8)
    ax.set_xlabel("documents")
    ax.set_title(f"Where the {final['rows']} input rows ended")
    report.figure(fig, "ledger breakdown")
    for state in ("dropped", "malformed"):
        reasons = final.get(f"{state}_by_reason") or {}
        if reasons:
            report.table([{"status": state, "reason": r, "rows": n} for r, n in reasons.items()])


def _duplicates(report: Report, summary: dict) -> None:
    d = summary["dedupe"]
    sizes = {int(k): v for k, v in d["group_sizes"].items()}
    report.paragraph(f"{d['groups']} duplicate groups among {d['documents']} documents "
                     f"({d['params'].get('method')}, threshold {d['params'].get('threshold')}); each group keeps one "
                     "document, the others are marked duplicate in the ledger.")
    multi = {k: v for k, v in sizes.items() if k > 1}
    if not multi:
        report.paragraph("No duplicate groups.", note=True)
        return
    fig, (ax,) = new_figure(7, 3.2)
    ks = sorted(multi)
    ax.bar([str(k) for k in ks], [multi[k] for k in ks], color="tab:orange")
    ax.set_yscale("log")
    ax.set_xlabel("group size (documents)")
    ax.set_ylabel("groups")
    ax.set_title("Duplicate group sizes")
    report.figure(fig, "duplicate group sizes")


def _pools_section(report: Report, summary: dict) -> None:
    p = summary["pools"]
    rows = []
    for pool in p["pools"]:
        top = sorted(pool.get("sources", {}).items(), key=lambda kv: -kv[1])[:3]
        rows.append({"pool": pool["name"], "documents": pool["documents"], f"unique {p['unit']}": pool["unique"],
                     "score low": pool["score_low"], "score high": pool["score_high"],
                     "main sources": ", ".join(f"{s} {n}" for s, n in top)})
    report.table(rows)


def _decay(report: Report, summary: dict) -> None:
    from thresher.jobs.cmd_laws import _load_fit
    from thresher.jobs.planning_files import load_pools
    from thresher.mixtures.plots import draw_utility_decay

    f = summary["fit"]
    fitted = _load_fit(f["path"])
    pools, unit = load_pools(summary["pools"]["path"])
    note = ("The law was fitted on pilot observations produced by this job: quick real proxy runs (a character "
            "n-gram language model trained on slices of each pool, whole passes repeated, scored by held-out "
            "cross-entropy in bits per character)." if f["source"] == "pilot proxy runs"
            else f"The law was fitted on the observations in {f['observations']}.")
    report.paragraph(note)
    metric = ", ".join(f"{k} {v:.4g}" for k, v in f["metrics"].items() if isinstance(v, float))
    report.paragraph(f"Law {f['law']}, {f['n_obs']} observations, in-sample {metric}; "
                     f"{f['share_at_best']:.0%} of starts reached the best optimum.", note=True)
    report.table([{"parameter": k, "value": v} for k, v in f["params"].items()])
    # pilots trained on the pool minus held-out documents: draw the law at that size with them
    sizes, observed = {}, {}
    if f["source"] == "pilot proxy runs":
        from thresher.jobs.cmd_laws import load_run_table

        obs = load_run_table(f["observations"], f.get("columns"), unit=unit)
        for pool in pools:
            if pool.name not in obs.pools:
                continue
            j = obs.pools.index(pool.name)
            mine = np.flatnonzero(obs.weights[:, j] == 1.0)
            if mine.size:
                sizes[pool.name] = float(obs.unique[mine[0], j])
                observed[pool.name] = (list(obs.seen[mine] / sizes[pool.name]), list(obs.value[mine]))
    fig, (ax, ax2) = new_figure(10, 4, ncols=2)
    draw_utility_decay(ax, ax2, fitted, pools, 6.0, sizes=sizes, observed=observed)
    ax.set_ylabel("value (lower is better)")
    ax.set_title("Each pool alone: law (lines), pilot runs (dots)")
    ax2.set_title("Utility decay with repetition")
    report.figure(fig, "utility decay per pool")


def _frontier(report: Report, summary: dict) -> None:
    fr = read_frontier(summary["plan"]["frontier"])
    budgets = np.asarray(fr["budgets"])
    fig, (ax,) = new_figure(8, 4.2)
    for label, values in fr["unions"].items():
        ax.plot(budgets, values, marker=".", lw=1, alpha=0.7, label=f"union {label}")
    best = [p["predicted"]["value"] for p in fr["plans"]]
    ax.plot(budgets, best, color="black", lw=2, marker="o", label="best plan")
    for label, p in summary["plan"]["plans"].items():
        ax.axvline(p["budget"], color="grey", ls=":", lw=1)
        ax.annotate(label, (p["budget"], p["predicted"]), fontsize=8, xytext=(3, 6), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel(f"budget ({summary['plan']['unit']} seen)")
    ax.set_ylabel("predicted value")
    ax.set_title("Budget frontier: best plan per budget, and each nested union of pools")
    ax.legend(fontsize=7)
    report.figure(fig, "budget frontier")
    if fr.get("flips"):
        report.table([{"budget": f["budget"], "best union before": f["from"], "after": f["to"]} for f in fr["flips"]])


def _mixtures(report: Report, summary: dict) -> None:
    plans = summary["plan"]["plans"]
    names = [p["name"] for p in summary["pools"]["pools"]]
    labels = list(plans)
    fig, (ax, ax2) = new_figure(10, 0.9 + 0.6 * len(labels), ncols=2)
    left = np.zeros(len(labels))
    for i, name in enumerate(names):
        w = np.array([next((r["weight"] for r in plans[b]["pools"] if r["name"] == name), 0.0) for b in labels])
        e = np.array([next((r["epochs"] for r in plans[b]["pools"] if r["name"] == name), 0.0) for b in labels])
        ax.barh(labels, w, left=left, color=f"C{i}", label=name)
        left += w
        ax2.barh(np.arange(len(labels)) + (i - len(names) / 2) * 0.8 / len(names), e, height=0.8 / len(names),
                 color=f"C{i}", label=name)
    ax.set_xlim(0, 1)
    ax.set_xlabel("mixture weight")
    ax.set_ylabel("budget")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Mixture weights per plan")
    ax2.set_yticks(np.arange(len(labels)), labels)
    ax2.set_xlabel("epochs over the pool")
    ax2.set_title("Epochs per pool")
    report.figure(fig, "mixture weights per budget")
    rows = []
    for label, p in plans.items():
        for r in p["pools"]:
            rows.append({"budget": label, "pool": r["name"], "weight": r["weight"], "epochs": r["epochs"],
                         "seen": r["seen"], "unique used": r["unique_used"], "predicted": p["predicted"]})
    report.table(rows)


def timing(summary: dict[str, Any]) -> str:
    """How long the job took, worded the same in the report's header and on the console."""
    stages = summary.get("seconds", sum(summary.get("stages", {}).values()))
    corpus = summary.get("corpus", {}).get("seconds")
    return (f"corpus {corpus:.1f} s, " if corpus is not None else "") + \
        f"stages ({', '.join(summary.get('stages', {}))}) {stages:.1f} s"


def write_report(spec, summary: dict[str, Any]) -> Path:
    """report.html for a finished job (called by the runner before summary.json is written)."""
    report = Report(f"Thresher job: {spec.name}", subtitle=f"spec {spec.source}; {timing(summary)}")
    report.heading("Stages")
    report.table([{"stage": s, "seconds": summary["stages"].get(s), "output": str(spec.stage_dir(s))}
                  for s in spec.stages])
    if "corpus" in summary:
        c = summary["corpus"]
        report.paragraph(f"Corpus: {c['documents']} documents, {c['words']} words from {len(c['sources'])} sources.")
    if "score" in spec.stages:
        report.heading("Scores per source")
        _histograms(report, spec, summary)
        report.heading("Ledger")
        _ledger(report, spec, summary)
    if "dedupe" in spec.stages:
        report.heading("Duplicates")
        _duplicates(report, summary)
    if "pools" in spec.stages:
        report.heading("Pools")
        _pools_section(report, summary)
    if "fit" in spec.stages and "pools" in spec.stages:
        report.heading("Utility law and decay per pool")
        _decay(report, summary)
    if "plan" in spec.stages:
        report.heading("Budget frontier")
        _frontier(report, summary)
        report.heading("Mixtures")
        _mixtures(report, summary)
    if "materialize" in spec.stages:
        report.heading("Materialized training sets")
        report.table([{"budget": b, "documents": m["documents"], "rows": m["rows"], "seen": m["materialized_seen"],
                       "planned": m["planned_budget"], "shards": m["shards"],
                       "folder": str(spec.stage_dir("materialize") / b)} for b, m in summary["materialize"].items()])
    return report.write(spec.out / "report.html")
