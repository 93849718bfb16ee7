"""Pilot runs on mixtures as the OT mixer sees them: one weight column per pool, named value columns.

`MixtureObservations` is a view of the one observation table (`thresher.mixtures.observations`):
`MixtureObservations.from_observations(obs)` gives it for runs already loaded, and `read_mixture_csv` loads
the mixer's wide CSV through the same reader and builder. File format (CSV with a header):

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

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from thresher.mixtures.observation_files import ObservationError, read_table, write_csv_rows
from thresher.mixtures.observations import Observations, observations_from_table

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
    observations: Observations | None = field(default=None, repr=False, compare=False)  # the table this views

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

    def subset(self, rows: np.ndarray | Sequence[int]) -> MixtureObservations:
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
            observations=None if self.observations is None else self.observations.subset(idx),
        )

    @classmethod
    def from_observations(cls, obs: Observations,
                          values: str | Sequence[str] | Mapping[str, np.ndarray] | None = None) -> MixtureObservations:
        """The mixer's view of the observation table (`from_observations`).

        values: names of columns of `obs.table` (the name "value", when no column has it, is the
        measured value), or arrays already read; default the measured value as "value".
        """
        if values is None:
            values = ["value"]
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, Mapping):
            values = {name: _value_column(obs, name) for name in values}
        seeds = None
        if obs.table is not None and "seed" in obs.table.column_names:
            seeds = _finite(obs.table, "seed", obs.source, np.arange(len(obs)) + 2)
        return cls(pools=list(obs.pools), weights=obs.weights, values=dict(values),
                   sizes=None if np.isnan(obs.seen).all() else obs.seen, ids=[str(r) for r in obs.run], seeds=seeds,
                   observations=obs)


def _value_column(obs: Observations, name: str) -> np.ndarray:
    if obs.table is not None and name in obs.table.column_names:
        return _finite(obs.table, name, obs.source, np.arange(len(obs)) + 2)
    if name == "value" and not np.isnan(obs.value).all():
        return obs.value
    have = ", ".join(obs.table.column_names) if obs.table is not None else "the measured value"
    raise ObservationError(f"{obs.source}: no value column {name!r} (columns: {have})")


def _finite(table: pa.Table, name: str, source: str, lines: np.ndarray) -> np.ndarray:
    """A column as finite floats; a bad cell is named by file, line and column."""
    values = table.column(name).to_pylist()
    out = np.empty(len(values))
    for i, v in enumerate(values):
        try:
            x = float("" if v is None else v)
        except (TypeError, ValueError):
            raise ObservationError(f"{source}, line {lines[i]}, column {name!r}: {'' if v is None else v!r} is not a "
                                   f"number") from None
        if not math.isfinite(x):
            raise ObservationError(f"{source}, line {lines[i]}, column {name!r}: {v!r} is not finite")
        out[i] = x
    return out


def _joined_rows(table: pa.Table, values: pa.Table, join: str, path: Path, vpath: Path) -> np.ndarray:
    """For each row of `table`, the row of `values` with the same `join` key."""
    if join not in table.column_names or join not in values.column_names:
        raise ObservationError(f"join column {join!r} must be in both {path} and {vpath}")
    by_key: dict[str, int] = {}
    for i, key in enumerate(str(k).strip() for k in values.column(join).cast(pa.string()).to_pylist()):
        if key in by_key:
            raise ObservationError(f"{vpath}, line {i + 2}: duplicate {join} {key!r}")
        by_key[key] = i
    order = []
    for i, key in enumerate(str(k).strip() for k in table.column(join).cast(pa.string()).to_pylist()):
        if key not in by_key:
            raise ObservationError(f"{path}, line {i + 2}: {join} {key!r} has no row in {vpath}")
        order.append(by_key[key])
    return np.asarray(order, dtype=np.int64)


def _weight_columns(header: list[str], path: Path, prefix: str, given: Sequence[str] | None) -> dict[str, str]:
    """Pool name -> weight column: columns starting with `prefix`, or the columns given (named as themselves)."""
    if given is None:
        found = {h[len(prefix):]: h for h in header if h.startswith(prefix)}
        if not found:
            raise ObservationError(f"{path}: no weight columns (names starting with {prefix!r}); set weight_prefix")
        return found
    missing = [c for c in given if c not in header]
    if missing:
        raise ObservationError(f"{path}: weight columns {missing} not in header {header}")
    return {c: c for c in given}


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
    on the `join` column (e.g. RegMix's `index`). The runs load through the observation
    table's one reader and builder; the result is its mixer view.
    """
    path = Path(path)
    table = read_table(path)
    header = table.column_names
    weights = _weight_columns(header, path, weight_prefix, weight_columns)
    pools = list(weights)
    mapping = {f"weight.{p}": c for p, c in weights.items()}
    if size_column and size_column in header:
        mapping["seen"] = size_column
    id_col = next((c for c in ("run", "run_id", "index") if c in header), None)
    if id_col:
        mapping["run"] = id_col
    obs = observations_from_table(table, mapping, source=str(path), require_value=False, require_sizes=False,
                                  weight_sum_tolerance=sum_tolerance)
    reserved = set(weights.values()) | {size_column} | set(BOOKKEEPING)
    if values_path is not None:
        if not join:
            raise ObservationError("values_path needs join=<key column>")
        vpath = Path(values_path)
        vtable = read_table(vpath)
        rows = _joined_rows(table, vtable, join, path, vpath)
        src, src_table, lines = vpath, vtable.take(pa.array(rows)), rows + 2
    else:
        src, src_table, lines = path, table, np.arange(table.num_rows) + 2
    if value_columns is None:
        value_columns = [h for h in src_table.column_names if h not in reserved and h != join]
    missing = [c for c in value_columns if c not in src_table.column_names]
    if missing:
        raise ObservationError(f"{src}: value columns {missing} not in header")
    values = {c: _finite(src_table, c, str(src), lines) for c in value_columns}
    view = MixtureObservations.from_observations(obs, values)
    if list(obs.pools) != pools:  # the builder orders pools by name; the mixer keeps the file's order
        view = _in_order(view, pools)
    if not id_col:
        view.ids = [str(i) for i in range(len(view))]
    return view


def _in_order(view: MixtureObservations, pools: list[str]) -> MixtureObservations:
    idx = [view.pools.index(p) for p in pools]
    return MixtureObservations(pools=pools, weights=view.weights[:, idx], values=view.values, sizes=view.sizes,
                               ids=view.ids, seeds=view.seeds, observations=view.observations)


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
    """Write observations (plus extra columns such as `predicted`) in the wide format, atomically."""
    cols: dict[str, list] = {"run": list(obs.ids)}
    for k, name in enumerate(obs.pools):
        cols[DEFAULT_WEIGHT_PREFIX + name] = [repr(float(x)) for x in obs.weights[:, k]]
    if obs.sizes is not None:
        cols[SIZE_COLUMN] = [repr(float(x)) for x in obs.sizes]
    if obs.seeds is not None:
        cols["seed"] = [repr(float(x)) for x in obs.seeds]
    for name, v in {**obs.values, **(extra or {})}.items():
        cols[name] = [repr(float(x)) for x in np.asarray(v)]
    return write_csv_rows(list(cols), list(zip(*cols.values())), path)
