"""Writing outputs safely: paths stay under the output directory, files appear whole, the marker commits.

Every writer serialises its file in memory, then commits it whole: on a local disk under
a temporary name renamed into place (the one atomic writer,
`thresher.metrics.files.write_atomic`), on an object store as one upload, which either
completes or leaves no object. A part's completion marker, holding its outputs' SHA-256
digests, is written last and is the commit: object stores have no rename, so a reader
trusts an output only when a marker vouches for those exact bytes (`manifest.part_intact`),
and a rerun overwrites whatever a killed run left. Parquet is written with fixed settings
so that the same rows give the same bytes.

Paths here are local `Path`s or storage `Location`s (`thresher.pipeline.storage.place`).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from thresher.metrics.files import WriteError, write_atomic
from thresher.metrics.files import remove_stale_tmp as _remove_stale_local
from thresher.pipeline.safety import UnsafePath, safe_join  # noqa: F401  (re-exported: writers import them from here)
from thresher.pipeline.storage import Location, StorageError, at, place
from thresher.pipeline.storage.capped import read_limited_at
from thresher.pipeline.storage.requests import each

Where = Path | Location

PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "row_group_size": 65536,
    "use_dictionary": True,
    "write_statistics": True,
}
MARKERS = "_complete"
TMP = "_tmp"


class OutputWriteError(WriteError):
    """An output could not be written (disk full, read-only, quota): nothing was marked complete."""


def commit_bytes(data: bytes | memoryview, path: str | os.PathLike | Location, durable: bool = True) -> str:
    """Write a whole file (see the module docstring) and return its SHA-256.

    A failed write leaves nothing under the name and surfaces as an OutputWriteError naming it.
    """
    target = place(path)
    if isinstance(target, Location):
        try:
            target.write_bytes(data)
        except StorageError as exc:
            raise OutputWriteError(f"{exc}; rerun the same command to resume, finished parts are kept") from None
    else:
        write_atomic(target, lambda tmp: tmp.write_bytes(data), durable=durable, error=OutputWriteError,
                     advice=", then rerun the same command to resume; finished parts are kept")
    return hashlib.sha256(data).hexdigest()


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **PARQUET_OPTIONS)
    return sink.getvalue().to_pybytes()


def write_parquet_atomic(table: pa.Table, path: str | os.PathLike | Location, durable: bool = True) -> str:
    """Parquet with fixed settings; returns its SHA-256. Locally it streams to the temporary file (no copy in memory)."""
    target = place(path)
    if isinstance(target, Location):
        return commit_bytes(parquet_bytes(table), target, durable)
    write_atomic(target, lambda tmp: pq.write_table(table, tmp, **PARQUET_OPTIONS), durable=durable,
                 error=OutputWriteError, advice=", then rerun the same command to resume; finished parts are kept")
    return file_sha256(target)


def write_arrow_atomic(table: pa.Table, path: str | os.PathLike | Location) -> str:
    """An Arrow IPC file: for scratch tables between phases, several times cheaper to write and read than Parquet."""
    import pyarrow.ipc as ipc

    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return commit_bytes(sink.getvalue().to_pybytes(), path)


def read_arrow(path: str | os.PathLike | Location, columns: list[str] | None = None) -> pa.Table:
    import pyarrow.ipc as ipc

    target = place(path)
    source = target.open_native() if isinstance(target, Location) else pa.OSFile(str(target), "rb")
    with source:
        table = ipc.open_file(source).read_all()
    return table.select(columns) if columns is not None else table


def read_parquet(path: str | os.PathLike | Location, columns: list[str] | None = None,
                 filters: list[tuple] | None = None) -> pa.Table:
    """A whole Parquet file (or the named columns, or the rows `filters` pass), local or remote."""
    target = place(path)
    if isinstance(target, Location):
        with target.open_native() as source:
            return pq.read_table(source, columns=columns, filters=filters)
    return pq.read_table(target, columns=columns, filters=filters)


def parquet_dataset(folder: str | os.PathLike | Location, schema: pa.Schema | None = None) -> Any:
    """A `pyarrow.dataset` over the Parquet files below a folder (local, or listed once on a store)."""
    import pyarrow.dataset as pads  # pulls in pandas: only where a whole folder is read

    target = place(folder)
    if not isinstance(target, Location):
        return pads.dataset(target, format="parquet", schema=schema)
    files = [e.location.fs_path for e in target.files()
             if e.relative.endswith(".parquet") and not e.location.name.startswith(".")]
    return pads.dataset(files, format="parquet", schema=schema, filesystem=target.fs)


def read_schema(path: str | os.PathLike | Location) -> pa.Schema:
    """A Parquet file's schema (its footer only), local or remote."""
    target = place(path)
    if isinstance(target, Location):
        with target.open_native() as source:
            return pq.read_schema(source)
    return pq.read_schema(target)


def write_text_atomic(text: str, path: str | os.PathLike | Location) -> str:
    return commit_bytes(text.encode("utf-8"), path)


def write_bytes_atomic(data: bytes, path: str | os.PathLike | Location) -> str:
    return commit_bytes(data, path)


def write_gzip_atomic(data: bytes, path: str | os.PathLike | Location) -> str:
    """Gzip with mtime 0, so the same data gives the same bytes."""
    import gzip
    import io

    buf = io.BytesIO()
    # The header names the file `<name>.tmp`, as shards have always been written: same input, same bytes.
    with gzip.GzipFile(filename=place(path).name + ".tmp", mode="wb", fileobj=buf, mtime=0) as fh:
        fh.write(data)
    return commit_bytes(buf.getvalue(), path)


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")


def write_json_atomic(obj: Any, path: str | os.PathLike | Location) -> str:
    target = place(path)
    if isinstance(target, Location):
        return commit_bytes(json_bytes(obj), target)

    def dump(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")

    write_atomic(target, dump, error=OutputWriteError,
                 advice=", then rerun the same command to resume; finished parts are kept")
    return file_sha256(target)


def remove_stale_tmp(directory: str | os.PathLike | Location, name: str) -> int:
    """Temporary files a killed local writer left for `name`; an object store has none (uploads are whole)."""
    target = place(directory)
    return 0 if isinstance(target, Location) else _remove_stale_local(target, name)


def remove_tree(directory: str | os.PathLike | Location) -> None:
    """Delete a folder of scratch or stale outputs, local or remote; nothing happens when it is not there."""
    at(directory).remove_tree()


def load_format(fmt: Any, path: str | os.PathLike | Location, missing: str = "") -> Any:
    """A JSON file of one format (`thresher.metrics.files.JsonFormat`), read from a path or a URI and checked."""
    return fmt.loads(read_limited_at(path, fmt.max_bytes, fmt.what, missing), str(place(path)))


def part_file(out: str | os.PathLike | Location, subdir: str, part_key: str) -> Where:
    """Where a part's file of one kind lives: `<out>/<subdir>/<part_key>.parquet`."""
    return safe_join(out, f"{subdir}/{part_key}.parquet")


def write_part_file(table: pa.Table, out: str | os.PathLike | Location, subdir: str, part_key: str,
                    outputs: dict[str, str]) -> None:
    """`<out>/<subdir>/<part_key>.parquet`, its SHA-256 recorded in `outputs` for the part's marker.

    An empty table writes nothing: zero-row Parquet trips some readers, and there is nothing to account for.
    """
    if table.num_rows:
        outputs[subdir] = write_parquet_atomic(table, part_file(out, subdir, part_key))


def file_sha256(path: str | os.PathLike | Location) -> str:
    h = hashlib.sha256()
    with at(path).open_input() as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def marker_path(out_dir: str | os.PathLike | Location, key: str) -> Where:
    return safe_join(out_dir, f"{MARKERS}/{key}.json")


def read_marker(out_dir: str | os.PathLike | Location, key: str) -> dict | None:
    path = marker_path(out_dir, key)
    try:
        return json.loads(path.read_text())  # no lookup first: on an object store that would be a request more
    except FileNotFoundError:  # StorageNotFound is one too
        return None
    except json.JSONDecodeError:
        return None  # a marker is written atomically; an unreadable one means redo the part


def read_markers(out_dir: str | os.PathLike | Location, keys: list[str]) -> list[dict | None]:
    """The markers of `keys`, in order (None where missing): on an object store by a pool of threads, since
    one request after another costs a round trip per part."""
    where = place(out_dir)
    return each(lambda key: read_marker(where, key), keys, isinstance(where, Location))


def completed_keys(out_dir: str | os.PathLike | Location) -> set[str]:
    root = at(out_dir) / MARKERS
    if not root.is_dir():
        return set()
    return {e.relative[: -len(".json")] for e in root.files()
            if e.relative.endswith(".json") and not e.location.name.startswith(".")}
