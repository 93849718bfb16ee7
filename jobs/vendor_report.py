"""report.json and a single-file report.html for `thresher vendors`, in a local folder or under a URI."""
from __future__ import annotations

import json
from typing import Any

from thresher.jobs.embedding_files import Where, commit
from thresher.jobs.html_report import Report, new_figure
from thresher.pipeline.outputs import write_bytes_atomic
from thresher.pipeline.safety import safe_join

_COLOURS = {"buy": "#2a9d3f", "skip": "#b23b3b", "ask": "#d08a1a"}


def _write_json(path: Where, data: Any) -> None:
    commit(path, json.dumps(data, indent=2, allow_nan=False, default=float).encode("utf-8"), local=write_bytes_atomic)


def _clean(obj: Any) -> Any:
    """NaN and infinities become null so report.json is strict JSON."""
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _curves_figure(result: dict[str, Any]):
    vendors = [v for v in result["vendors"] if v["curve"]]
    fig, (ax_q, ax_m) = new_figure(11, 4.2, ncols=2)
    for v in vendors:
        c = v["curve"]
        colour = _COLOURS.get(v["decision"], "#555")
        line, = ax_q.plot(c["quantity"], c["mean"], label=f"{v['name']} ({v['decision']})")
        ax_q.fill_between(c["quantity"], c["low"], c["high"], alpha=0.15, color=line.get_color())
        ax_m.plot(c["cost"], c["mean"], color=line.get_color())
        ax_m.fill_between(c["cost"], c["low"], c["high"], alpha=0.15, color=line.get_color())
        if v["quantity"] > 0:
            ax_q.plot([v["quantity"]], [v["gain"]["mean"]], "o", color=colour)
            ax_m.plot([v["cost"]], [v["gain"]["mean"]], "o", color=colour)
    for ax, xl in ((ax_q, "rows bought"), (ax_m, f"money spent {result['spec'].get('currency', '')}".strip())):
        ax.axhline(result["min_gain"], color="#888", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel(f"predicted change in {result['metric']}")
    if result["budget"] is not None:
        ax_m.axvline(result["budget"], color="#444", lw=0.8, ls=":")
    ax_q.legend(fontsize=8)
    ax_q.set_title(f"gain curves with {result['level']:.0%} intervals")
    ax_m.set_title("gain against money")
    return fig


def _decision_figure(result: dict[str, Any]):
    vs = result["vendors"]
    fig, (ax,) = new_figure(7, 0.5 + 0.45 * len(vs))
    for i, v in enumerate(vs):
        g = v["gain"]
        colour = _COLOURS.get(v["decision"], "#555")
        ax.plot([g["low"], g["high"]], [i, i], color=colour, lw=3)
        ax.plot([g["mean"]], [i], "o", color=colour)
    ax.axvline(result["min_gain"], color="#888", lw=0.8, ls="--")
    ax.set_yticks(range(len(vs)), [f"{v['name']} ({v['decision']})" for v in vs])
    ax.invert_yaxis()
    ax.set_xlabel(f"predicted change in {result['metric']} at the evaluated quantity")
    return fig


def write_reports(out: Where, result: dict[str, Any]) -> dict[str, Where]:
    """Write report.json and report.html under `out` and return their paths."""
    result = _clean(result)
    json_path = safe_join(out, "report.json")
    html_path = safe_join(out, "report.html")
    _write_json(json_path, result)

    spec = result["spec"]
    cur = spec.get("currency", "")
    purchase = result["purchase"]
    rep = Report(f"Vendor evaluation: {spec['name']}",
                 f"{spec['owned_rows']} owned rows, {spec['target_rows']} target rows, proxy {spec['proxy']}, "
                 f"metric {result['metric']} (owned only: {result['base_metric']:.4g})")
    rep.heading("Best purchase under the budget")
    pg = purchase["predicted_gain"]
    rep.paragraph(f"Spend {purchase['total_cost']:.2f} {cur} of {result['budget']} {cur}: predicted change in "
                  f"{result['metric']} {pg['mean']:+.4g} ({result['level']:.0%} interval {pg['low']:+.4g} to "
                  f"{pg['high']:+.4g}), the sum of the per-vendor gains.")
    jc = purchase.get("joint_check")
    if jc:
        rep.paragraph(f"Joint pilot of the whole purchase (catches vendors that overlap): {jc['mean']:+.4g} "
                      f"({result['level']:.0%} interval {jc['low']:+.4g} to {jc['high']:+.4g}).")
    rep.table([{"vendor": v["name"], "decision": v["decision"], "rows": v["quantity"], f"cost {cur}".strip(): v["cost"],
                "gain": v["gain"]["mean"], "low": v["gain"]["low"], "high": v["gain"]["high"],
                "P(helps)": v["gain"]["p_helps"], "gain per money": v["gain_per_money"],
                "marginal gain per money": v["marginal_gain_per_money"], "ask for rows": v["more_samples"]}
               for v in result["vendors"]])
    rep.paragraph("Gains are evaluated at the recommended quantity for vendors to buy, and otherwise at the "
                  "quantity where the predicted gain peaks (at least the size the revealed sample stands for). "
                  "'ask' means the interval straddles the threshold; 'ask for rows' is how many more revealed "
                  "rows would likely settle it.", note=True)
    rep.figure(_decision_figure(result), "predicted gain per vendor with interval")
    rep.figure(_curves_figure(result), "gain curves against rows and money")
    rep.heading("Why")
    rep.table([{"vendor": v["name"], "reason": v["reason"], "revealed": v.get("revealed"),
                "duplicates of owned": v["duplicate_fraction"], "quarantined": v.get("quarantined"),
                "extrapolation": v["extrapolation"], "available": v.get("available")} for v in result["vendors"]])
    ot_rows = [{"vendor": v["name"], "share": v["ot"]["share"], "OT improvement": v["ot"]["delta"],
                "low": v["ot"]["low"], "high": v["ot"]["high"], "P(closer)": v["ot"]["p_closer"]}
               for v in result["vendors"] if v.get("ot")]
    if ot_rows:
        rep.heading("OT second opinion")
        rep.paragraph("How much closer (optimal-transport distance to the target) the training set gets at the "
                      "evaluated quantity; positive is closer. It needs no training run.", note=True)
        rep.table(ot_rows)
    rep_rows = [{"vendor": v["name"], "loss reduction": v["repetition"].get("gain"),
                 "interval": None if not v["repetition"].get("interval") else
                 "{:+.4g} to {:+.4g}".format(*v["repetition"]["interval"]),
                 "vendor weight": v["repetition"].get("vendor_weight"), "vendor epochs": v["repetition"].get("vendor_epochs"),
                 "note": v["repetition"].get("note")}
                for v in result["vendors"] if v.get("repetition")]
    if rep_rows:
        rep.heading("With repetition (utility law)")
        rep.paragraph("Predicted loss reduction from the utility law when the training budget repeats data; "
                      "positive is better.", note=True)
        rep.table(rep_rows)
    rep.heading("Pilot runs")
    rep.table([{"vendor": v["name"], "pilot levels (novel rows)": ", ".join(f"{x:.0f}" for x in v["pilots"]["levels"]),
                "measured gains": ", ".join(f"{x:+.4f}" for x in v["pilots"]["level_gains"])} for v in result["vendors"]])
    if result.get("notes"):
        rep.heading("Notes")
        for n in result["notes"]:
            rep.paragraph(n, note=True)
    commit(html_path, rep.render().encode("utf-8"), local=write_bytes_atomic)  # what `Report.write` does, for a URI too
    return {"report": json_path, "html": html_path}
