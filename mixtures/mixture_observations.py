"""Pilot runs on mixtures as a wide table: one weight column per pool, one or more value columns.

File format (CSV with a header):

    run,weight_web,weight_books,weight_code,size,seed,accuracy,loss
    r1,0.5,0.3,0.2,1000,0,0.81,0.62

- weight columns: every column whose name starts with ``weight_prefix`` (default ``weight_``);
  the pool name is the rest of the name. Rows must be nonnegative and sum to 1 (within
  ``sum_tolerance``; they are renormalised).
- ``size`` (optional): the training size N of the run, for size extrapolation.
- ``seed``, ``run`` (optional): kept for bookkeeping.
- every other numeric column is a value column (a metric such as loss or accuracy).

Weights and values may live in two files that share a key column, as RegMix publishes them:
``read_mixture_csv("train_mixture_1m.csv", values_path="train_pile_loss_1m.csv",
join="index", weight_prefix="train_the_pile_")`` (or simply ``read_regmix(dir, "train")``).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

DEFAULT_WEIGHT_PREFIX = "weight_"
SIZE_COLUMN = "size"
BOOKKEEPING = ("run", "run_id", "seed", "index")


@dataclass
class MixtureObservations:
    """Pilot observations: weights (n, pools), training sizes (n,) or None, named value columns."""

    pools: list[str]
    weights: np.ndarray
    values: dict[str, np.ndarray] = field(default_factory=dict)
    sizes: np.ndarray | None = None
    ids: list[str] | None = None
    seeds: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.weights = np.atleast_2d(np.asarray(self.weights, dtype=np.float64))
        n, m = self.weights.shape
        if m != len(self.pools):
            raise ValueError(f"{m} weight columns for {len(self.pools)} pool names")
        if len(set(self.pools)) != len(self.pools):
            raise ValueError(f"pool names must be unique, got {self.pools}")
        self.values = {k: np.asarray(v, dtype=np.float64) for k, v in self.values.items()}
        for k, v in self.values.items():
            if v.shape != (n,):
                raise ValueError(f"value column {k!r} has {v.size} rows, weights have {n}")
        if self.sizes is not None:
            self.sizes = np.asarray(self.sizes, dtype=np.float64)
            if self.sizes.shape != (n,) or not np.all(self.sizes > 0):
                raise ValueError("sizes must be one positive number per row")
        if self.ids is None:
            self.ids = [str(i) for i in range(n)]

    def __len__(self) -> int:
        return self.weights.shape[0]

    @property
    def n_pools(self) -> int:
        return len(self.pools)

    def value(self, column: str | None = None) -> np.ndarray:
        """One value column; the only one when `column` is None."""
        if column is None:
            if len(self.values) != 1:
                raise ValueError(f"several value columns {sorted(self.values)}; name one")
            return next(iter(self.values.values()))
        if column not in self.values:
            raise ValueError(f"no value column {column!r}; have {sorted(self.values)}")
        return self.values[column]

    def subset(self, rows: np.ndarray | Sequence[int]) -> "MixtureObservations":
        idx = np.asarray(rows)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return MixtureObservations(
            pools=list(self.pools),
            weights=self.weights[idx],
            values={k: v[idx] for k, v in self.values.items()},
            sizes=None if self.sizes is None else self.sizes[idx],
            ids=[self.ids[i] for i in idx],
            seeds=None if self.seeds is None else self.seeds[idx],
        )


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ValueError(f"{path}: empty file, expected a header row") from None
        if len(set(header)) != len(header):
            dup = sorted({h for h in header if header.count(h) > 1})
            raise ValueError(f"{path}: duplicate column names {dup}")
        rows = []
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}, line {line_no}: {len(row)} fields, header has {len(header)}")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no data rows")
    return header, rows


def _number(path: Path, line: int, column: str, text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise ValueError(f"{path}, line {line}, column {column!r}: {text!r} is not a number") from None
    if not math.isfinite(x):
        raise ValueError(f"{path}, line {line}, column {column!r}: {text!r} is not finite")
    return x


def read_mixture_csv(
    path: str | Path,
    *,
    weight_prefix: str = DEFAULT_WEIGHT_PREFIX,
    weight_columns: Sequence[str] | None = None,
    value_columns: Sequence[str] | None = None,
    size_column: str | None = SIZE_COLUMN,
    values_path: str | Path | None = None,
    join: str | None = None,
    sum_tolerance: float = 0.01,
) -> MixtureObservations:
    """Load a wide mixture table (see the module docstring); errors name the file and line.

    With `values_path`, value columns come from a second file whose rows match the first
    on the `join` column (e.g. RegMix's `index`).
    """
    path = Path(path)
    header, rows = _read_rows(path)
    if weight_columns is None:
        weight_columns = [h for h in header if h.startswith(weight_prefix)]
        pools = [h[len(weight_prefix):] for h in weight_columns]
        if not weight_columns:
            raise ValueError(f"{path}: no weight columns (names starting with {weight_prefix!r}); set weight_prefix")
    else:
        missing = [c for c in weight_columns if c not in header]
        if missing:
            raise ValueError(f"{path}: weight columns {missing} not in header {header}")
        pools = list(weight_columns)
    col = {h: i for i, h in enumerate(header)}
    w = np.array(
        [[_number(path, ln, c, r[col[c]]) for c in weight_columns] for ln, r in enumerate(rows, start=2)]
    )
    for ln, row in enumerate(w, start=2):
        if (row < 0).any():
            raise ValueError(f"{path}, line {ln}: negative mixture weight")
        if abs(row.sum() - 1.0) > sum_tolerance:
            raise ValueError(f"{path}, line {ln}: weights sum to {row.sum():.6g}, expected 1 (tolerance {sum_tolerance})")
    w = w / w.sum(axis=1, keepdims=True)

    sizes = None
    if size_column and size_column in col:
        sizes = np.array([_number(path, ln, size_column, r[col[size_column]]) for ln, r in enumerate(rows, start=2)])
        bad = np.flatnonzero(sizes <= 0)
        if bad.size:
            raise ValueError(f"{path}, line {bad[0] + 2}: size must be positive")
    seeds = None
    if "seed" in col:
        seeds = np.array([_number(path, ln, "seed", r[col["seed"]]) for ln, r in enumerate(rows, start=2)])
    id_col = next((c for c in ("run", "run_id", "index") if c in col), None)
    ids = [r[col[id_col]].strip() for r in rows] if id_col else [str(i) for i in range(len(rows))]

    reserved = set(weight_columns) | {size_column} | set(BOOKKEEPING)
    if values_path is not None:
        if not join:
            raise ValueError("values_path needs join=<key column>")
        vpath = Path(values_path)
        vheader, vrows = _read_rows(vpath)
        if join not in col or join not in vheader:
            raise ValueError(f"join column {join!r} must be in both {path} and {vpath}")
        vcol = {h: i for i, h in enumerate(vheader)}
        by_key: dict[str, int] = {}
        for ln, r in enumerate(vrows, start=2):
            key = r[vcol[join]].strip()
            if key in by_key:
                raise ValueError(f"{vpath}, line {ln}: duplicate {join} {key!r}")
            by_key[key] = ln - 2
        order = []
        for ln, r in enumerate(rows, start=2):
            key = r[col[join]].strip()
            if key not in by_key:
                raise ValueError(f"{path}, line {ln}: {join} {key!r} has no row in {vpath}")
            order.append(by_key[key])
        src_path, src_header, src_rows = vpath, vheader, [vrows[i] for i in order]
        line_of = [i + 2 for i in order]
    else:
        src_path, src_header, src_rows = path, header, rows
        line_of = list(range(2, len(rows) + 2))
    scol = {h: i for i, h in enumerate(src_header)}
    if value_columns is None:
        value_columns = [h for h in src_header if h not in reserved and h != join]
    missing = [c for c in value_columns if c not in scol]
    if missing:
        raise ValueError(f"{src_path}: value columns {missing} not in header")
    values = {
        c: np.array([_number(src_path, ln, c, r[scol[c]]) for ln, r in zip(line_of, src_rows)]) for c in value_columns
    }
    return MixtureObservations(pools=pools, weights=w, values=values, sizes=sizes, ids=ids, seeds=seeds)


REGMIX_PREFIX = "train_the_pile_"


def read_regmix(directory: str | Path, split: str = "train", scale: str = "1m") -> MixtureObservations:
    """RegMix's published tables: `{split}_mixture_{scale}.csv` joined on `index` with `{split}_pile_loss_{scale}.csv`.

    Pools are the 17 Pile domains (prefix `train_the_pile_` stripped); values are the 13
    `metric/the_pile_*_val_loss` columns, e.g. `metric/the_pile_pile_cc_val_loss`.
    """
    d = Path(directory)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return read_mixture_csv(
        d / f"{split}_mixture_{scale}.csv",
        values_path=d / f"{split}_pile_loss_{scale}.csv",
        join="index",
        weight_prefix=REGMIX_PREFIX,
        size_column=None,
    )


def write_mixture_csv(obs: MixtureObservations, path: str | Path, extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write observations (plus extra columns such as `predicted`) in the wide format."""
    path = Path(path)
    cols: dict[str, list] = {"run": list(obs.ids)}
    for k, name in enumerate(obs.pools):
        cols[DEFAULT_WEIGHT_PREFIX + name] = [repr(float(x)) for x in obs.weights[:, k]]
    if obs.sizes is not None:
        cols[SIZE_COLUMN] = [repr(float(x)) for x in obs.sizes]
    if obs.seeds is not None:
        cols["seed"] = [repr(float(x)) for x in obs.seeds]
    for name, v in {**obs.values, **(extra or {})}.items():
        cols[name] = [repr(float(x)) for x in np.asarray(v)]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(cols))
        writer.writerows(zip(*cols.values()))
    tmp.replace(path)
    return path
