"""Shards and parts: finding input files and cutting them into units of work.

A *shard* is one input file; its id is its path relative to the input root, and
doc ids are `"<shard id>#<row>"` with the row counted over the whole file, so ids
do not depend on how a file is cut. A *part* is a slice of a shard (a line range,
a byte range aligned to lines, or a run of Parquet row groups / Arrow batches), so
one huge file never lands on one worker. `Part` itself lives in `parts`, which
the reader shares.
"""
from __future__ import annotations

import glob
import gzip
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from thresher.pipeline.parts import Part, ShardError
from thresher.pipeline.reader import ReadOptions, read_part
from thresher.pipeline.safety import MAX_DECOMPRESSED_BYTES, inflate_limit

FORMATS = ("jsonl", "jsonl.gz", "parquet", "arrow")
DEFAULT_PART_BYTES = 64 * 1024 * 1024
DEFAULT_PART_ROWS = 200_000
_GLOB_CHARS = set("*?[")


def shard_format(path: str) -> str | None:
    name = path.lower()
    if name.endswith((".jsonl.gz", ".json.gz", ".ndjson.gz")):
        return "jsonl.gz"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith(".arrow"):
        return "arrow"
    return None


def _glob_root(pattern: str) -> Path:
    parts = Path(pattern).parts
    fixed: list[str] = []
    for p in parts:
        if _GLOB_CHARS & set(p):
            break
        fixed.append(p)
    return Path(*fixed) if fixed else Path(".")


def _hf_arrow_files(root: Path) -> list[Path] | None:
    """Arrow files of a Hugging Face `Dataset`/`DatasetDict` saved with `save_to_disk`, else None."""
    if (root / "dataset_dict.json").is_file():
        splits = json.loads((root / "dataset_dict.json").read_text())["splits"]
        files: list[Path] = []
        for split in splits:
            sub = _hf_arrow_files(root / split)
            if sub is None:
                raise ShardError(f"{root}: split {split!r} listed in dataset_dict.json has no saved dataset")
            files.extend(sub)
        return files
    state = root / "state.json"
    if state.is_file() and (root / "dataset_info.json").is_file():
        names = [f["filename"] for f in json.loads(state.read_text()).get("_data_files", [])]
        return [root / n for n in names]
    return None


def discover(input_path: str | os.PathLike) -> tuple[Path, list[tuple[str, Path, str]]]:
    """Find shards under a file, directory or glob: returns (root, [(shard id, path, format)]).

    Shards are sorted by id so every run sees the same order. Symlinks to
    directories are not followed (no loops); unreadable names are errors.
    """
    text = str(input_path)
    if _GLOB_CHARS & set(text):
        root = _glob_root(text)
        candidates = [Path(p) for p in glob.glob(text, recursive=True)]
        files = [p for p in candidates if p.is_file() or (p.is_symlink() and not p.is_dir())]
        if not files:
            raise ShardError(f"{text}: the pattern matches no files")
    else:
        path = Path(text)
        if not path.exists():
            if path.is_symlink():
                raise ShardError(f"{text}: a symbolic link that leads nowhere (dangling, or a loop of links)")
            raise ShardError(f"{text}: no such file or directory")
        if path.is_file():
            root, files = path.parent, [path]
        else:
            root = path
            hf = _hf_arrow_files(path)
            if hf is not None:
                files = hf
            else:
                files = []
                for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
                    dirnames.sort()
                    dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
                    files.extend(Path(dirpath) / f for f in filenames if not f.startswith((".", "_")))
    shards = []
    for f in files:
        fmt = shard_format(f.name)
        if fmt is None:
            continue
        shard_id = Path(os.path.relpath(f, root)).as_posix()
        if shard_id.startswith(("../", "/")):
            raise ShardError(f"{f}: resolves outside the input root {root}")
        shards.append((shard_id, f, fmt))
    if not shards:
        raise ShardError(f"{text}: no shards found (looked for {', '.join('*.' + x for x in FORMATS)})")
    shards.sort(key=lambda s: s[0])
    return root, shards


def _count_lines_at(path: Path, cut_every: int) -> list[tuple[int, int]]:
    """Byte offsets of line starts near every `cut_every` bytes, with their line numbers."""
    cuts = [(0, 0)]
    size = path.stat().st_size
    with open(path, "rb") as fh:
        line_no, pos = 0, 0
        target = cut_every
        while target < size:
            chunk = fh.read(target - pos)
            line_no += chunk.count(b"\n")
            pos += len(chunk)
            rest = fh.readline()  # finish the line that straddles the cut
            if not rest:
                break
            pos += len(rest)
            if rest.endswith(b"\n"):
                line_no += 1
            if pos >= size:
                break
            cuts.append((pos, line_no))
            target = pos + cut_every
    return cuts


def _gz_line_count(path: Path, budget: int) -> int:
    """Lines of a gzip shard, counted within an inflation budget; a broken stream counts what it could.

    The reader reports the break (or the exceeded budget) as a malformed row; the last
    part of the shard reads to the end, so an undercount here loses no rows.
    """
    n, seen = 0, 0
    try:
        with gzip.open(path, "rb") as fh:
            while seen <= budget:
                block = fh.read(1 << 22)
                if not block:
                    break
                seen += len(block)
                n += block.count(b"\n")
    except (EOFError, OSError, zlib.error):
        pass
    return n


def _jsonl_parts(shard_id: str, path: Path, size: int, part_bytes: int) -> list[Part]:
    """Byte ranges of about `part_bytes`, cut at line starts."""
    bounds = _count_lines_at(path, part_bytes) + [(size, None)]
    n = len(bounds) - 1
    return [Part(shard_id, str(path), "jsonl", i, n, bounds[i][1], bounds[i + 1][1], bounds[i][0], bounds[i + 1][0])
            for i in range(n)]


def _gzip_parts(shard_id: str, path: Path, size: int, part_rows: int, inflate_bytes: int) -> list[Part]:
    """Row ranges of `part_rows` lines of one gzip stream."""
    lines = _gz_line_count(path, inflate_limit(size, inflate_bytes))
    n = max(1, -(-lines // part_rows))
    return [Part(shard_id, str(path), "jsonl.gz", i, n, i * part_rows, (i + 1) * part_rows if i < n - 1 else None)
            for i in range(n)]


def _parquet_parts(shard_id: str, path: Path, part_bytes: int) -> list[Part]:
    """Runs of whole row groups of about `part_bytes` (uncompressed) each."""
    p = str(path)
    try:
        meta = pq.ParquetFile(p).metadata
    except Exception:  # unreadable footer: the reader quarantines the shard with the reason
        return [Part(shard_id, p, "parquet")]
    groups: list[list[int]] = [[]]
    acc, row = 0, 0
    starts = []
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        if groups[-1] and acc + rg.total_byte_size > part_bytes:
            groups.append([])
            acc = 0
        if not groups[-1]:
            starts.append(row)
        groups[-1].append(g)
        acc += rg.total_byte_size
        row += rg.num_rows
    if not starts:
        starts = [0]
    n = len(groups)
    parts = []
    for i, gs in enumerate(groups):
        stop = starts[i + 1] if i + 1 < n else None
        b0 = gs[0] if gs else 0
        b1 = gs[-1] + 1 if gs else 0
        parts.append(Part(shard_id, p, "parquet", i, n, starts[i], stop, batch_start=b0, batch_stop=b1))
    return parts


def _arrow_parts(shard_id: str, path: Path, part_bytes: int) -> list[Part]:
    """Runs of whole record batches of an Arrow stream, about `part_bytes` each."""
    p = str(path)
    try:
        with pa.memory_map(p) as src:
            reader = pa.ipc.open_stream(src)
            sizes = [(b.num_rows, b.nbytes) for b in reader]
    except Exception:  # unreadable stream: the reader quarantines the shard with the reason
        return [Part(shard_id, p, "arrow")]
    groups: list[list[int]] = [[]]
    acc = 0
    for j, (_, nb) in enumerate(sizes):
        if groups[-1] and acc + nb > part_bytes:
            groups.append([])
            acc = 0
        groups[-1].append(j)
        acc += nb
    n, row = len(groups), 0
    parts = []
    for i, gs in enumerate(groups):
        rows = sum(sizes[j][0] for j in gs)
        stop = row + rows if i + 1 < n else None
        parts.append(Part(shard_id, p, "arrow", i, n, row, stop, batch_start=gs[0], batch_stop=gs[-1] + 1))
        row += rows
    return parts


def plan_parts(
    shards: list[tuple[str, Path, str]],
    part_bytes: int = DEFAULT_PART_BYTES,
    part_rows: int = DEFAULT_PART_ROWS,
    inflate_bytes: int = MAX_DECOMPRESSED_BYTES,
) -> list[Part]:
    """Cut shards into parts of at most about `part_bytes` bytes (or `part_rows` rows for gzip)."""
    if part_bytes <= 0 or part_rows <= 0:
        raise ValueError("part_bytes and part_rows must be positive")
    parts: list[Part] = []
    for shard_id, path, fmt in shards:
        try:
            size = path.stat().st_size
        except OSError:  # a link loop or dangling link: the reader quarantines the shard with the reason
            parts.append(Part(shard_id, str(path), fmt))
            continue
        if fmt == "jsonl" and size > part_bytes:
            parts.extend(_jsonl_parts(shard_id, path, size, part_bytes))
        elif fmt == "jsonl.gz" and size * 4 > part_bytes:
            parts.extend(_gzip_parts(shard_id, path, size, part_rows, inflate_bytes))
        elif fmt == "parquet" and size > 0:
            parts.extend(_parquet_parts(shard_id, path, part_bytes))
        elif fmt == "arrow" and size > part_bytes:
            parts.extend(_arrow_parts(shard_id, path, part_bytes))
        else:
            parts.append(Part(shard_id, str(path), fmt))
    return parts


def iter_documents(
    path: str | os.PathLike,
    text_field: str = "text",
    id_field: str | None = None,
    batch_rows: int = 8192,
) -> Iterator[pa.Table]:
    """Well-formed documents under a path or glob, as batches with `id`, `text` and the other fields.

    For library use (training a classifier or a fluency reference); malformed rows
    are skipped here, whereas jobs account for them in the ledger.
    """
    _, shards = discover(path)
    opts = ReadOptions(text_field=text_field, id_field=id_field, keep_fields=True)
    for part in plan_parts(shards):
        table = read_part(part, opts)
        good = table.filter(pa.compute.is_null(table["__malformed"]))
        good = good.drop_columns([c for c in good.column_names if c.startswith("__")])
        for start in range(0, good.num_rows, batch_rows):
            yield good.slice(start, batch_rows)
