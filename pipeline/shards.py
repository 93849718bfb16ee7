"""Shards and parts: cutting input files into units of work (finding them is `discovery`'s).

A *shard* is one input file; its id is its path relative to the input root, and
doc ids are `"<shard id>#<row>"` with the row counted over the whole file, so ids
do not depend on how a file is cut. A *part* is a slice of a shard (a line range,
a byte range aligned to lines, or a run of Parquet row groups / Arrow batches), so
one huge file never lands on one worker. `Part` itself lives in `parts`, which
the reader shares.
"""
from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thresher.pipeline.discovery import FORMATS, discover, printable_shard_id, shard_format  # noqa: F401  (re-exported)
from thresher.pipeline.parts import Part, ShardError  # noqa: F401  (ShardError re-exported)
from thresher.pipeline.reader import ReadOptions, read_part
from thresher.pipeline.safety import MAX_DECOMPRESSED_BYTES, inflate_limit
from thresher.pipeline.storage import Location, StorageError, at
from thresher.pipeline.storage.raw import RawReader
from thresher.pipeline.storage.requests import each

DEFAULT_PART_BYTES = 64 * 1024 * 1024
DEFAULT_PART_ROWS = 200_000
_READ_CHUNK = 1 << 20  # the largest single read when cutting a jsonl file at line starts
_INFLATE_CHUNK = 1 << 22  # the largest block inflated at once when counting a gzip shard's lines
# Parts one gzip shard is cut into at most: each inflates the stream from its start up to its stop
MAX_GZIP_PARTS = 16
_BLANK = b" \t\r\x0b\x0c"  # with the newline, what `bytes.isspace` calls blank (the reader skips such lines)
_DOC_MARKS = bytes(10 if b == 10 else 97 for b in range(256))  # newline stays, any other byte becomes "a"


def _count_lines_at(path: Path | Location, cut_every: int, size: int | None = None) -> list[tuple[int, int]]:
    """Byte offsets of line starts near every `cut_every` bytes, with their line numbers.

    Each cut is where reading up to the target and finishing the line there puts it;
    the reading is done in `_READ_CHUNK` pieces, so a line of gigabytes (a sparse
    file, NUL bytes without a newline) holds no more memory than a short one.
    """
    cuts = [(0, 0)]
    path = at(path)
    size = path.stat().size if size is None else size
    with path.open_input(_READ_CHUNK) as fh:
        line_no, pos = 0, 0
        target = cut_every
        while target < size:
            while pos < target:
                chunk = fh.read(min(_READ_CHUNK, target - pos))
                if not chunk:
                    break
                line_no += chunk.count(b"\n")
                pos += len(chunk)
            ended = False
            while not ended:  # finish the line that straddles the cut
                rest = fh.readline(_READ_CHUNK)
                if not rest:
                    break
                pos += len(rest)
                ended = rest.endswith(b"\n")
            if not ended or pos >= size:
                break
            line_no += 1
            cuts.append((pos, line_no))
            target = pos + cut_every
    return cuts


def _open_gzip(path: Location) -> Any:
    """A gzip stream, inflated as read: a local file directly, an object through buffered ranged reads."""
    if path.local is not None:
        return gzip.open(path.local, "rb")
    raw = path.open_input()
    return io.BufferedReader(RawReader(gzip.GzipFile(fileobj=raw, mode="rb"), raw), 1 << 20)


def _gz_line_count(path: Path | Location, budget: int) -> tuple[int, int]:
    """Lines and documents (non-blank lines) of a gzip shard, counted in one pass within an inflation budget.

    A broken stream counts what it could: the reader reports the break (or the
    exceeded budget) as a malformed row, and the last part of the shard reads to the
    end, so an undercount here loses no rows. Blank lines are found with whole-block
    passes (`bytes.translate`, then one numpy comparison), never one Python step per
    line, so a stream of newlines is counted about as fast as it inflates.
    """
    lines, docs, seen = 0, 0, 0
    open_line = False  # the line read so far has a non-blank byte
    try:
        with _open_gzip(at(path)) as fh:
            while seen <= budget:
                block = fh.read(_INFLATE_CHUNK)
                if not block:
                    break
                seen += len(block)
                lines += block.count(b"\n")
                # "a" (97) per non-blank byte, newlines (10) kept: a document ends at each "a\n"
                marks = np.frombuffer(block.translate(_DOC_MARKS, _BLANK), np.uint8)
                if marks.size:
                    docs += int(np.count_nonzero(marks[:-1] > marks[1:])) + (open_line and marks[0] == 10)
                    open_line = bool(marks[-1] != 10)
    except StorageError:
        raise
    except (EOFError, OSError, zlib.error):
        pass
    return lines, docs + open_line


def _jsonl_parts(shard_id: str, path: Location, size: int, part_bytes: int) -> list[Part]:
    """Byte ranges of about `part_bytes`, cut at line starts."""
    bounds = _count_lines_at(path, part_bytes, size) + [(size, None)]
    n = len(bounds) - 1
    return [Part(shard_id, path.uri, "jsonl", i, n, bounds[i][1], bounds[i + 1][1], bounds[i][0], bounds[i + 1][0])
            for i in range(n)]


def _gzip_parts(shard_id: str, path: Location, size: int, part_rows: int, inflate_bytes: int) -> list[Part]:
    """Line ranges of one gzip stream: about `part_rows` documents each, at most `MAX_GZIP_PARTS` parts.

    A gzip stream cannot be entered midway, so a part inflates all the lines before
    its own; capping the parts keeps all of them together to about (cap + 1) / 2
    passes over the stream, and sizing by documents keeps a stream of blank lines in one
    part. Where neither bites, the cuts fall every `part_rows` lines as they always did.
    """
    lines, docs = _gz_line_count(path, inflate_limit(size, inflate_bytes))
    wanted = max(1, min(MAX_GZIP_PARTS, -(-docs // part_rows)))
    stride = max(part_rows, -(-lines // wanted))
    n = max(1, -(-lines // stride))
    return [Part(shard_id, path.uri, "jsonl.gz", i, n, i * stride, (i + 1) * stride if i < n - 1 else None)
            for i in range(n)]


def _parquet_parts(shard_id: str, path: Location, part_bytes: int) -> list[Part]:
    """Runs of whole row groups of about `part_bytes` (uncompressed) each."""
    p = path.uri
    try:
        meta = pq.ParquetFile(p if path.local is not None else path.open_native()).metadata
    except StorageError:
        raise
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


def _arrow_parts(shard_id: str, path: Location, part_bytes: int) -> list[Part]:
    """Runs of whole record batches of an Arrow stream, about `part_bytes` each."""
    p = path.uri
    try:
        with path.open_native() as src:
            reader = pa.ipc.open_stream(src)
            sizes = [(b.num_rows, b.nbytes) for b in reader]
    except StorageError:
        raise
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


def _shard_parts(shard_id: str, path: Location, fmt: str, size: int | None, part_bytes: int, part_rows: int,
                 inflate_bytes: int) -> list[Part]:
    """One shard's parts; `size` None means it could not be looked up (the reader then reports why)."""
    if size is None:
        return [Part(shard_id, path.uri, fmt)]
    if fmt == "jsonl" and size > part_bytes:
        return _jsonl_parts(shard_id, path, size, part_bytes)
    if fmt == "jsonl.gz" and size * 4 > part_bytes:
        return _gzip_parts(shard_id, path, size, part_rows, inflate_bytes)
    if fmt == "parquet" and size > 0:
        return _parquet_parts(shard_id, path, part_bytes)
    if fmt == "arrow" and size > part_bytes:
        return _arrow_parts(shard_id, path, part_bytes)
    return [Part(shard_id, path.uri, fmt)]


def _size(path: Location, sizes: dict[str, int | None] | None, shard_id: str) -> int | None:
    if sizes is not None and shard_id in sizes:
        return sizes[shard_id]
    try:
        return path.stat().size
    except StorageError:
        raise
    except OSError:  # a link loop or dangling link: the reader quarantines the shard with the reason
        return None


def plan_parts(
    shards: list[tuple[str, Path | Location, str]],
    part_bytes: int = DEFAULT_PART_BYTES,
    part_rows: int = DEFAULT_PART_ROWS,
    inflate_bytes: int = MAX_DECOMPRESSED_BYTES,
    sizes: dict[str, int | None] | None = None,
) -> list[Part]:
    """Cut shards into parts of at most about `part_bytes` bytes (or `part_rows` rows for gzip).

    `sizes` (shard id -> bytes, from discovery's listing) saves a lookup per shard. Remote
    shards are planned by a pool of threads: a shard that must be read to be cut (a
    large JSON-lines file, a Parquet footer) costs a round trip, and 100,000 of them in a
    row would take minutes; the parts come back in shard order all the same.
    """
    if part_bytes <= 0 or part_rows <= 0:
        raise ValueError("part_bytes and part_rows must be positive")
    located = [(shard_id, at(path), fmt) for shard_id, path, fmt in shards]

    def plan(item: tuple[str, Location, str]) -> list[Part]:
        shard_id, path, fmt = item
        return _shard_parts(shard_id, path, fmt, _size(path, sizes, shard_id), part_bytes, part_rows, inflate_bytes)

    planned = each(plan, located, any(loc.remote for _, loc, _ in located))
    return [part for parts in planned for part in parts]


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
