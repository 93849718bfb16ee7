"""The YAML job spec of `thresher run`: validated up front, so a typo fails in a second, not after scoring.

A spec lists the stages to run; a stage runs when its section is present, in the
fixed order score -> dedupe -> pools -> fit -> plan -> materialize. Unknown keys
and bad values are errors naming the key (`pools.edges: ...`). Relative paths are
resolved against the spec file's folder. See jobs/examples/ for complete specs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from thresher.metrics.errors import InputError

STAGES = ("score", "dedupe", "pools", "fit", "plan", "materialize")
_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}


class SpecError(InputError):
    """A spec problem: the message starts with the file and the key (exit code 2)."""


Check = Callable[[str, Any], Any]


def _fail(where: str, msg: str) -> SpecError:
    return SpecError(f"{where}: {msg}")


def string(where: str, v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise _fail(where, f"must be a non-empty string, got {v!r}")
    return v


def boolean(where: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise _fail(where, f"must be true or false, got {v!r}")
    return v


def integer(lo: int | None = None) -> Check:
    def check(where: str, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _fail(where, f"must be an integer, got {v!r}")
        if lo is not None and v < lo:
            raise _fail(where, f"must be >= {lo}, got {v}")
        return v
    return check


def number(lo: float | None = None, hi: float | None = None, open_lo: bool = False) -> Check:
    def check(where: str, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(where, f"must be a number, got {v!r}")
        v = float(v)
        if lo is not None and (v < lo or (open_lo and v == lo)):
            raise _fail(where, f"must be {'>' if open_lo else '>='} {lo:g}, got {v:g}")
        if hi is not None and v > hi:
            raise _fail(where, f"must be <= {hi:g}, got {v:g}")
        return v
    return check


def suffixed_number(text: str) -> float | None:
    """'640M', '1.2e11', '2.5B' -> float; None when the text is not such a number."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgGtT]?)\s*", text)
    return None if m is None else float(m.group(1)) * _SUFFIX[m.group(2).upper()]


def amount(where: str, v: Any) -> float:
    """A positive count with an optional K/M/B/T suffix: 640M, 1.2e11, 2.5B."""
    if isinstance(v, bool):
        raise _fail(where, f"must be a positive number such as 640M or 1.2e9, got {v!r}")
    if isinstance(v, (int, float)):
        value = float(v)
    else:
        parsed = suffixed_number(str(v))
        if parsed is None:
            raise _fail(where, f"must be a positive number such as 640M or 1.2e9, got {v!r}")
        value = parsed
    if not value > 0:
        raise _fail(where, f"must be positive, got {v!r}")
    return value


def one_of(*choices: str) -> Check:
    def check(where: str, v: Any) -> str:
        if v not in choices:
            raise _fail(where, f"must be one of {', '.join(choices)}, got {v!r}")
        return v
    return check


def list_of(item: Check, min_len: int = 1) -> Check:
    def check(where: str, v: Any) -> list:
        if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)):
            raise _fail(where, f"must be a list, got {v!r}")
        if len(v) < min_len:
            raise _fail(where, f"needs at least {min_len} item(s)")
        return [item(f"{where}[{i}]", x) for i, x in enumerate(v)]
    return check


def mapping(where: str, v: Any) -> dict:
    if not isinstance(v, Mapping):
        raise _fail(where, f"must be a mapping (key: value), got {v!r}")
    return dict(v)


def path(where: str, v: Any) -> str:
    return string(where, v)


def optional(check: Check) -> Check:
    def inner(where: str, v: Any) -> Any:
        return None if v is None else check(where, v)
    return inner


# section -> key -> (check, default); `...` marks a required key
SCHEMA: dict[str, dict[str, tuple[Check, Any]]] = {
    "read": {"text_field": (string, "text"), "id_field": (optional(string), None),
             "carry": (list_of(string, 0), []), "strict": (boolean, False), "part_mb": (integer(1), 64)},
    "ray": {"address": (optional(string), None), "workers": (optional(integer(1)), None)},
    "score": {"scorers": (list_of(string), ["gopher_quality", "gopher_repetition", "c4"]),
              "options": (mapping, {})},
    "dedupe": {"method": (one_of("exact", "minhash", "semantic"), "minhash"),
               "threshold": (optional(number(0.0, 1.0, open_lo=True)), None), "num_perm": (integer(2), 128),
               "ngram": (integer(1), 5), "keep_by": (optional(string), None), "seed": (integer(0), 1),
               "verify": (boolean, True)},
    "pools": {"score": (string, ...), "method": (one_of("quantiles", "thresholds"), "quantiles"),
              "edges": (list_of(number()), [0.5]), "names": (optional(list_of(string)), None),
              "where": (optional(string), None), "tokens": (string, "gopher_words"),
              "unit": (one_of("tokens", "samples"), "tokens")},
    "fit": {"law": (one_of("goyal", "muennighoff", "overfit"), "goyal"), "observations": (optional(path), None),
            "columns": (optional(string), None), "pilots": (optional(mapping), None), "options": (mapping, {}),
            "fix": (mapping, {}), "grid": (one_of("full", "small", "none"), "small"), "max_starts": (integer(1), 16),
            "bootstrap": (integer(0), 0), "two_stage": (boolean, False), "seed": (integer(0), 0)},
    "pilots": {"fractions": (list_of(number(0.0, open_lo=True), 2), [0.125, 0.25, 0.5, 1.0, 2.0]),
               "holdout": (number(0.0, 0.5, open_lo=True), 0.1), "order": (integer(1), 5),
               "max_docs": (optional(integer(10)), None), "seed": (integer(0), 0)},
    "plan": {"budgets": (list_of(amount), ...), "max_epochs": (optional(number(0.0, open_lo=True)), None),
             "params": (optional(amount), None), "level": (number(0.0, 1.0, open_lo=True), 0.9)},
    "materialize": {"budgets": (optional(list_of(amount)), None), "expand": (boolean, False), "seed": (integer(0), 0)},
}
TOP_LEVEL = ("name", "input", "out", "report", "version", "read", "ray", *STAGES)


def _section(d: Any, name: str, where: str) -> dict[str, Any]:
    d = {} if d is None else mapping(where, d)
    schema = SCHEMA[name]
    unknown = sorted(set(d) - set(schema))
    if unknown:
        raise _fail(f"{where}.{unknown[0]}", f"unknown key (known keys of {name}: {', '.join(schema)})")
    out: dict[str, Any] = {}
    for key, (check, default) in schema.items():
        if key in d:
            out[key] = check(f"{where}.{key}", d[key])
        elif default is ...:
            raise _fail(f"{where}.{key}", "is required")
        else:
            out[key] = default
    return out


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
    if not isinstance(data, Mapping):
        raise SpecError(f"{source}: a job spec is a mapping of sections (name, input, out, score, ...), got "
                        f"{type(data).__name__}")
    unknown = sorted(set(data) - set(TOP_LEVEL))
    if unknown:
        raise _fail(f"{source}: {unknown[0]}", f"unknown key (known keys: {', '.join(TOP_LEVEL)})")
    if "version" in data and data["version"] != 1:
        raise _fail(f"{source}: version", f"only version 1 exists, got {data['version']!r}")
    if "out" not in data:
        raise _fail(f"{source}: out", "is required (the job's output folder)")

    def resolve(p: str) -> str:
        if any(c in p for c in "*?["):
            return p if Path(p).is_absolute() else str(base / p)
        return str((base / p).resolve()) if not Path(p).is_absolute() else p

    out = Path(resolve(path(f"{source}: out", data["out"])))
    name = string(f"{source}: name", data.get("name", out.name))
    report = boolean(f"{source}: report", data.get("report", True))
    stages = [s for s in STAGES if s in data]
    if not stages:
        raise SpecError(f"{source}: no stages; add at least one of {', '.join(STAGES)}")
    sections = {s: _section(data[s], s, f"{source}: {s}") for s in stages}
    inp = None
    if "input" in data:
        inp = resolve(path(f"{source}: input", data["input"]))
    for s in ("score", "dedupe"):
        if s in sections and inp is None:
            raise _fail(f"{source}: input", f"is required by the {s} stage")
    need = {"dedupe": "score", "pools": "score", "plan": "fit", "materialize": "plan"}
    for s, dep in need.items():
        if s in sections and dep not in sections:
            raise _fail(f"{source}: {s}", f"needs the {dep} stage in the same spec")
    if "plan" in sections and "pools" not in sections:
        raise _fail(f"{source}: plan", "needs the pools stage in the same spec (plans are over pools)")
    if "pools" in sections:
        p = sections["pools"]
        if p["names"] is not None and len(p["names"]) != len(p["edges"]) + 1:
            raise _fail(f"{source}: pools.names", f"{len(p['edges'])} edges make {len(p['edges']) + 1} pools, "
                                                  f"but {len(p['names'])} names were given")
        if p["method"] == "quantiles" and not all(0 < e < 1 for e in p["edges"]):
            raise _fail(f"{source}: pools.edges", f"quantile edges must lie in (0, 1), got {p['edges']}")
        if any(b <= a for a, b in zip(p["edges"], p["edges"][1:])):
            raise _fail(f"{source}: pools.edges", f"must be strictly increasing, got {p['edges']}")
    if "fit" in sections:
        f = sections["fit"]
        if (f["observations"] is None) == (f["pilots"] is None):
            raise _fail(f"{source}: fit", "give exactly one of `observations` (a run table) or `pilots` (proxy runs)")
        if f["pilots"] is not None:
            if "pools" not in sections:
                raise _fail(f"{source}: fit.pilots", "needs the pools stage (pilot runs train on pool samples)")
            f["pilots"] = _section(f["pilots"], "pilots", f"{source}: fit.pilots")
        else:
            f["observations"] = resolve(f["observations"])
    if "materialize" in sections and sections["materialize"]["budgets"] is not None:
        planned = sections["plan"]["budgets"]
        for i, b in enumerate(sections["materialize"]["budgets"]):
            if not any(abs(b - p) <= 1e-9 * p for p in planned):
                raise _fail(f"{source}: materialize.budgets[{i}]", f"{b:g} is not among plan.budgets {planned}")
    if "score" in sections:
        opts = sections["score"]["options"]
        extra = sorted(set(opts) - set(sections["score"]["scorers"]))
        if extra:
            raise _fail(f"{source}: score.options.{extra[0]}", "options for a scorer that is not in score.scorers")
        for k, v in opts.items():
            mapping(f"{source}: score.options.{k}", v)
    read = _section(data.get("read"), "read", f"{source}: read")
    ray = _section(data.get("ray"), "ray", f"{source}: ray")
    return JobSpec(source=source, name=name, out=out, input=inp, stages=stages, read=read, ray=ray,
                   sections=sections, report=report)


def load_spec(file: str | Path) -> JobSpec:
    """Read a YAML spec with yaml.safe_load (no tags, no objects) and validate it."""
    import yaml

    file = Path(file)
    if not file.is_file():
        raise SpecError(f"{file}: no such job spec")
    from thresher.pipeline.safety import InputTooLarge, read_capped

    try:
        data = yaml.safe_load(read_capped(file, what="job spec").decode("utf-8"))
    except (InputTooLarge, UnicodeDecodeError) as exc:
        raise SpecError(f"{file}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}: line {mark.line + 1}" if mark is not None else str(file)
        raise SpecError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    return parse_spec(data, str(file), file.resolve().parent)
