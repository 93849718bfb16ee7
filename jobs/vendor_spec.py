"""The `thresher vendors` spec: YAML in, validated settings and safely loaded data out.

Vendor files are untrusted. They are read as data only (JSON lines, .npy/.npz with pickling
disabled), refused above a size cap before any byte is parsed, and a malformed row is set
aside with its line number and reason instead of stopping the job. Every problem in the
spec itself is an error that names the key, e.g. `vendors[1].price.unit`.
"""
from __future__ import annotations

import json
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from thresher.metrics.errors import InputError
from thresher.mixtures.vendors.prices import PRICE_UNITS, PriceSchedule, PriceTier

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PROXY_KINDS = ("classifier", "ngram", "pilot_csv")
CLASSIFIER_MODELS = ("logistic", "ridge", "knn", "nearest_centroid")
DATA_SUFFIXES = (".jsonl", ".npz", ".npy")
MAX_LINE_BYTES = 1_000_000

_TOP = {"name", "budget", "currency", "min_gain", "level", "seed", "owned", "target", "proxy", "vendors", "ot",
        "limits", "evaluation", "text", "repetition"}
_REPEAT = {"fit", "pools", "budget", "params"}
_POOL = {"name", "path"}
_TARGET = {"path"}
_PROXY = {"kind", "model", "path", "goal", "order", "repeats", "fractions", "max_train"}
_VENDOR = {"name", "sample", "available", "max_quantity", "price"}
_PRICE = {"unit", "amount", "tiers"}
_TIER = {"upto", "amount"}
_OT = {"solver", "reg", "max_points", "n_boot", "label_cost"}
_LIMITS = {"max_file_mb", "max_rows"}
_EVAL = {"n_boot", "grid_points", "max_extrapolation", "duplicate_radius"}
_TEXT = {"field", "label_field", "embedding_field", "embedder_dim"}


class SpecError(InputError):
    """A problem in the spec, naming the file and the key (exit code 2)."""


@dataclass
class VendorSpec:
    name: str
    sample: Path
    available: int
    price: PriceSchedule
    max_quantity: int | None = None


@dataclass
class Spec:
    path: Path
    name: str
    budget: float | None
    currency: str
    min_gain: float
    level: float
    seed: int
    owned: list[tuple[str, Path]]
    target: Path
    proxy: dict[str, Any]
    vendors: list[VendorSpec]
    ot: dict[str, Any] | None
    max_file_bytes: int
    max_rows: int
    evaluation: dict[str, Any]
    text: dict[str, Any] = field(default_factory=dict)
    repetition: dict[str, Any] | None = None


def _err(path: Path, key: str, msg: str) -> SpecError:
    return SpecError(f"{path}: {key}: {msg}")


def _mapping(path: Path, key: str, value: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _err(path, key, f"expected a mapping, got {type(value).__name__}")
    for k in value:
        if k not in allowed:
            raise _err(path, f"{key}.{k}" if key else str(k), f"unknown key (allowed: {', '.join(sorted(allowed))})")
    return value


def _number(path: Path, key: str, value: Any, *, lo: float | None = None, hi: float | None = None,
            integer: bool = False, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _err(path, key, f"expected a finite number, got {value!r}")
    if integer and float(value) != int(value):
        raise _err(path, key, f"expected a whole number, got {value!r}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise _err(path, key, f"must be {'>' if lo_open else '>='} {lo:g}, got {value!r}")
    if hi is not None and value > hi:
        raise _err(path, key, f"must be <= {hi:g}, got {value!r}")
    return int(value) if integer else float(value)


def _choice(path: Path, key: str, value: Any, options: tuple) -> Any:
    if value not in options:
        raise _err(path, key, f"must be one of {list(options)}, got {value!r}")
    return value


def _name(path: Path, key: str, value: Any) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise _err(path, key, f"must be 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit; got {value!r}")
    return value


def _file(path: Path, key: str, value: Any, suffixes: tuple[str, ...] | None = DATA_SUFFIXES) -> Path:
    """An existing file, relative to the spec; `suffixes` None accepts any type."""
    if not isinstance(value, str) or not value.strip():
        raise _err(path, key, f"expected a file path, got {value!r}")
    p = Path(value)
    if not p.is_absolute():
        p = path.parent / p
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise _err(path, key, f"unsupported file type {p.suffix!r}; use one of {list(suffixes)}")
    if not p.is_file():
        raise _err(path, key, f"no such file: {p}")
    return p


def _price(path: Path, key: str, value: Any, vendor: str) -> PriceSchedule:
    if not isinstance(value, dict):
        amount = _number(path, key, value, lo=0)
        return PriceSchedule.flat(amount, "sample", name=vendor)
    _mapping(path, key, value, _PRICE)
    unit = _choice(path, f"{key}.unit", value.get("unit", "sample"), PRICE_UNITS)
    if ("amount" in value) == ("tiers" in value):
        raise _err(path, key, "give exactly one of 'amount' (flat price) or 'tiers'")
    if "amount" in value:
        return PriceSchedule.flat(_number(path, f"{key}.amount", value["amount"], lo=0), unit, name=vendor)
    tiers = value["tiers"]
    if not isinstance(tiers, list) or not tiers:
        raise _err(path, f"{key}.tiers", "expected a non-empty list of {upto, amount}")
    out = []
    last = 0.0
    for i, t in enumerate(tiers):
        tk = f"{key}.tiers[{i}]"
        _mapping(path, tk, t, _TIER)
        if "amount" not in t:
            raise _err(path, f"{tk}.amount", "missing")
        amount = _number(path, f"{tk}.amount", t["amount"], lo=0)
        upto = t.get("upto")
        if upto is None:
            if i != len(tiers) - 1:
                raise _err(path, f"{tk}.upto", "only the last tier may be open-ended (null)")
        else:
            upto = _number(path, f"{tk}.upto", upto, lo=last, lo_open=True)
            last = upto
        out.append(PriceTier(upto, amount))
    if out[-1].upto is not None:
        raise _err(path, f"{key}.tiers[{len(out) - 1}].upto", "the last tier must be open-ended (upto: null)")
    return PriceSchedule(unit, tuple(out), 1.0, vendor)


def load_spec(path: str | Path) -> Spec:
    """Parse and validate a spec file; raises SpecError naming the offending key."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such spec file")
    if path.stat().st_size > 1_000_000:
        raise SpecError(f"{path}: spec larger than 1 MB; data belongs in separate files")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({exc})") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not UTF-8 text") from None
    if raw is None:
        raise SpecError(f"{path}: the spec is empty")
    spec = _mapping(path, "", raw, _TOP)
    for req in ("owned", "target", "vendors", "budget"):
        if req not in spec:
            raise _err(path, req, "missing (required)")
    budget = None if spec["budget"] is None else _number(path, "budget", spec["budget"], lo=0)
    level = _number(path, "level", spec.get("level", 0.9), lo=0, hi=0.999, lo_open=True)
    min_gain = _number(path, "min_gain", spec.get("min_gain", 0.0))
    seed = _number(path, "seed", spec.get("seed", 0), lo=0, integer=True)
    currency = spec.get("currency", "")
    if not isinstance(currency, str) or len(currency) > 16:
        raise _err(path, "currency", f"expected a short label such as USD, got {currency!r}")
    name = spec.get("name", path.stem)
    if not isinstance(name, str):
        raise _err(path, "name", f"expected text, got {name!r}")

    owned_raw = spec["owned"]
    if isinstance(owned_raw, dict):
        owned_raw = [owned_raw]
    if not isinstance(owned_raw, list) or not owned_raw:
        raise _err(path, "owned", "expected a non-empty list of pools ({name, path})")
    owned = []
    for i, pool in enumerate(owned_raw):
        key = f"owned[{i}]"
        _mapping(path, key, pool, _POOL)
        if "path" not in pool:
            raise _err(path, f"{key}.path", "missing (required)")
        owned.append((_name(path, f"{key}.name", pool.get("name", f"owned{i}")), _file(path, f"{key}.path", pool["path"])))
    if len({n for n, _ in owned}) != len(owned):
        raise _err(path, "owned", "pool names must be unique")
    tgt = _mapping(path, "target", spec["target"], _TARGET)
    if "path" not in tgt:
        raise _err(path, "target.path", "missing (required)")
    target = _file(path, "target.path", tgt["path"])

    proxy = dict(_mapping(path, "proxy", spec.get("proxy", {}) or {}, _PROXY))
    proxy["kind"] = _choice(path, "proxy.kind", proxy.get("kind", "classifier"), PROXY_KINDS)
    proxy["model"] = _choice(path, "proxy.model", proxy.get("model", "logistic"), CLASSIFIER_MODELS)
    proxy["goal"] = _choice(path, "proxy.goal", proxy.get("goal", "max"), ("min", "max"))
    proxy["order"] = _number(path, "proxy.order", proxy.get("order", 3), lo=1, hi=8, integer=True)
    proxy["repeats"] = _number(path, "proxy.repeats", proxy.get("repeats", 4), lo=1, hi=100, integer=True)
    proxy["max_train"] = _number(path, "proxy.max_train", proxy.get("max_train", 5000), lo=10, integer=True)
    fr = proxy.get("fractions", [0.25, 0.5, 1.0])
    if not isinstance(fr, list) or not fr:
        raise _err(path, "proxy.fractions", f"expected a non-empty list of numbers in (0, 1], got {fr!r}")
    proxy["fractions"] = [_number(path, f"proxy.fractions[{i}]", f, lo=0, hi=1, lo_open=True) for i, f in enumerate(fr)]
    if proxy["kind"] == "pilot_csv":
        if "path" not in proxy:
            raise _err(path, "proxy.path", "missing: pilot_csv needs the CSV of your pilot runs")
        proxy["path"] = _file(path, "proxy.path", proxy["path"], suffixes=None)
    elif "path" in proxy:
        raise _err(path, "proxy.path", "only used with kind: pilot_csv")

    vendors_raw = spec["vendors"]
    if not isinstance(vendors_raw, list) or not vendors_raw:
        raise _err(path, "vendors", "expected a non-empty list of vendors")
    vendors = []
    for i, v in enumerate(vendors_raw):
        key = f"vendors[{i}]"
        _mapping(path, key, v, _VENDOR)
        for req in ("name", "sample", "available", "price"):
            if req not in v:
                raise _err(path, f"{key}.{req}", "missing (required)")
        vname = _name(path, f"{key}.name", v["name"])
        vendors.append(VendorSpec(
            name=vname,
            sample=_file(path, f"{key}.sample", v["sample"]),
            available=_number(path, f"{key}.available", v["available"], lo=0, integer=True),
            price=_price(path, f"{key}.price", v["price"], vname),
            max_quantity=None if v.get("max_quantity") is None else
            _number(path, f"{key}.max_quantity", v["max_quantity"], lo=0, integer=True),
        ))
    names = [v.name for v in vendors]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _err(path, "vendors", f"vendor names must be unique; repeated: {dupes}")

    ot = None
    if spec.get("ot") is not None:
        o = _mapping(path, "ot", spec["ot"], _OT)
        ot = {
            "solver": _choice(path, "ot.solver", o.get("solver", "sinkhorn"), ("sinkhorn", "exact", "sliced")),
            "reg": _number(path, "ot.reg", o.get("reg", 0.05), lo=0, lo_open=True),
            "max_points": _number(path, "ot.max_points", o.get("max_points", 400), lo=10, hi=4000, integer=True),
            "n_boot": _number(path, "ot.n_boot", o.get("n_boot", 20), lo=0, hi=500, integer=True),
            "label_cost": _choice(path, "ot.label_cost", o.get("label_cost", "gaussian"), ("gaussian", "onehot", None)),
        }
    lim = _mapping(path, "limits", spec.get("limits", {}) or {}, _LIMITS)
    max_mb = _number(path, "limits.max_file_mb", lim.get("max_file_mb", 256), lo=0, lo_open=True)
    max_rows = _number(path, "limits.max_rows", lim.get("max_rows", 200_000), lo=1, integer=True)
    ev = _mapping(path, "evaluation", spec.get("evaluation", {}) or {}, _EVAL)
    evaluation = {
        "n_boot": _number(path, "evaluation.n_boot", ev.get("n_boot", 300), lo=10, hi=10_000, integer=True),
        "grid_points": _number(path, "evaluation.grid_points", ev.get("grid_points", 24), lo=2, hi=200, integer=True),
        "max_extrapolation": _number(path, "evaluation.max_extrapolation", ev.get("max_extrapolation", 20), lo=1),
        "duplicate_radius": _number(path, "evaluation.duplicate_radius", ev.get("duplicate_radius", 0.05), lo=0),
    }
    tx = _mapping(path, "text", spec.get("text", {}) or {}, _TEXT)
    text = {
        "field": tx.get("field", "text"),
        "label_field": tx.get("label_field", "label"),
        "embedding_field": tx.get("embedding_field", "embedding"),
        "embedder_dim": _number(path, "text.embedder_dim", tx.get("embedder_dim", 256), lo=2, hi=4096, integer=True),
    }
    for k in ("field", "label_field", "embedding_field"):
        if not isinstance(text[k], str) or not text[k]:
            raise _err(path, f"text.{k}", f"expected a field name, got {text[k]!r}")
    repetition = None
    if spec.get("repetition") is not None:
        rp = _mapping(path, "repetition", spec["repetition"], _REPEAT)
        for req in ("fit", "pools", "budget"):
            if req not in rp:
                raise _err(path, f"repetition.{req}", "missing (required)")
        repetition = {
            "fit": _file(path, "repetition.fit", rp["fit"], suffixes=(".json",)),
            "pools": _file(path, "repetition.pools", rp["pools"], suffixes=(".json",)),
            "budget": _number(path, "repetition.budget", rp["budget"], lo=0, lo_open=True),
            "params": None if rp.get("params") is None else _number(path, "repetition.params", rp["params"], lo=0,
                                                                     lo_open=True),
        }
    return Spec(path, name, budget, currency, min_gain, level, seed, owned, target, proxy, vendors, ot,
                int(max_mb * 1024 * 1024), max_rows, evaluation, text, repetition)


# ---- data files --------------------------------------------------------------------------------
@dataclass
class Rows:
    """Rows read from one file: embeddings or texts, optional labels, and the quarantined rows."""

    source: Path
    x: np.ndarray | None
    texts: list[str] | None
    labels: np.ndarray | None
    quarantined: list[dict[str, Any]]
    rows_read: int

    def __len__(self) -> int:
        return len(self.texts) if self.texts is not None else (0 if self.x is None else self.x.shape[0])


def _check_size(path: Path, max_bytes: int) -> None:
    size = path.stat().st_size
    if size > max_bytes:
        raise SpecError(f"{path}: {size / 2**20:.1f} MB exceeds the {max_bytes / 2**20:.1f} MB limit "
                        "(raise limits.max_file_mb if you trust this file)")


def _clean_label(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return value


def read_rows(path: Path, *, max_bytes: int, max_rows: int, text_field: str = "text", label_field: str = "label",
              embedding_field: str = "embedding") -> Rows:
    """Read a data file without executing anything in it; bad rows go to `quarantined`."""
    _check_size(path, max_bytes)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path, max_rows, text_field, label_field, embedding_field)
    if suffix in (".npz", ".npy"):
        return _read_numpy(path, max_bytes, max_rows)
    raise SpecError(f"{path}: unsupported file type {suffix!r}; use one of {list(DATA_SUFFIXES)}")


def _read_jsonl(path: Path, max_rows: int, text_field: str, label_field: str, embedding_field: str) -> Rows:
    texts: list[str] = []
    embs: list[list[float]] = []
    labels: list[Any] = []
    lines: list[int] = []
    bad: list[dict[str, Any]] = []
    kind = None
    dim = None
    read = 0
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            read += 1
            if read > max_rows:
                raise SpecError(f"{path}: more than {max_rows} rows (raise limits.max_rows if you trust this file)")

            def reject(reason: str) -> None:
                bad.append({"line": lineno, "reason": reason})

            if len(raw) > MAX_LINE_BYTES:
                reject(f"line longer than {MAX_LINE_BYTES} bytes")
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                reject("not UTF-8")
                continue
            except (json.JSONDecodeError, RecursionError):
                reject("not valid JSON")
                continue
            if not isinstance(row, dict):
                reject(f"expected a JSON object, got {type(row).__name__}")
                continue
            label = None
            if label_field in row:
                label = _clean_label(row[label_field])
                if label is None:
                    reject(f"'{label_field}' must be a string or an integer")
                    continue
            if embedding_field in row:
                e = row[embedding_field]
                if not isinstance(e, list) or not e or not all(
                        isinstance(v, (int, float)) and not isinstance(v, bool) for v in e):
                    reject(f"'{embedding_field}' must be a non-empty list of numbers")
                    continue
                if not all(math.isfinite(v) for v in e):
                    reject(f"'{embedding_field}' has a non-finite value")
                    continue
                if dim is None:
                    dim = len(e)
                elif len(e) != dim:
                    reject(f"'{embedding_field}' has {len(e)} values, earlier rows have {dim}")
                    continue
                if kind == "text":
                    reject("mixes embedding rows into a text file")
                    continue
                kind = "embedding"
                embs.append([float(v) for v in e])
            elif text_field in row:
                t = row[text_field]
                if not isinstance(t, str) or not t.strip():
                    reject(f"'{text_field}' must be a non-empty string")
                    continue
                if kind == "embedding":
                    reject("mixes text rows into an embedding file")
                    continue
                kind = "text"
                texts.append(t)
            else:
                reject(f"no '{text_field}' or '{embedding_field}' field")
                continue
            labels.append(label)
            lines.append(lineno)
    have = [lab is not None for lab in labels]
    lab_arr = None
    if any(have):
        if not all(have):
            # Rows without a label cannot train a classifier when the others have one.
            keep = np.array(have)
            bad.extend({"line": ln, "reason": f"no '{label_field}' (other rows have one)"}
                       for ln, k in zip(lines, keep) if not k)
            bad.sort(key=lambda b: b["line"])
            texts = [t for t, k in zip(texts, keep) if k] if kind == "text" else texts
            embs = [e for e, k in zip(embs, keep) if k] if kind == "embedding" else embs
            labels = [lab for lab in labels if lab is not None]
        kinds = {type(lab) for lab in labels}
        lab_arr = np.array([str(lab) for lab in labels]) if len(kinds) > 1 else np.array(labels)
    if kind == "embedding":
        return Rows(path, np.asarray(embs, dtype=np.float64), None, lab_arr, bad, read)
    return Rows(path, None, texts if kind == "text" else [], lab_arr, bad, read)


def _read_numpy(path: Path, max_bytes: int, max_rows: int) -> Rows:
    try:
        if path.suffix.lower() == ".npy":
            x = np.load(path, allow_pickle=False)
            labels = None
        else:
            with zipfile.ZipFile(path) as zf:
                total = sum(i.file_size for i in zf.infolist())
            if total > max_bytes:
                raise SpecError(f"{path}: unpacks to {total / 2**20:.1f} MB, over the {max_bytes / 2**20:.1f} MB limit")
            with np.load(path, allow_pickle=False) as z:
                key = "x" if "x" in z.files else "embeddings" if "embeddings" in z.files else None
                if key is None:
                    raise SpecError(f"{path}: .npz needs an array named 'x' (found {z.files})")
                x = z[key]
                labels = z["labels"] if "labels" in z.files else None
    except SpecError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise SpecError(f"{path}: cannot read as numpy data ({exc}); object arrays are refused") from None
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise SpecError(f"{path}: embeddings must be a real (n, d) array, got {x.dtype} with shape {x.shape}")
    if x.shape[0] > max_rows:
        raise SpecError(f"{path}: {x.shape[0]} rows, more than {max_rows} (raise limits.max_rows if you trust this file)")
    x = x.astype(np.float64)
    if labels is not None:
        if labels.shape != (x.shape[0],):
            raise SpecError(f"{path}: {labels.shape} labels for {x.shape[0]} rows")
        if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype.kind == "U"):
            raise SpecError(f"{path}: labels must be integers or strings, got {labels.dtype}")
    finite = np.isfinite(x).all(axis=1)
    bad = [{"line": int(i), "reason": "non-finite embedding value (row index)"} for i in np.flatnonzero(~finite)]
    return Rows(path, x[finite], None, None if labels is None else labels[finite], bad, int(x.shape[0]))


def safe_output(out: Path, *parts: str) -> Path:
    """A path under `out`; refuses anything that would leave it."""
    root = out.resolve()
    p = root.joinpath(*parts).resolve()
    if root != p and root not in p.parents:
        raise SpecError(f"output path {p} would leave the output folder {root}")
    return p
