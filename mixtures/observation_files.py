"""Observation table files: the one reader and writer of run tables (CSV or Parquet), and column mappings.

Pilot-run tables arrive in many column namings, so a file is read as it is (`read_table`, with
its limits) and mapped onto the observation table by a column mapping (`parse_columns`):
`thresher.mixtures.observations.load_observations` for the laws' table (`thresher fit`), and
`thresher.mixtures.mixture_observations.read_mixture_csv` for the OT mixer's wide table
(`thresher mix fit`) both start here. Tables written back (predictions, the wide format) go
through `write_table` / `write_csv_rows`, which write atomically. Files that live in object
storage are opened by `thresher.jobs` and handed here as bytes (`read_table_data`); their
outputs come back as bytes (`table_bytes`, `csv_rows_bytes`) for jobs to upload.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.metrics.errors import InputError
from thresher.metrics.files import MiB, open_limited, write_bytes_atomic

MAX_BYTES = 256 * MiB  # an observation file: pilot runs and their checkpoints, not a corpus
MAX_ROWS = 1_000_000

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

SCALAR_KEYS = ("run", "pool", "seen", "unique", "params", "value", "final", "seed")


class ObservationError(InputError):
    """Bad observation input; the message names the file and row."""


def is_parquet_name(name: str) -> bool:
    """Whether a file name says Parquet (`.parquet`, `.pq`, also before a last suffix); otherwise CSV."""
    return "".join(Path(name).suffixes[-2:]).lower().endswith((".parquet", ".pq"))


def _is_parquet(path: Path) -> bool:
    return is_parquet_name(path.name)


def read_table(path: str | Path) -> pa.Table:
    """CSV or Parquet (by extension) as an Arrow table, within the size and row limits."""
    path = Path(path)
    parquet = _is_parquet(path)
    try:
        with open_limited(path, MAX_BYTES, "observation table") as fh:
            return read_table_data(fh, str(path), parquet)
    except FileNotFoundError:
        raise ObservationError(f"{path}: no such file") from None
    except InputError as exc:  # over the size limit, or unreadable (read_table_data's own errors)
        raise ObservationError(str(exc)) from None
    except OSError as exc:  # opening it failed (permissions)
        raise ObservationError(f"{path}: cannot read as {'Parquet' if parquet else 'CSV'}: {exc}") from exc


def read_table_data(data: bytes | IO[bytes], source: str, parquet: bool) -> pa.Table:
    """An observation table from its bytes or an open binary file, within the row limit; `source` names it.

    For files the caller opened itself (`thresher.jobs` reads objects from storage): the
    caller keeps the byte limit (`MAX_BYTES`, refused before reading), this keeps the rest of
    `read_table`'s checks and messages.
    """
    fh = pa.BufferReader(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        if parquet:
            import pyarrow.parquet as pq

            rows = pq.ParquetFile(fh).metadata.num_rows
            if rows > MAX_ROWS:
                raise ObservationError(f"{source}: {rows} rows, over the limit of {MAX_ROWS} for an observation table")
            fh.seek(0)
            table = pq.read_table(fh)
        else:
            import pyarrow.csv as pcsv

            table = pcsv.read_csv(fh)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ObservationError(f"{source}: cannot read as {'Parquet' if parquet else 'CSV'}: {exc}") from exc
    if table.num_rows > MAX_ROWS:
        raise ObservationError(f"{source}: {table.num_rows} rows, over the limit of {MAX_ROWS} for an observation table")
    names = table.column_names
    if len(set(names)) != len(names):
        raise ObservationError(f"{source}: duplicate column names {sorted({n for n in names if names.count(n) > 1})}")
    return table


def table_bytes(table: pa.Table, parquet: bool) -> bytes:
    """An observation table (with any added columns, such as predictions) as the bytes of a CSV or Parquet file."""
    sink = pa.BufferOutputStream()
    if parquet:
        import pyarrow.parquet as pq

        pq.write_table(table, sink)
    else:
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, sink)
    return sink.getvalue().to_pybytes()


def write_table(table: pa.Table, path: str | Path) -> Path:
    """An observation table (with any added columns, such as predictions) as CSV or Parquet, by extension."""
    path = Path(path)
    return write_bytes_atomic(table_bytes(table, _is_parquet(path)), path)


def csv_rows_bytes(header: Sequence[str], rows: Sequence[Sequence[object]]) -> bytes:
    """A CSV of already formatted cells, as bytes (UTF-8)."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(list(header))
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def write_csv_rows(header: Sequence[str], rows: Sequence[Sequence[object]], path: str | Path) -> Path:
    """A CSV of already formatted cells, written atomically."""
    return write_bytes_atomic(csv_rows_bytes(header, rows), path)


def parse_columns(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """`key=column,...` (or a preset name) -> {canonical key: column expression}."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        return dict(spec)
    spec = PRESETS.get(spec.strip(), spec)
    keys = f"keys: {', '.join(SCALAR_KEYS)}, weight.POOL, unique.POOL"
    out: dict[str, str] = {}
    for part in filter(None, (s.strip() for s in spec.split(","))):
        key, sep, col = part.partition("=")
        key, col = key.strip(), col.strip()
        if not sep or not key or not col:
            raise ObservationError(f"column mapping {part!r}: expected KEY=COLUMN ({keys})")
        if key not in SCALAR_KEYS and not key.startswith(("weight.", "unique.")):
            raise ObservationError(f"column mapping {part!r}: unknown key {key!r} ({keys})")
        out[key] = col
    return out


def column(table: pa.Table, expr: str, source: str, numeric: bool) -> np.ndarray:
    """A mapped column as float64 (numeric) or as text; a run id may join several columns with '+'."""
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


def rows_where(table: pa.Table, where: Mapping[str, object], source: str) -> pa.Table:
    """The rows whose column equals the given value (compared as text), for every (column, value)."""
    mask = np.ones(table.num_rows, bool)
    for col, want in where.items():
        if col not in table.column_names:
            raise ObservationError(f"{source}: filter column {col!r} not found (columns: {', '.join(table.column_names)})")
        got = np.asarray(table.column(col).cast(pa.string()).to_pylist(), dtype=object)
        mask &= got == str(want)
    return table.filter(pa.array(mask))
