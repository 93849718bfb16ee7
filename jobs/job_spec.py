"""The YAML job spec of `thresher run`: validated up front, so a typo fails in a second, not after scoring.

A spec lists the stages to run; a stage runs when its section is present, in the
fixed order score -> dedupe -> pools -> fit -> plan -> materialize. Unknown keys
and bad values are errors naming the key (`pools.edges: ...`). Relative paths are
resolved against the spec file's folder. See jobs/examples/ for complete specs.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thresher.jobs.spec_kit import (
    REQUIRED,
    At,
    Field,
    Required,
    boolean,
    fields,
    integer,
    list_of,
    load_yaml,
    mapping,
    number,
    one_of,
    optional,
    section,
    text,
)
from thresher.pipeline.safety import GLOB_CHARS, MAX_SPEC_BYTES
from thresher.pipeline.storage import StorageOptionError, check_options, is_remote, place

STAGES = ("score", "dedupe", "pools", "fit", "plan", "materialize")
_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}


def suffixed_number(text: str) -> float | None:
    """'640M', '1.2e11', '2.5B' -> float; None when the text is not such a number."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgGtT]?)\s*", text)
    return None if m is None else float(m.group(1)) * _SUFFIX[m.group(2).upper()]


def amount(at: At, v: Any) -> float:
    """A positive count with an optional K/M/B/T suffix: 640M, 1.2e11, 2.5B."""
    if isinstance(v, bool):
        raise at.error(f"must be a positive number such as 640M or 1.2e9, got {v!r}")
    if isinstance(v, (int, float)):
        value = float(v)
    else:
        parsed = suffixed_number(str(v))
        if parsed is None:
            raise at.error(f"must be a positive number such as 640M or 1.2e9, got {v!r}")
        value = parsed
    if not value > 0:
        raise at.error(f"must be positive, got {v!r}")
    if value == float("inf"):
        raise at.error(f"must be finite, got {v!r}")
    return value


# section -> key -> (check, default)
SCHEMA: dict[str, dict[str, Field]] = {
    "read": {"text_field": (text, "text"), "id_field": (optional(text), None),
             "carry": (list_of(text, 0), []), "strict": (boolean, False), "part_mb": (integer(1), 64)},
    "ray": {"address": (optional(text), None), "workers": (optional(integer(1)), None)},
    "score": {"scorers": (list_of(text), ["gopher_quality", "gopher_repetition", "c4"]),
              "options": (mapping, {})},
    "dedupe": {"method": (one_of("exact", "minhash", "semantic"), "minhash"),
               "threshold": (optional(number(0.0, 1.0, open_lo=True)), None), "num_perm": (integer(2), 128),
               "ngram": (integer(1), 5), "keep_by": (optional(text), None), "seed": (integer(0), 1),
               "verify": (boolean, True)},
    "pools": {"score": (text, REQUIRED), "method": (one_of("quantiles", "thresholds"), "quantiles"),
              "edges": (list_of(number()), [0.5]), "names": (optional(list_of(text)), None),
              "where": (optional(text), None), "tokens": (text, "gopher_words"),
              "unit": (one_of("tokens", "samples"), "tokens")},
    "pilots": {"fractions": (list_of(number(0.0, open_lo=True), 2), [0.125, 0.25, 0.5, 1.0, 2.0]),
               "holdout": (number(0.0, 0.5, open_lo=True), 0.1), "order": (integer(1), 5),
               "max_docs": (optional(integer(10)), None), "seed": (integer(0), 0)},
    "plan": {"budgets": (list_of(amount), REQUIRED), "max_epochs": (optional(number(0.0, open_lo=True)), None),
             "params": (optional(amount), None), "level": (number(0.0, 1.0, open_lo=True), 0.9)},
    "materialize": {"budgets": (optional(list_of(amount)), None), "expand": (boolean, False), "seed": (integer(0), 0)},
}
SCHEMA["fit"] = {
    "law": (one_of("goyal", "muennighoff", "overfit"), "goyal"), "observations": (optional(text), None),
    "columns": (optional(text), None), "pilots": (optional(section(SCHEMA["pilots"])), None),
    "options": (mapping, {}), "fix": (mapping, {}), "grid": (one_of("full", "small", "none"), "small"),
    "max_starts": (integer(1), 16), "bootstrap": (integer(0), 0), "two_stage": (boolean, False),
    "seed": (integer(0), 0)}


def _version(at: At, v: Any) -> int:
    if v != 1 or isinstance(v, bool):
        raise at.error(f"only version 1 exists, got {v!r}")
    return 1


# Top-level keys; a stage section's presence (even empty) selects the stage, so sections are checked apart.
TOP: dict[str, Field] = {
    "name": (optional(text), None), "input": (optional(text), None),
    "out": (text, Required("the job's output folder")), "report": (boolean, True), "version": (_version, 1),
    "read": (section(SCHEMA["read"]), None), "ray": (section(SCHEMA["ray"]), None),
    "storage": (mapping, {}),
    **{stage: (section(SCHEMA[stage]), None) for stage in STAGES},
}
TOP_LEVEL = tuple(TOP)


@dataclass
class JobSpec:
    """A validated job: absolute paths, every default filled in, stages in run order."""

    source: str
    name: str
    out: Path
    input: str | None
    stages: list[str]
    read: dict[str, Any]
    ray: dict[str, Any]
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: bool = True
    storage: dict[str, Any] = field(default_factory=dict)

    def stage_dir(self, stage: str) -> Path:
        return self.out / stage

    def describe(self) -> list[str]:
        """One line per stage, for --dry-run and the job log."""
        lines = []
        s = self.sections
        for stage in self.stages:
            o = s[stage]
            if stage == "score":
                detail = f"{', '.join(o['scorers'])} over {self.input}"
            elif stage == "dedupe":
                detail = f"{o['method']}" + (f" threshold {o['threshold']}" if o["threshold"] is not None else "")
            elif stage == "pools":
                detail = f"{o['method']} {o['edges']} of {o['score']!r}" + (f" where {o['where']!r}" if o["where"] else "")
            elif stage == "fit":
                src = o["observations"] or f"pilot proxy runs at fractions {o['pilots']['fractions']}"
                detail = f"law {o['law']} on {src}"
            elif stage == "plan":
                detail = "budgets " + ", ".join(f"{b:g}" for b in o["budgets"])
            else:
                detail = "budgets " + ", ".join(f"{b:g}" for b in (o["budgets"] or s["plan"]["budgets"]))
                detail += " (expanded rows)" if o["expand"] else ""
            lines.append(f"{stage:<12} {detail} -> {self.stage_dir(stage)}")
        if self.report:
            lines.append(f"{'report':<12} summary.json, report.html -> {self.out}")
        return lines


def parse_spec(data: Any, source: str = "job", base: Path | None = None) -> JobSpec:
    """Validate a loaded spec (a mapping); relative paths resolve against `base`."""
    base = base or Path.cwd()
    at = At(source)
    if not isinstance(data, Mapping):
        raise at.error(f"a job spec is a mapping of sections (name, input, out, score, ...), got {type(data).__name__}")
    top = fields(at, data, TOP)
    stages = [s for s in STAGES if s in data]
    if not stages:
        raise at.error(f"no stages; add at least one of {', '.join(STAGES)}")
    sections = {s: top[s] for s in stages}
    out = place(_resolve(top["out"], base))
    inp = None if top["input"] is None else _resolve(top["input"], base)
    _check_stages(at, sections, inp)
    if sections.get("fit", {}).get("observations") is not None:
        sections["fit"]["observations"] = _resolve(sections["fit"]["observations"], base)
    read = top["read"] if top["read"] is not None else fields(at.child("read"), None, SCHEMA["read"])
    ray = top["ray"] if top["ray"] is not None else fields(at.child("ray"), None, SCHEMA["ray"])
    try:
        storage_options = check_options(top["storage"])
    except StorageOptionError as exc:
        raise at.child("storage").error(str(exc)) from None
    return JobSpec(source=source, name=top["name"] or out.name, out=out, input=inp, stages=stages, read=read, ray=ray,
                   sections=sections, report=top["report"], storage=storage_options)


def _resolve(p: str, base: Any) -> str:
    """A spec path against the spec's folder (a URI is kept as it is); globs are kept as patterns."""
    if is_remote(p):
        return p
    if is_remote(base):
        return str(base / p)
    if GLOB_CHARS & set(p):
        return p if Path(p).is_absolute() else str(base / p)
    return str((base / p).resolve()) if not Path(p).is_absolute() else p


def _check_stages(at: At, sections: dict[str, dict[str, Any]], inp: str | None) -> None:
    """Rules across keys and stages: what each stage needs from the others."""
    for s in ("score", "dedupe"):
        if s in sections and inp is None:
            raise at.child("input").error(f"is required by the {s} stage")
    need = {"dedupe": "score", "pools": "score", "plan": "fit", "materialize": "plan"}
    for s, dep in need.items():
        if s in sections and dep not in sections:
            raise at.child(s).error(f"needs the {dep} stage in the same spec")
    if "plan" in sections and "pools" not in sections:
        raise at.child("plan").error("needs the pools stage in the same spec (plans are over pools)")
    if "pools" in sections:
        _check_pools(at.child("pools"), sections["pools"])
    if "fit" in sections:
        f = sections["fit"]
        if (f["observations"] is None) == (f["pilots"] is None):
            raise at.child("fit").error("give exactly one of `observations` (a run table) or `pilots` (proxy runs)")
        if f["pilots"] is not None and "pools" not in sections:
            raise at.child("fit").child("pilots").error("needs the pools stage (pilot runs train on pool samples)")
    if "materialize" in sections and sections["materialize"]["budgets"] is not None:
        planned = sections["plan"]["budgets"]
        for i, b in enumerate(sections["materialize"]["budgets"]):
            if not any(abs(b - p) <= 1e-9 * p for p in planned):
                raise at.child("materialize").child("budgets").item(i).error(
                    f"{b:g} is not among plan.budgets {planned}")
    if "score" in sections:
        _check_score_options(at.child("score"), sections["score"])


def _check_pools(at: At, p: dict[str, Any]) -> None:
    if p["names"] is not None and len(p["names"]) != len(p["edges"]) + 1:
        raise at.child("names").error(f"{len(p['edges'])} edges make {len(p['edges']) + 1} pools, "
                                      f"but {len(p['names'])} names were given")
    if p["method"] == "quantiles" and not all(0 < e < 1 for e in p["edges"]):
        raise at.child("edges").error(f"quantile edges must lie in (0, 1), got {p['edges']}")
    if any(b <= a for a, b in zip(p["edges"], p["edges"][1:])):
        raise at.child("edges").error(f"must be strictly increasing, got {p['edges']}")


def _check_score_options(at: At, score: dict[str, Any]) -> None:
    opts = score["options"]
    extra = sorted(set(opts) - set(score["scorers"]))
    if extra:
        raise at.child("options").child(extra[0]).error("options for a scorer that is not in score.scorers")
    for k, v in opts.items():
        mapping(at.child("options").child(k), v)


def load_spec(file: str | Path) -> JobSpec:
    """Read a YAML spec with yaml.safe_load (no tags, no objects) and validate it."""
    file = place(file)
    data = load_yaml(file, "job spec", MAX_SPEC_BYTES)
    return parse_spec(data, str(file), file.resolve().parent)
