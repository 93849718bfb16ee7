"""Embedding files (.npy, .npz, Parquet): the one reader, with its limits.

Embedding files come from users and from data vendors, so they are read as data only:
numpy with pickling disabled (object arrays are refused), the file's size (and what an
.npz unpacks to) capped before any byte is parsed, the rows capped, and a real (n, d)
array required. `thresher mix` and `thresher vendors` both read through here.

Layouts: .npy holds an (n, d) array; .npz holds `x` (or `embeddings`) (n, d) and
optionally `labels` (n,) and `weights` (n,); Parquet holds a list column of embeddings
(default `embedding`) and optionally `label` and `weight` columns.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thresher.metrics.errors import InputError

SUFFIXES = (".npy", ".npz", ".parquet")


class DataFileError(InputError):
    """A data file that cannot be used as given: missing, too large, unreadable or the wrong shape."""


@dataclass(frozen=True)
class FileLimits:
    """Caps on a file read whole; the hints say what to do when a file is over them."""

    max_bytes: int = 8 * 2**30
    max_rows: int = 5_000_000
    bytes_hint: str = "subsample it first"
    rows_hint: str = "subsample first"


@dataclass
class EmbeddingArrays:
    """What an embedding file holds: embeddings (n, d) as float64, optional labels and sample weights."""

    path: Path
    x: np.ndarray
    labels: np.ndarray | None = None
    weights: np.ndarray | None = None


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def check_size(path: Path, limits: FileLimits) -> None:
    """Refuse a file over the byte cap before reading it."""
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise DataFileError(f"{path}: {_mb(size)} exceeds the {_mb(limits.max_bytes)} limit ({limits.bytes_hint})")


def read_embeddings(path: str | Path, limits: FileLimits = FileLimits(), column: str = "embedding") -> EmbeddingArrays:
    """Read an embedding file without executing anything in it; raises DataFileError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such embedding file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataFileError(f"{path}: unknown embedding format {suffix!r}; use .npy, .npz or .parquet")
    check_size(path, limits)
    if suffix == ".parquet":
        arrays = _read_parquet(path, column)
    else:
        arrays = _read_numpy(path, limits)
    x = arrays.x
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataFileError(f"{path}: embeddings must be a real (n, d) array, got {x.dtype} with shape {x.shape}")
    if x.shape[0] > limits.max_rows:
        raise DataFileError(f"{path}: {x.shape[0]} rows, more than {limits.max_rows} ({limits.rows_hint})")
    if arrays.labels is not None and arrays.labels.shape != (x.shape[0],):
        raise DataFileError(f"{path}: {arrays.labels.shape} labels for {x.shape[0]} rows")
    arrays.x = x.astype(np.float64)
    return arrays


def _read_numpy(path: Path, limits: FileLimits) -> EmbeddingArrays:
    try:
        if path.suffix.lower() == ".npy":
            return EmbeddingArrays(path, np.load(path, allow_pickle=False))
        with zipfile.ZipFile(path) as zf:
            total = sum(i.file_size for i in zf.infolist())
        if total > limits.max_bytes:
            raise DataFileError(f"{path}: unpacks to {_mb(total)}, over the {_mb(limits.max_bytes)} limit "
                                f"({limits.bytes_hint})")
        with np.load(path, allow_pickle=False) as z:
            key = "x" if "x" in z.files else "embeddings" if "embeddings" in z.files else None
            if key is None:
                raise DataFileError(f"{path}: .npz needs an array named 'x' (found {z.files})")
            return EmbeddingArrays(path, z[key], z["labels"] if "labels" in z.files else None,
                                   z["weights"] if "weights" in z.files else None)
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        if isinstance(exc, DataFileError):
            raise
        raise DataFileError(f"{path}: cannot read embeddings ({exc}); object arrays are refused") from None


def _read_parquet(path: Path, column: str) -> EmbeddingArrays:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataFileError(f"{path}: cannot read embeddings ({exc})") from None
    if column not in table.column_names:
        raise DataFileError(f"{path}: no {column!r} column (have {table.column_names})")
    col = table.column(column).combine_chunks()
    nulls = np.flatnonzero(np.asarray(col.is_null()))
    if nulls.size:
        raise DataFileError(f"{path}, row {nulls[0]}: missing embedding")
    lengths = np.asarray(col.value_lengths()) if hasattr(col, "value_lengths") else None
    if lengths is not None and lengths.size and (lengths != lengths[0]).any():
        bad = int(np.flatnonzero(lengths != lengths[0])[0])
        raise DataFileError(f"{path}, row {bad}: embedding has {lengths[bad]} values, row 0 has {lengths[0]}")
    try:
        flat = np.asarray(col.flatten(), dtype=np.float64)
    except (pa.ArrowException, AttributeError, TypeError, ValueError) as exc:
        raise DataFileError(f"{path}: column {column!r} does not hold lists of numbers ({exc})") from None
    x = flat.reshape(len(col), -1) if len(col) else flat.reshape(0, 0)
    labels = np.asarray(table.column("label").to_pylist()) if "label" in table.column_names else None
    weights = np.asarray(table.column("weight").to_numpy(), dtype=np.float64) if "weight" in table.column_names else None
    return EmbeddingArrays(path, x, labels, weights)
