"""The observation table: one row per measured training run (or checkpoint of one).

Every law, fit and plan in `mixtures` consumes this one table, so a pilot-run log from any
trainer only has to be mapped onto it once. A row holds the pool weights of the run's mixture,
the unique size of every pool, how much was seen (tokens or samples), the model size when
known, the measured value (loss or error) and whether the row is the run's final measurement.

The OT mixer reads the same runs through `MixtureObservations.from_observations(obs)` (its
wide table is a view of this one), and both CLI layouts load through `observations_from_table`: the mapped
table of `thresher fit` (`load_observations`) and the `weight_` table of `thresher mix fit`
(`thresher.mixtures.mixture_observations.read_mixture_csv`). A mixer's table may leave the
unique sizes or `seen` unknown (all NaN); a law asks for them (`check_for_laws`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from thresher.mixtures.observation_files import (  # noqa: F401  (PRESETS, parse_columns, read_table re-exported)
    PRESETS,
    SCALAR_KEYS,
    ObservationError,
    column,
    parse_columns,
    read_table,
    rows_where,
)

DEFAULT_POOL = "all"
UNITS = ("tokens", "samples")

_REQUIRED_KEYS = ("seen", "value")


@dataclass(frozen=True)
class Observations:
    """A table of training-run measurements over named pools (rows x pools arrays, float64)."""

    run: np.ndarray  # (n,) str run ids: bootstrap resamples whole runs
    pools: tuple[str, ...]
    weights: np.ndarray  # (n, P) mixture weights, rows sum to 1
    unique: np.ndarray  # (n, P) unique size of each pool (same unit as seen)
    seen: np.ndarray  # (n,) samples or tokens seen at this measurement
    value: np.ndarray  # (n,) measured loss or error, > 0
    params: np.ndarray  # (n,) model parameters, NaN when unknown
    final: np.ndarray  # (n,) True for the run's last measurement
    unit: str = "tokens"
    source: str = "<arrays>"
    table: pa.Table | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        n, p = self.weights.shape
        if p != len(self.pools):
            raise ObservationError(f"{self.source}: {p} weight columns for {len(self.pools)} pools")
        for name in ("run", "seen", "value", "params", "final"):
            if len(getattr(self, name)) != n:
                raise ObservationError(f"{self.source}: column {name!r} has {len(getattr(self, name))} rows, expected {n}")
        if self.unique.shape != (n, p):
            raise ObservationError(f"{self.source}: unique has shape {self.unique.shape}, expected {(n, p)}")
        if self.unit not in UNITS:
            raise ObservationError(f"{self.source}: unit must be one of {UNITS}, got {self.unit!r}")
        _validate(self)

    def __len__(self) -> int:
        return len(self.seen)

    @classmethod
    def from_arrays(
        cls,
        *,
        seen: Sequence[float] | np.ndarray,
        value: Sequence[float] | np.ndarray | None = None,
        unique: Sequence[float] | np.ndarray | Mapping[str, Sequence[float] | float],
        weights: Mapping[str, Sequence[float] | float] | np.ndarray | None = None,
        pools: Sequence[str] | None = None,
        params: Sequence[float] | np.ndarray | float | None = None,
        run: Sequence[str] | None = None,
        final: Sequence[bool] | np.ndarray | None = None,
        unit: str = "tokens",
    ) -> Observations:
        """Build a table in memory (planning and tests); `value` may be omitted for prediction only."""
        seen_a = np.atleast_1d(np.asarray(seen, dtype=np.float64))
        n = len(seen_a)
        if isinstance(unique, Mapping):
            pools = tuple(unique)
            unique_a = np.column_stack([np.broadcast_to(np.asarray(unique[k], np.float64), (n,)) for k in pools])
        else:
            unique_a = np.asarray(unique, dtype=np.float64)
            unique_a = unique_a.reshape(n, -1) if unique_a.ndim <= 1 else unique_a
            if pools is not None:
                pools = tuple(pools)
            else:
                pools = (DEFAULT_POOL,) if unique_a.shape[1] == 1 else tuple(f"pool{i}" for i in range(unique_a.shape[1]))
        if weights is None:
            if len(pools) != 1:
                raise ObservationError("<arrays>: weights are required with more than one pool")
            weights_a = np.ones((n, 1))
        elif isinstance(weights, Mapping):
            weights_a = np.column_stack([np.broadcast_to(np.asarray(weights.get(k, 0.0), np.float64), (n,)) for k in pools])
        else:
            weights_a = np.asarray(weights, dtype=np.float64).reshape(n, len(pools))
        sums = weights_a.sum(axis=1, keepdims=True)
        weights_a = np.divide(weights_a, sums, out=np.zeros_like(weights_a), where=sums > 0)
        params_a = np.full(n, np.nan) if params is None else np.broadcast_to(np.asarray(params, np.float64), (n,)).copy()
        value_a = np.full(n, np.nan) if value is None else np.asarray(value, np.float64)
        run_a = np.array([str(i) for i in range(n)], dtype=object) if run is None else np.asarray(run, dtype=object)
        final_a = np.ones(n, bool) if final is None else np.asarray(final, bool)
        return cls(run=run_a, pools=tuple(pools), weights=weights_a, unique=unique_a, seen=seen_a, value=value_a,
                   params=params_a, final=final_a, unit=unit)

    @property
    def epochs(self) -> np.ndarray:
        """(n, P) passes over each pool: weight x seen / unique."""
        return self.weights * self.seen[:, None] / self.unique

    @property
    def unique_used(self) -> np.ndarray:
        """(n, P) distinct data drawn from each pool; never more than the pool holds."""
        return np.minimum(self.weights * self.seen[:, None], self.unique)

    @property
    def single_pool(self) -> np.ndarray:
        """(n,) True where the run trained on one pool only."""
        return (self.weights > 0).sum(axis=1) == 1

    @property
    def n_runs(self) -> int:
        return len(np.unique(self.run.astype(str)))

    def subset(self, rows: np.ndarray | Sequence[int]) -> Observations:
        """Rows by boolean mask or index array (order kept)."""
        idx = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=np.int64)
        table = self.table.take(pa.array(idx)) if self.table is not None else None
        return Observations(run=self.run[idx], pools=self.pools, weights=self.weights[idx], unique=self.unique[idx],
                            seen=self.seen[idx], value=self.value[idx], params=self.params[idx], final=self.final[idx],
                            unit=self.unit, source=self.source, table=table)

    def with_pools(self, pools: Sequence[str]) -> Observations:
        """The same rows over `pools` (a superset in any order); absent pools get weight 0."""
        missing = [p for p in self.pools if p not in pools]
        if missing:
            raise ObservationError(f"{self.source}: pools {missing} are not among {list(pools)}")
        n = len(self)
        w = np.zeros((n, len(pools)))
        u = np.ones((n, len(pools)))
        for j, name in enumerate(self.pools):
            k = list(pools).index(name)
            w[:, k], u[:, k] = self.weights[:, j], self.unique[:, j]
        return Observations(run=self.run, pools=tuple(pools), weights=w, unique=u, seen=self.seen, value=self.value,
                            params=self.params, final=self.final, unit=self.unit, source=self.source, table=self.table)

    def check_for_laws(self) -> None:
        """A law needs how much each run saw and every used pool's unique size; a mixer's table may lack them."""
        missing = [what for what, unknown in (("`seen`", np.isnan(self.seen).any()),
                                              ("unique sizes", np.isnan(self.unique[self.weights > 0]).any()))
                   if unknown]
        if missing:
            raise ObservationError(f"{self.source}: a utility law needs {' and '.join(missing)} for every run; map "
                                   f"seen=COLUMN and unique=COLUMN (or unique.POOL per pool)")


def _validate(obs: Observations) -> None:
    def fail(rows: np.ndarray, what: str) -> None:
        i = int(np.flatnonzero(rows)[0])
        raise ObservationError(f"{obs.source}: row {i + 1} (run {obs.run[i]!s}): {what}")

    if not np.isnan(obs.seen).all() and not np.all(np.isfinite(obs.seen) & (obs.seen > 0)):  # all NaN: not known
        fail(~(np.isfinite(obs.seen) & (obs.seen > 0)), "`seen` must be a positive number")
    bad = ~np.isnan(obs.value) & ~(np.isfinite(obs.value) & (obs.value > 0))
    if bad.any():
        fail(bad, "`value` must be a positive number (loss or error)")
    bad = ~np.isnan(obs.params) & ~(np.isfinite(obs.params) & (obs.params > 0))
    if bad.any():
        fail(bad, "`params` must be positive or missing")
    bad = ~np.all(np.isfinite(obs.weights) & (obs.weights >= 0), axis=1) | (obs.weights.sum(axis=1) <= 0)
    if bad.any():
        fail(bad, "pool weights must be non-negative with a positive sum")
    active = obs.weights > 0
    bad = np.any(active & ~(np.isfinite(obs.unique) & (obs.unique > 0)), axis=1)
    if bad.any() and not np.isnan(obs.unique).all():  # all NaN: a mixer's table, sizes not known
        fail(bad, "every pool with a positive weight needs a positive unique size")


def load_observations(
    path: str | Path,
    columns: str | Mapping[str, str] | None = None,
    *,
    pool: str | None = None,
    unit: str = "tokens",
    where: Mapping[str, object] | None = None,
    require_value: bool = True,
) -> Observations:
    """Read a run table (CSV or Parquet) through a column mapping.

    `columns` maps canonical keys to file columns, e.g. ``"seen=tokens,unique=unique_tokens,
    value=val_loss,params=params"`` or a preset name (see `PRESETS`). Keys: run (several columns
    may be joined with '+'), pool, seen, unique, params, value, final (1 = last measurement of
    the run; derived from `seen` when absent), seed; for mixture tables ``weight.POOL`` and
    ``unique.POOL`` per pool. Unmapped keys default to a column of the same name when present.
    `pool` names the single pool of a table without pool columns. `where` keeps rows whose
    column equals the given value. With `require_value=False` a table without a value column
    loads with NaN values (for prediction).
    """
    return observations_from_run_table(read_table(path), str(Path(path)), columns, pool=pool, unit=unit, where=where,
                                       require_value=require_value)


def observations_from_run_table(
    table: Any,
    source: str,
    columns: str | Mapping[str, str] | None = None,
    *,
    pool: str | None = None,
    unit: str = "tokens",
    where: Mapping[str, object] | None = None,
    require_value: bool = True,
) -> Observations:
    """`load_observations` for a run table already read (a `pyarrow.Table`): the file may live anywhere."""
    mapping = parse_columns(columns)
    for key in SCALAR_KEYS:
        if key not in mapping and key in table.column_names:
            mapping[key] = key
    if where:
        table = rows_where(table, where, source)
    return observations_from_table(table, mapping, source=source, pool=pool, unit=unit, require_value=require_value)


def observations_from_table(
    table: pa.Table,
    mapping: Mapping[str, str],
    *,
    source: str,
    pool: str | None = None,
    unit: str = "tokens",
    require_value: bool = True,
    require_sizes: bool = True,
    weight_sum_tolerance: float | None = None,
) -> Observations:
    """The observation table from a file's table and an explicit column mapping (no defaults).

    require_sizes: `seen` and the unique sizes must be mapped (a law's table); without it they
    are NaN when absent (a mixer's table). weight_sum_tolerance: each row's weights must
    already sum to 1 within it (the mixer's table; they are still renormalised).
    """
    n = table.num_rows
    if n == 0:
        raise ObservationError(f"{source}: no rows to load")
    for key in _REQUIRED_KEYS:
        if key not in mapping and ((key == "seen" and require_sizes) or (key == "value" and require_value)):
            raise ObservationError(f"{source}: no column for {key!r}; pass a mapping such as --columns seen=tokens,value=val_loss")
    if any(k.startswith("weight.") for k in mapping):
        pools, weights, unique = _mixture_columns(table, mapping, source, require_sizes, weight_sum_tolerance)
    else:
        pools, weights, unique = _pool_columns(table, mapping, source, pool)

    def numbers(key: str) -> np.ndarray:
        return column(table, mapping[key], source, True) if key in mapping else np.full(n, np.nan)

    seen, value, params = numbers("seen"), numbers("value"), numbers("params")
    if "run" in mapping:
        run = column(table, mapping["run"], source, False).astype(str).astype(object)
    else:
        run = np.array([f"row{i + 1}" for i in range(n)], dtype=object)
    if "seed" in mapping and "run" not in mapping:
        run = column(table, mapping["seed"], source, False)
    final = column(table, mapping["final"], source, True) > 0 if "final" in mapping else _last_of_each_run(run, seen)
    if "value" in mapping and np.isnan(value).any():
        i = int(np.flatnonzero(np.isnan(value))[0])
        raise ObservationError(f"{source}: row {i + 1} (line {i + 2}): missing value in column {mapping['value']!r}")
    return Observations(run=run, pools=pools, weights=weights, unique=unique, seen=seen, value=value, params=params,
                        final=final, unit=unit, source=source, table=table)


def _mixture_columns(table: pa.Table, mapping: Mapping[str, str], source: str, require_sizes: bool,
                     tolerance: float | None) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Pools, weights and unique sizes of a table with a weight column per pool."""
    pools = tuple(sorted({k.split(".", 1)[1] for k in mapping if k.startswith("weight.")}))
    weights = np.column_stack([column(table, mapping[f"weight.{p}"], source, True) for p in pools])
    if tolerance is not None:
        _check_weight_sums(weights, tolerance, source)
    uniq = []
    for p in pools:
        key = f"unique.{p}"
        if key in mapping:
            uniq.append(column(table, mapping[key], source, True))
        elif require_sizes:
            raise ObservationError(f"{source}: mixture pool {p!r} has weight.{p} but no unique.{p} column")
        else:
            uniq.append(np.full(table.num_rows, np.nan))
    sums = weights.sum(axis=1, keepdims=True)
    return pools, np.divide(weights, sums, out=np.zeros_like(weights), where=sums > 0), np.column_stack(uniq)


def _check_weight_sums(weights: np.ndarray, tolerance: float, source: str) -> None:
    """Each row a mixture already: non-negative weights summing to 1 (within `tolerance`)."""
    for i, row in enumerate(weights):
        if (row < 0).any():
            raise ObservationError(f"{source}, line {i + 2}: negative mixture weight")
        if abs(row.sum() - 1.0) > tolerance:
            raise ObservationError(f"{source}, line {i + 2}: weights sum to {row.sum():.6g}, expected 1 "
                                   f"(tolerance {tolerance})")


def _pool_columns(table: pa.Table, mapping: Mapping[str, str], source: str,
                  pool: str | None) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Pools, one-hot weights and unique sizes of a table with one pool per row (a pool column, or one pool)."""
    n = table.num_rows
    if "unique" not in mapping:
        raise ObservationError(f"{source}: no column for 'unique' (unique size of the pool); map it with --columns unique=COLUMN")
    unique_1 = column(table, mapping["unique"], source, True)
    if "pool" in mapping:
        labels = column(table, mapping["pool"], source, False).astype(str)
        pools = tuple(sorted({str(x) for x in labels}))
        idx = np.searchsorted(np.asarray(pools), labels)
    else:
        pools = (pool or DEFAULT_POOL,)
        idx = np.zeros(n, dtype=np.int64)
    weights = np.zeros((n, len(pools)))
    weights[np.arange(n), idx] = 1.0
    unique = np.ones((n, len(pools)))
    unique[np.arange(n), idx] = unique_1
    return pools, weights, unique


def _last_of_each_run(run: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """True on each run's last measurement (largest `seen`): the final flag when the table has none."""
    final = np.zeros(len(run), bool)
    order = np.lexsort((seen, run.astype(str)))
    run_sorted = run.astype(str)[order]
    last = np.r_[run_sorted[1:] != run_sorted[:-1], True]
    final[order[last]] = True
    return final
