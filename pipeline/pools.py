"""Pools: documents grouped by a quality score, the unit a plan mixes and repeats.

A pool job reads the sidecars of a score job (and, when given, the `duplicate_of`
sidecars of a dedupe job), computes one score per document (a column or an
arithmetic expression over columns), and cuts the score range by quantiles or by
fixed thresholds. Only columns travel to the driver, never text. Outputs:

    pools.json             unit, and per pool: name, unique (tokens or documents), documents, score range
    members/<part>.parquet id, pool, tokens: which pool each eligible document joined
    summary.json           documents read, excluded (duplicate, where, no score) and pooled

pools.json is the `--pools` file of `thresher plan`, and `materialize` reads the
members to turn a plan into a training manifest. pools.json is written by
`write_pools_json` and read by `load_pools_json` only: the writer stamps the format tag,
the reader checks it, the size limit and every pool row. A hand-written pools.json
without the tag (`{"unit": "tokens", "pools": [{"name": ..., "unique": ...}]}`) still reads.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.metrics.errors import InputError
from thresher.metrics.files import JsonFormat, MiB
from thresher.pipeline import expression
from thresher.pipeline.manifest import vouched_outputs
from thresher.pipeline.outputs import (
    load_format,
    read_parquet,
    read_schema,
    safe_join,
    write_json_atomic,
    write_parquet_atomic,
)
from thresher.pipeline.storage import Location, at, place

POOLS = JsonFormat("thresher.pools", 1, "pools", max_bytes=64 * MiB, legacy=True)
MAX_POOLS = 10_000  # pool rows a pools.json may list
METHODS = ("quantiles", "thresholds")
UNITS = ("tokens", "samples")
MEMBERS = "members"


class PoolError(InputError):
    """Bad pool options or inputs; the message names the option or file."""


@dataclass(frozen=True)
class PoolSpec:
    """How to cut documents into pools.

    score: a sidecar column or an arithmetic expression over columns (higher = better).
    method: "quantiles" (edges are fractions in (0, 1) of the eligible documents) or
        "thresholds" (edges are score values).
    edges: increasing cut points; len(edges) + 1 pools, lowest score first.
    names: pool names, lowest score first (default: from the edges).
    where: optional boolean expression; documents failing it join no pool.
    tokens: column holding each document's token count (unit "tokens").
    unit: "tokens" (unique = sum of tokens) or "samples" (unique = documents).
    """

    score: str
    method: str = "quantiles"
    edges: tuple[float, ...] = (0.5,)
    names: tuple[str, ...] | None = None
    where: str | None = None
    tokens: str = "gopher_words"
    unit: str = "tokens"

    def __post_init__(self) -> None:
        if not self.score or not isinstance(self.score, str):
            raise PoolError("pools: `score` must name a column or an expression")
        if self.method not in METHODS:
            raise PoolError(f"pools: method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.unit not in UNITS:
            raise PoolError(f"pools: unit must be one of {', '.join(UNITS)}, got {self.unit!r}")
        edges = np.asarray(self.edges, dtype=np.float64)
        if edges.ndim != 1 or len(edges) == 0:
            raise PoolError("pools: `edges` needs at least one cut point")
        if not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
            raise PoolError(f"pools: edges must be finite and strictly increasing, got {list(self.edges)}")
        if self.method == "quantiles" and not (edges[0] > 0 and edges[-1] < 1):
            raise PoolError(f"pools: quantile edges must lie in (0, 1), got {list(self.edges)}")
        if self.names is not None:
            if len(self.names) != len(edges) + 1:
                raise PoolError(f"pools: {len(edges)} edges make {len(edges) + 1} pools, but {len(self.names)} names "
                                f"were given")
            if len(set(self.names)) != len(self.names) or not all(isinstance(n, str) and n for n in self.names):
                raise PoolError(f"pools: names must be distinct non-empty strings, got {list(self.names)}")
        for expr, what in ((self.score, "score"), (self.where, "where")):
            if expr is not None:
                try:
                    expression.columns(expr)
                except expression.ExpressionError as exc:
                    raise PoolError(f"pools: {what}: {exc}") from None

    def pool_names(self) -> list[str]:
        if self.names is not None:
            return list(self.names)
        if self.method == "quantiles":
            cuts = [0.0, *self.edges, 1.0]
            return [f"q{round(100 * a):02d}-{round(100 * b):02d}" for a, b in zip(cuts[:-1], cuts[1:])]
        cuts = [f"{e:g}" for e in self.edges]
        return [f"below-{cuts[0]}"] + [f"{a}-{b}" for a, b in zip(cuts[:-1], cuts[1:])] + [f"above-{cuts[-1]}"]


def score_values(expr: str, table: pa.Table) -> np.ndarray:
    """A float per row: a column, or arithmetic over columns (NaN where a value is missing)."""
    value = expression._eval(expression.parse(expr).body, table, expr)
    if isinstance(value, pa.Scalar) or not isinstance(value, (pa.Array, pa.ChunkedArray)):
        raise PoolError(f"pools: score {expr!r} does not depend on any column")
    if pa.types.is_boolean(value.type):
        value = value.cast(pa.int8())
    if not (pa.types.is_integer(value.type) or pa.types.is_floating(value.type)):
        raise PoolError(f"pools: score {expr!r} gives {value.type} values, not numbers")
    arr = pc.cast(value, pa.float64())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)


def _sidecar_files(job_dir: Path | Location) -> dict[str, Path | Location]:
    """Part key -> sidecar file of a job output directory: only those a part's completion marker vouches for."""
    if not (job_dir / "job.json").exists():
        raise PoolError(f"{job_dir}: not a `thresher score` output (no job.json or sidecars/)")
    return vouched_outputs(job_dir, "sidecars")


@dataclass
class _PartScores:
    key: str
    ids: pa.Array
    score: np.ndarray
    tokens: np.ndarray
    eligible: np.ndarray
    source: pa.Array | None


def _joined_columns(path: Any, wanted: set[str], also: Sequence[Any]) -> pa.Table:
    """`id`, the wanted columns (and `source`) of one part: from its sidecar, and the columns it lacks from the
    same part's sidecars of the other score outputs (`also`), whose rows must be the same documents in order."""
    names = read_schema(path).names
    schemas = [read_schema(p).names for p in also]
    found = set(names).union(*schemas) if schemas else set(names)
    missing = sorted(c for c in wanted if c not in found)
    if missing:
        shown = ", ".join(sorted(found - {"id"}))
        raise PoolError(f"{path}: no column(s) {missing} for the pools (columns: {shown})")
    own = sorted(c for c in wanted if c in names)
    cols = ["id"] + own + (["source"] if "source" in names and "source" not in wanted else [])
    table = read_parquet(path, columns=cols)
    taken = set(own)
    for other, other_names in zip(also, schemas):
        extra = sorted(c for c in wanted if c in other_names and c not in taken)
        if not extra:
            continue
        more = read_parquet(other, columns=["id", *extra])
        if more.num_rows != table.num_rows or not more["id"].equals(table["id"]):
            raise PoolError(f"{other}: its documents do not match {path}; score outputs joined for pools must "
                            "read the same input with the same read options")
        for c in extra:
            table = table.append_column(c, more[c])
        taken.update(extra)
    return table


def _read_part(key: str, path: Path, spec: PoolSpec, dup_path: Path | None, counts: dict,
               also: Sequence[Any] = ()) -> _PartScores:
    wanted = set(expression.columns(spec.score)) | set(expression.columns(spec.where) if spec.where else [])
    if spec.unit == "tokens":
        wanted.add(spec.tokens)
    table = _joined_columns(path, wanted, also)
    n = table.num_rows
    score = score_values(spec.score, table) if n else np.zeros(0)
    eligible = np.isfinite(score)
    counts["no_score"] += int((~eligible).sum())
    if spec.where and n:
        ok = expression.evaluate(spec.where, table).to_numpy(zero_copy_only=False)
        counts["where"] += int((eligible & ~ok).sum())
        eligible &= ok
    if dup_path is not None and n:
        dup = read_parquet(dup_path, columns=["id", "duplicate_of"])
        if dup.num_rows != n or not dup["id"].equals(table["id"]):
            raise PoolError(f"{dup_path}: rows do not match {path}; dedupe and score must read the same input")
        is_dup = pc.is_valid(dup["duplicate_of"]).to_numpy(zero_copy_only=False)
        counts["duplicate"] += int((eligible & is_dup).sum())
        eligible &= ~is_dup
    if spec.unit == "tokens":
        tok = np.asarray(pc.fill_null(table[spec.tokens], 0).to_numpy(zero_copy_only=False), dtype=np.float64)
    else:
        tok = np.ones(n)
    return _PartScores(key, table["id"].combine_chunks(), score, tok, eligible,
                       table["source"].combine_chunks() if "source" in table.column_names else None)


def _cut_points(spec: PoolSpec, scores: np.ndarray) -> np.ndarray:
    if spec.method == "thresholds":
        return np.asarray(spec.edges, dtype=np.float64)
    if len(scores) == 0:
        raise PoolError("pools: no eligible documents to take quantiles of")
    return np.quantile(scores, spec.edges, method="lower")


def build_pools(scored: str | Path, out: str | Path, spec: PoolSpec, dedupe: str | Path | None = None,
                also: Sequence[str | Path] = ()) -> dict:
    """Cut the documents of a score job into pools; write pools.json, members/ and summary.json.

    `also`: more score outputs over the same input (other scorers, run separately); a column
    the score, --where or tokens name is taken from the first output that has it, joined on
    doc id part by part.
    """
    scored, out = place(scored), place(out)
    files = _sidecar_files(scored)
    if not files:
        raise PoolError(f"{scored}/sidecars: no sidecar files; did the score job finish?")
    others = [place(a) for a in also]
    other_files = [_sidecar_files(a) for a in others]
    for where, found in zip(others, other_files):
        if set(found) != set(files):
            odd = sorted(set(found) ^ set(files))[0]
            raise PoolError(f"{where}: its parts differ from {scored}'s (first: {odd}); score outputs joined for "
                            "pools must read the same input")
    dup_files: dict[str, Path] = {}
    if dedupe is not None:
        dup_files = _sidecar_files(place(dedupe))
    counts = {"documents": 0, "no_score": 0, "where": 0, "duplicate": 0}
    parts = []
    for key, path in files.items():
        if dedupe is not None and key not in dup_files:
            raise PoolError(f"{dedupe}: no sidecar for part {key}; dedupe and score must read the same input")
        part = _read_part(key, path, spec, dup_files.get(key), counts, [f[key] for f in other_files])
        counts["documents"] += len(part.score)
        parts.append(part)
    all_scores = np.concatenate([p.score[p.eligible] for p in parts]) if parts else np.zeros(0)
    cuts = _cut_points(spec, all_scores)
    if spec.method == "quantiles" and np.any(np.diff(cuts) <= 0):
        raise PoolError(f"pools: quantile edges {list(spec.edges)} give repeated score cuts {cuts.tolist()} (many "
                        "documents share a score); use fewer edges or thresholds")
    names = spec.pool_names()
    k = len(names)
    docs = np.zeros(k, dtype=np.int64)
    unique = np.zeros(k)
    lo, hi = np.full(k, np.inf), np.full(k, -np.inf)
    by_source: list[dict[str, int]] = [{} for _ in range(k)]
    name_arr = pa.array(names, pa.string())
    for part in parts:
        idx = np.flatnonzero(part.eligible)
        pool = np.searchsorted(cuts, part.score[idx], side="right")  # a score equal to a cut joins the upper pool
        np.add.at(docs, pool, 1)
        np.add.at(unique, pool, part.tokens[idx])
        np.minimum.at(lo, pool, part.score[idx])
        np.maximum.at(hi, pool, part.score[idx])
        if part.source is not None and len(idx):
            src = part.source.take(pa.array(idx)).to_pylist()
            for s, p in zip(src, pool.tolist()):
                by_source[p][str(s)] = by_source[p].get(str(s), 0) + 1
        if len(idx):
            members = pa.table({"id": part.ids.take(pa.array(idx)),
                                "pool": name_arr.take(pa.array(pool.astype(np.int64))),
                                "tokens": pa.array(part.tokens[idx].astype(np.int64), pa.int64())})
            write_parquet_atomic(members, safe_join(out, f"{MEMBERS}/{part.key}.parquet"))
    empty = [names[i] for i in range(k) if docs[i] == 0]
    if empty:
        raise PoolError(f"pools: {', '.join(empty)} would hold no documents (cuts {cuts.tolist()}); adjust the edges")
    pools = [{"name": names[i], "unique": float(unique[i]), "documents": int(docs[i]),
              "score_low": float(lo[i]), "score_high": float(hi[i]), "sources": dict(sorted(by_source[i].items()))}
             for i in range(k)]
    result = write_pools_json({
        "unit": spec.unit, "pools": pools, "spec": asdict(spec), "cuts": cuts.tolist(),
        "scored": str(scored.resolve()), "dedupe": str(place(dedupe).resolve()) if dedupe is not None else None,
        "members": MEMBERS,
        **({"also": [str(a.resolve()) for a in others]} if others else {}),
    }, out / "pools.json")
    summary = {"documents": counts["documents"], "pooled": int(docs.sum()),
               "excluded": {k2: counts[k2] for k2 in ("no_score", "where", "duplicate")},
               "pools": {p["name"]: {"documents": p["documents"], "unique": p["unique"]} for p in pools}}
    write_json_atomic(summary, out / "summary.json")
    return result


def read_members(pools_dir: str | Path, pools: Sequence[str] | None = None) -> pa.Table:
    """id, pool, tokens, part for every pooled document (optionally of some pools only)."""
    root = at(pools_dir) / MEMBERS
    if not root.is_dir():
        raise PoolError(f"{pools_dir}: no members/ directory; pass the --out directory of `thresher pools`")
    tables = []
    for entry in root.files():
        if not entry.relative.endswith(".parquet") or entry.location.name.startswith("."):
            continue
        t = read_parquet(entry.location)
        if pools is not None:
            t = t.filter(pc.is_in(t["pool"], pa.array(list(pools), pa.string())))
        key = entry.relative[: -len(".parquet")]
        tables.append(t.append_column("part", pa.array([key] * t.num_rows, pa.string())))
    if not tables:
        return pa.table({"id": pa.array([], pa.string()), "pool": pa.array([], pa.string()),
                         "tokens": pa.array([], pa.int64()), "part": pa.array([], pa.string())})
    return pa.concat_tables(tables)


def _pools_path(path: str | Path) -> Path | Location:
    path = place(path)
    return path / "pools.json" if path.is_dir() else path


def write_pools_json(pools: Mapping[str, Any], path: str | Path) -> dict[str, Any]:
    """Write pools.json atomically, format tag added; returns what was written."""
    doc = {**POOLS.stamp(), **{k: v for k, v in pools.items() if k != "format"}}
    write_json_atomic(doc, place(path))
    return doc


def _check_pool(p: Any, where: str) -> None:
    if not isinstance(p, Mapping):
        raise PoolError(f"{where}: expected an object with name and unique")
    for key in ("name", "unique"):
        if key not in p:
            raise PoolError(f"{where}: missing {key!r}")
    if not isinstance(p["name"], str) or not p["name"]:
        raise PoolError(f"{where}: a pool needs a name, got {p['name']!r}")
    unique = p["unique"]
    if isinstance(unique, bool) or not isinstance(unique, (int, float)) or not (math.isfinite(unique) and unique > 0):
        raise PoolError(f"{where}: pool {p['name']!r}: unique size must be a positive number, got {unique!r}")
    for key, kind in (("documents", int), ("cost", (int, float))):
        value = p.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind) or value < 0):
            raise PoolError(f"{where}: pool {p['name']!r}: {key} must be a number >= 0, got {value!r}")


def load_pools_json(path: str | Path) -> dict[str, Any]:
    """Read and check pools.json: a `thresher pools` output directory, or the file itself."""
    target = _pools_path(path)
    source = str(target)
    try:
        doc = dict(load_format(POOLS, target, missing="pass the --out directory of `thresher pools`, or its pools.json"))
    except InputError as exc:
        raise PoolError(str(exc)) from None
    if not isinstance(doc.get("pools"), list):
        raise PoolError(f"{source}: expected an object with a \"pools\" list")
    unit = doc.get("unit", "tokens")
    if unit not in UNITS:
        raise PoolError(f"{source}: unit must be \"tokens\" or \"samples\", got {unit!r}")
    if not doc["pools"]:
        raise PoolError(f"{source}: no pools listed")
    if len(doc["pools"]) > MAX_POOLS:
        raise PoolError(f"{source}: {len(doc['pools'])} pools, over the limit of {MAX_POOLS}")
    seen: set[str] = set()
    for i, p in enumerate(doc["pools"]):
        _check_pool(p, f"{source}: pools[{i}]")
        if p["name"] in seen:
            raise PoolError(f"{source}: pools[{i}]: duplicate pool name {p['name']!r}")
        seen.add(p["name"])
    return doc
