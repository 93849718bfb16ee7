"""Embedding files (.npy, .npz, Parquet): the one reader, with its limits; and the storage glue of the decision commands.

Embedding files come from users and from data vendors, so they are read as data only:
numpy with pickling disabled (object arrays are refused), the file's size (and what an
.npz unpacks to) capped before any byte is parsed, the rows capped, and a real (n, d)
array required. `thresher mix` and `thresher vendors` both read through here.

Layouts: .npy holds an (n, d) array; .npz holds `x` (or `embeddings`) (n, d) and
optionally `labels` (n,) and `weights` (n,); Parquet holds a list column of embeddings
(default `embedding`) and optionally `label` and `weight` columns.

Every path a user gives `fit`, `predict`, `plan`, `mix`, `vendors` and the model trainers
may be a URI (`s3://`, `gs://`, `memory://`, ...). The maths rooms never see one: the
helpers at the end (`place`, `read_capped`, `commit`, `local_copy`) open it through
`thresher.pipeline.storage` and hand them bytes or a file object, and upload what their
writers give back as one whole object. A local path takes the very code path it always took
(same bytes, same messages); only a remote one goes through a Location.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from thresher.metrics.errors import InputError
from thresher.metrics.files import FormatError, write_bytes_atomic
from thresher.pipeline.storage import Location, StorageAccessError, StorageError
from thresher.pipeline.storage import place as _place

Where = Path | Location
"""A file a user named: a local `Path` (exactly as before) or a remote `Location`."""

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

    path: Where
    x: np.ndarray
    labels: np.ndarray | None = None
    weights: np.ndarray | None = None


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def size_of(path: Where) -> int:
    """The file's size in bytes, measured without reading it (a local stat, or the store's listing)."""
    return path.stat().st_size if isinstance(path, Path) else path.stat().size


def check_size(path: Where, limits: FileLimits) -> None:
    """Refuse a file over the byte cap before reading it."""
    size = size_of(path)
    if size > limits.max_bytes:
        raise DataFileError(f"{path}: {_mb(size)} exceeds the {_mb(limits.max_bytes)} limit ({limits.bytes_hint})")


def read_embeddings(path: str | os.PathLike | Location, limits: FileLimits = FileLimits(),
                    column: str = "embedding") -> EmbeddingArrays:
    """Read an embedding file (a path or a URI) without executing anything in it; raises DataFileError naming the file."""
    path = place(path)
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


@contextlib.contextmanager
def _numpy_source(path: Where) -> Iterator[Path | IO[bytes]]:
    """What numpy and zipfile read: a local path as it is, a remote object as one seekable file (ranged reads)."""
    if isinstance(path, Path):
        yield path
        return
    with path.open_input() as fh:
        yield fh


def _read_numpy(path: Where, limits: FileLimits) -> EmbeddingArrays:
    try:
        with _numpy_source(path) as source:
            if path.suffix.lower() == ".npy":
                return EmbeddingArrays(path, np.load(source, allow_pickle=False))
            with zipfile.ZipFile(source) as zf:
                total = sum(i.file_size for i in zf.infolist())
            if total > limits.max_bytes:
                raise DataFileError(f"{path}: unpacks to {_mb(total)}, over the {_mb(limits.max_bytes)} limit "
                                    f"({limits.bytes_hint})")
            if not isinstance(source, Path):
                source.seek(0)
            with np.load(source, allow_pickle=False) as z:
                key = "x" if "x" in z.files else "embeddings" if "embeddings" in z.files else None
                if key is None:
                    raise DataFileError(f"{path}: .npz needs an array named 'x' (found {z.files})")
                return EmbeddingArrays(path, z[key], z["labels"] if "labels" in z.files else None,
                                       z["weights"] if "weights" in z.files else None)
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        if isinstance(exc, (DataFileError, StorageError, StorageAccessError)):
            raise  # ours already, or the store's own one-line error naming the object
        raise DataFileError(f"{path}: cannot read embeddings ({exc}); object arrays are refused") from None


def _read_parquet(path: Where, column: str) -> EmbeddingArrays:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if isinstance(path, Path):
            table = pq.read_table(path)
        else:
            with path.open_native() as source:
                table = pq.read_table(source)
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, (StorageError, StorageAccessError)):
            raise
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


# ---- storage glue: what jobs/ does so the maths rooms never see a URI ---------------------------------------------

def place(where: str | os.PathLike | Location) -> Where:
    """The file a user named: a local `Path`, exactly as the commands always made one, or a remote `Location`."""
    return _place(where)


def shown(where: Where) -> str:
    """How messages and printed outputs name a file: the local path as always, or the URI."""
    return str(where)


def read_capped(where: Where, max_bytes: int, what: str, missing: str = "") -> bytes:
    """A whole file of a format with a size limit, refused as its format's reader refuses it.

    Local: `metrics.files.read_limited`, unchanged. Remote: the object's size is looked up and
    an oversize one refused before any byte is fetched (same message), then at most
    `max_bytes + 1` bytes are read and refused if more came (the object grew).
    """
    from thresher.pipeline.storage.capped import read_limited_at

    return read_limited_at(where, max_bytes, what, missing)


def commit(where: Where, data: bytes, local: Callable[[bytes, Path], Any] = write_bytes_atomic) -> str:
    """Write an output whole and return how to name it: locally through `local` (the writer the command always
    used: temporary name, then rename), remotely as one upload (object stores have no rename)."""
    if isinstance(where, Path):
        local(data, where)
    else:
        where.write_bytes(data)
    return shown(where)



@contextlib.contextmanager
def local_copy(where: Where, max_bytes: int, what: str, missing: str = "") -> Iterator[Path]:
    """A local path holding the file, for readers that take only a path and are not ours to change.

    Local: the path itself. Remote: the object is read within `max_bytes` (`read_capped`) into
    a private temporary folder under its own name (suffix-based readers see the same name),
    and any error the reader raises names the URI instead of the copy.
    """
    if isinstance(where, Path):
        yield where
        return
    data = read_capped(where, max_bytes, what, missing)
    with tempfile.TemporaryDirectory(prefix="thresher-copy-") as folder:
        copy = Path(folder) / where.name
        copy.write_bytes(data)
        try:
            yield copy
        except Exception as exc:
            _rename_in(exc, str(copy), where.uri)
            raise


def _rename_in(exc: BaseException, old: str, new: str) -> None:
    """Make an error's message name `new` where it named `old` (the local copy of a remote file)."""
    exc.args = tuple(a.replace(old, new) if isinstance(a, str) else a for a in exc.args)
    if isinstance(exc, FormatError):
        exc.source, exc.reason = exc.source.replace(old, new), exc.reason.replace(old, new)
    if isinstance(exc, OSError) and isinstance(exc.filename, str):
        exc.filename = exc.filename.replace(old, new)
