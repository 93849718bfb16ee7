"""Writing outputs safely: paths stay under the output directory, files appear whole.

Every file is written under a temporary name and renamed into place (by the one atomic
writer, `thresher.metrics.files.write_atomic`), and a part's completion marker is written
last, so a killed run never leaves a partial file that looks complete. Parquet is written with fixed settings so that the same rows
give the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import os  # noqa: F401  (tests patch os.fsync through this module)
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from thresher.metrics.files import WriteError, remove_stale_tmp, write_atomic  # noqa: F401  (re-exported)
from thresher.pipeline.safety import UnsafePath, safe_join  # noqa: F401  (re-exported: writers import them from here)

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


def _write_atomic(path: Path, write: Callable[[Path], None], durable: bool = True) -> None:
    """Write through `write(tmp)` and rename into place (the one atomic writer, `thresher.metrics.files`).

    A failed write leaves no temporary file and surfaces as an OutputWriteError naming `path`.
    """
    write_atomic(path, write, durable=durable, error=OutputWriteError,
                 advice=", then rerun the same command to resume; finished parts are kept")


def write_parquet_atomic(table: pa.Table, path: Path, durable: bool = True) -> None:
    _write_atomic(path, lambda tmp: pq.write_table(table, tmp, **PARQUET_OPTIONS), durable)


def write_arrow_atomic(table: pa.Table, path: Path) -> None:
    """An Arrow IPC file: for scratch tables between phases, several times cheaper to write and read than Parquet."""
    import pyarrow.ipc as ipc

    def write(tmp: Path) -> None:
        with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)

    _write_atomic(path, write)


def read_arrow(path: Path, columns: list[str] | None = None) -> pa.Table:
    import pyarrow.ipc as ipc

    with pa.OSFile(str(path), "rb") as source:
        table = ipc.open_file(source).read_all()
    return table.select(columns) if columns is not None else table


def write_text_atomic(text: str, path: Path) -> None:
    _write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes_atomic(data: bytes, path: Path) -> None:
    _write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_gzip_atomic(data: bytes, path: Path) -> None:
    """Gzip with mtime 0, so the same data gives the same bytes."""
    import gzip

    def write(tmp: Path) -> None:
        # The header names the file `<name>.tmp`, as shards have always been written: same input, same bytes.
        with open(tmp, "wb") as raw, gzip.GzipFile(filename=path.name + ".tmp", mode="wb", fileobj=raw, mtime=0) as fh:
            fh.write(data)

    _write_atomic(path, write)


def write_json_atomic(obj: Any, path: Path) -> None:
    def dump(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")

    _write_atomic(path, dump)


def part_file(out: Path, subdir: str, part_key: str) -> Path:
    """Where a part's file of one kind lives: `<out>/<subdir>/<part_key>.parquet`."""
    return safe_join(out, f"{subdir}/{part_key}.parquet")


def write_part_file(table: pa.Table, out: Path, subdir: str, part_key: str, outputs: dict[str, str]) -> None:
    """`<out>/<subdir>/<part_key>.parquet`, its SHA-256 recorded in `outputs` for the part's marker.

    An empty table writes nothing: zero-row Parquet trips some readers, and there is nothing to account for.
    """
    if table.num_rows:
        path = part_file(out, subdir, part_key)
        write_parquet_atomic(table, path)
        outputs[subdir] = file_sha256(path)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def marker_path(out_dir: Path, key: str) -> Path:
    return safe_join(out_dir, f"{MARKERS}/{key}.json")


def read_marker(out_dir: Path, key: str) -> dict | None:
    path = marker_path(out_dir, key)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # a marker is written atomically; an unreadable one means redo the part


def completed_keys(out_dir: Path) -> set[str]:
    root = Path(out_dir) / MARKERS
    if not root.is_dir():
        return set()
    keys = set()
    for path in root.rglob("*.json"):
        keys.add(path.relative_to(root).as_posix()[: -len(".json")])
    return keys
