"""Writing outputs safely: paths stay under the output directory, files appear whole.

Every file is written under a temporary name and renamed into place, and a part's
completion marker is written last, so a killed run never leaves a partial file
that looks complete. Parquet is written with fixed settings so that the same rows
give the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "row_group_size": 65536,
    "use_dictionary": True,
    "write_statistics": True,
}
MARKERS = "_complete"
TMP = "_tmp"


class UnsafePath(ValueError):
    """A name that would escape the output directory."""


def safe_join(root: str | os.PathLike, relative: str) -> Path:
    """`root / relative`, refusing absolute names, `..` and links that leave `root`."""
    rel = Path(relative)
    if rel.is_absolute() or any(p in ("..", "") for p in rel.parts) or "\x00" in relative:
        raise UnsafePath(f"{relative!r} is not a safe relative name under {root}")
    base = Path(root).resolve()
    target = (base / rel).resolve()
    if target != base and base not in target.parents:
        raise UnsafePath(f"{relative!r} resolves to {target}, outside {base}")
    return base / rel


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        pq.write_table(table, tmp, **PARQUET_OPTIONS)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


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
