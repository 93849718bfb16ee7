"""The observation table: one row per measured training run (or checkpoint of one).

Every law, fit and plan in `mixtures` consumes this one table, so a pilot-run log from any
trainer only has to be mapped onto it once. A row holds the pool weights of the run's mixture,
the unique size of every pool, how much was seen (tokens or samples), the model size when
known, the measured value (loss or error) and whether the row is the run's final measurement.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from thresher.metrics.errors import InputError

DEFAULT_POOL = "all"
UNITS = ("tokens", "samples")

# Column mappings for the third-party files we validate against; `--columns NAME` accepts these.
PRESETS: dict[str, str] = {
    # datablations_final_losses.csv: one final C4 validation loss per run.
    "datablations-final": "run=run,params=params,seen=tokens,unique=unique_tokens,value=val_loss",
    # datablations_loss_curves_c4.csv: checkpoints of 24 IsoFLOP runs; a run is (params, epochs).
    "datablations-curves": (
        "run=dataset+params+epochs,pool=dataset,params=params,seen=tokens_seen,"
        "unique=unique_tokens,value=val_loss"
    ),
}

_SCALAR_KEYS = ("run", "pool", "seen", "unique", "params", "value", "final", "seed")
_REQUIRED_KEYS = ("seen", "value")


class ObservationError(InputError):
    """Bad observation input; the message names the file and row."""


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
    ) -> "Observations":
        """Build a table in memory (planning and tests); `value` may be omitted for prediction only."""
        seen_a = np.atleast_1d(np.asarray(seen, dtype=np.float64))
        n = len(seen_a)
        if isinstance(unique, Mapping):
            pools = tuple(unique)
            unique_a = np.column_stack([np.broadcast_to(np.asarray(unique[k], np.float64), (n,)) for k in pools])
        else:
            unique_a = np.asarray(unique, dtype=np.float64)
            unique_a = unique_a.reshape(n, -1) if unique_a.ndim <= 1 else unique_a
            pools = tuple(pools) if pools is not None else (DEFAULT_POOL,) if unique_a.shape[1] == 1 else tuple(f"pool{i}" for i in range(unique_a.shape[1]))
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

    def subset(self, rows: np.ndarray | Sequence[int]) -> "Observations":
        """Rows by boolean mask or index array (order kept)."""
        idx = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=np.int64)
        table = self.table.take(pa.array(idx)) if self.table is not None else None
        return Observations(run=self.run[idx], pools=self.pools, weights=self.weights[idx], unique=self.unique[idx],
                            seen=self.seen[idx], value=self.value[idx], params=self.params[idx], final=self.final[idx],
                            unit=self.unit, source=self.source, table=table)

    def with_pools(self, pools: Sequence[str]) -> "Observations":
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


def _validate(obs: Observations) -> None:
    def fail(rows: np.ndarray, what: str) -> None:
        i = int(np.flatnonzero(rows)[0])
        raise ObservationError(f"{obs.source}: row {i + 1} (run {obs.run[i]!s}): {what}")

    if not np.all(np.isfinite(obs.seen) & (obs.seen > 0)):
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
    if bad.any():
        fail(bad, "every pool with a positive weight needs a positive unique size")


def parse_columns(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """`key=column,...` (or a preset name) -> {canonical key: column expression}."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        return dict(spec)
    spec = PRESETS.get(spec.strip(), spec)
    out: dict[str, str] = {}
    for part in filter(None, (s.strip() for s in spec.split(","))):
        key, sep, col = part.partition("=")
        key, col = key.strip(), col.strip()
        if not sep or not key or not col:
            raise ObservationError(f"column mapping {part!r}: expected KEY=COLUMN (keys: {', '.join(_SCALAR_KEYS)}, weight.POOL, unique.POOL)")
        if key not in _SCALAR_KEYS and not key.startswith(("weight.", "unique.")):
            raise ObservationError(f"column mapping {part!r}: unknown key {key!r} (keys: {', '.join(_SCALAR_KEYS)}, weight.POOL, unique.POOL)")
        out[key] = col
    return out


def read_table(path: str | Path) -> pa.Table:
    """CSV or Parquet (by extension) as an Arrow table."""
    path = Path(path)
    if not path.exists():
        raise ObservationError(f"{path}: no such file")
    suffix = "".join(path.suffixes[-2:]).lower()
    try:
        if suffix.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            return pq.read_table(path)
        import pyarrow.csv as pcsv

        return pcsv.read_csv(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ObservationError(f"{path}: cannot read as {'Parquet' if 'parquet' in suffix else 'CSV'}: {exc}") from exc


def _column(table: pa.Table, expr: str, source: str, numeric: bool) -> np.ndarray:
    names = [c.strip() for c in expr.split("+")]
    for c in names:
        if c not in table.column_names:
            raise ObservationError(f"{source}: no column {c!r} (columns: {', '.join(table.column_names)})")
    if not numeric:
        parts = [np.asarray(table.column(c).cast(pa.string()).to_pylist(), dtype=object) for c in names]
        out = parts[0]
        for p in parts[1:]:
            out = np.char.add(np.char.add(out.astype(str), "/"), p.astype(str)).astype(object)
        return out
    if len(names) != 1:
        raise ObservationError(f"{source}: only the run id may join columns with '+', got {expr!r}")
    col = table.column(names[0])
    if pa.types.is_boolean(col.type):
        return np.asarray(col.to_pylist(), dtype=np.float64)
    try:
        return np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        values = col.to_pylist()
        for i, v in enumerate(values):
            try:
                float(v)
            except (TypeError, ValueError):
                raise ObservationError(f"{source}: row {i + 1}, column {names[0]!r}: {v!r} is not a number") from None
        raise


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
    path = Path(path)
    source = str(path)
    table = read_table(path)
    mapping = parse_columns(columns)
    for key in _SCALAR_KEYS:
        if key not in mapping and key in table.column_names:
            mapping[key] = key
    if where:
        mask = np.ones(table.num_rows, bool)
        for col, want in where.items():
            if col not in table.column_names:
                raise ObservationError(f"{source}: filter column {col!r} not found (columns: {', '.join(table.column_names)})")
            got = np.asarray(table.column(col).cast(pa.string()).to_pylist(), dtype=object)
            mask &= got == str(want)
        table = table.filter(pa.array(mask))
    n = table.num_rows
    if n == 0:
        raise ObservationError(f"{source}: no rows to load")
    for key in _REQUIRED_KEYS:
        if key not in mapping and (key != "value" or require_value):
            raise ObservationError(f"{source}: no column for {key!r}; pass a mapping such as --columns seen=tokens,value=val_loss")

    mix_pools = sorted({k.split(".", 1)[1] for k in mapping if k.startswith("weight.")})
    if mix_pools:
        pools = tuple(mix_pools)
        weights = np.column_stack([_column(table, mapping[f"weight.{p}"], source, True) for p in pools])
        uniq = []
        for p in pools:
            key = f"unique.{p}"
            if key not in mapping:
                raise ObservationError(f"{source}: mixture pool {p!r} has weight.{p} but no unique.{p} column")
            uniq.append(_column(table, mapping[key], source, True))
        unique = np.column_stack(uniq)
        sums = weights.sum(axis=1, keepdims=True)
        weights = np.divide(weights, sums, out=np.zeros_like(weights), where=sums > 0)
    else:
        if "unique" not in mapping:
            raise ObservationError(f"{source}: no column for 'unique' (unique size of the pool); map it with --columns unique=COLUMN")
        unique_1 = _column(table, mapping["unique"], source, True)
        if "pool" in mapping:
            labels = _column(table, mapping["pool"], source, False).astype(str)
            pools = tuple(sorted({str(x) for x in labels}))
            idx = np.searchsorted(np.asarray(pools), labels)
        else:
            pools = (pool or DEFAULT_POOL,)
            idx = np.zeros(n, dtype=np.int64)
        weights = np.zeros((n, len(pools)))
        weights[np.arange(n), idx] = 1.0
        unique = np.ones((n, len(pools)))
        unique[np.arange(n), idx] = unique_1

    seen = _column(table, mapping["seen"], source, True)
    value = _column(table, mapping["value"], source, True) if "value" in mapping else np.full(n, np.nan)
    params = _column(table, mapping["params"], source, True) if "params" in mapping else np.full(n, np.nan)
    run = _column(table, mapping["run"], source, False).astype(str).astype(object) if "run" in mapping else np.array([f"row{i + 1}" for i in range(n)], dtype=object)
    if "seed" in mapping and "run" not in mapping:
        run = _column(table, mapping["seed"], source, False)
    if "final" in mapping:
        final = _column(table, mapping["final"], source, True) > 0
    else:
        # The last measurement of each run is its final one.
        final = np.zeros(n, bool)
        order = np.lexsort((seen, run.astype(str)))
        run_sorted = run.astype(str)[order]
        last = np.r_[run_sorted[1:] != run_sorted[:-1], True]
        final[order[last]] = True
    if "value" in mapping and np.isnan(value).any():
        i = int(np.flatnonzero(np.isnan(value))[0])
        raise ObservationError(f"{source}: row {i + 1} (line {i + 2}): missing value in column {mapping['value']!r}")
    return Observations(run=run, pools=pools, weights=weights, unique=unique, seen=seen, value=value, params=params,
                        final=final, unit=unit, source=source, table=table)
