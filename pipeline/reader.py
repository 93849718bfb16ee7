"""Reading one part into an Arrow table, with every row accounted for.

Well-formed rows get `id` and `text`; a row that cannot be read (bad JSON, invalid
UTF-8, missing or non-string text, oversized, truncated stream, unreadable file)
stays in the table with `text` null and its reason in `__malformed`, so the ledger
can count it and the quarantine can keep its raw bytes.
"""
from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from thresher.metrics.errors import EXIT_FAILED
from thresher.pipeline.parts import Part, ShardError
from thresher.pipeline.safety import MAX_COMPRESSION_RATIO, MAX_DECOMPRESSED_BYTES, inflate_limit

RAW_KEEP_BYTES = 4096
# A JSON escape of a UTF-16 surrogate: its text may decode to a lone surrogate, which no UTF-8 output can hold.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


@dataclass(frozen=True)
class ReadOptions:
    text_field: str = "text"
    id_field: str | None = None
    carry: tuple[str, ...] = ()  # extra input fields kept as columns (e.g. "source")
    keep_fields: bool = False  # keep every input field (select, materialize)
    max_doc_bytes: int = 16 * 1024 * 1024
    max_decompressed_bytes: int = MAX_DECOMPRESSED_BYTES  # per compressed shard: a limit against decompression bombs
    max_compression_ratio: float = MAX_COMPRESSION_RATIO  # ... and at most this many times its size on disk
    strict: bool = False


class MalformedInput(ShardError):
    """Raised in strict mode at the first bad row, naming file and line."""

    exit_code = EXIT_FAILED  # the job ran and stopped on bad input, as --strict asked


@dataclass
class _Rows:
    """Column builders for one part."""

    ids: list[str | None] = field(default_factory=list)
    texts: list[str | None] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)
    raws: list[str | None] = field(default_factory=list)
    extra: list[dict[str, Any] | None] = field(default_factory=list)
    only: frozenset[int] | None = None  # row numbers to parse; None for all

    def skip(self, row: int) -> bool:
        return self.only is not None and row not in self.only

    def good(self, row: int, doc_id: str, text: str, extra: dict[str, Any] | None) -> None:
        self.ids.append(doc_id)
        self.texts.append(text)
        self.rows.append(row)
        self.reasons.append(None)
        self.raws.append(None)
        self.extra.append(extra)

    def bad(self, row: int, doc_id: str, reason: str, raw: bytes | str | None) -> None:
        if isinstance(raw, bytes):
            raw = raw[:RAW_KEEP_BYTES].decode("utf-8", errors="replace")
        elif isinstance(raw, str):
            raw = raw[:RAW_KEEP_BYTES]
        self.ids.append(doc_id)
        self.texts.append(None)
        self.rows.append(row)
        self.reasons.append(reason)
        self.raws.append(raw)
        self.extra.append(None)


def _fail(opts: ReadOptions, part: Part, row: int, reason: str) -> None:
    if opts.strict:
        raise MalformedInput(f"{part.path}: line {row + 1}: {reason} (run without --strict to quarantine bad rows)")


def _doc_id(part: Part, row: int, record: dict, opts: ReadOptions) -> tuple[str | None, str | None]:
    if opts.id_field is None:
        return f"{part.shard_id}#{row}", None
    value = record.get(opts.id_field)
    if value is None or isinstance(value, (dict, list, bool)) or value == "":
        return None, f"id field {opts.id_field!r} missing or not a string/number"
    return str(value), None


def _check_text(record: Any, opts: ReadOptions) -> tuple[str | None, str | None]:
    if not isinstance(record, dict):
        return None, f"not a JSON object but {type(record).__name__}"
    if opts.text_field not in record:
        return None, f"missing text field {opts.text_field!r}"
    text = record[opts.text_field]
    if not isinstance(text, str):
        return None, f"text field {opts.text_field!r} is {type(text).__name__}, not a string"
    if len(text) > opts.max_doc_bytes:
        return None, f"document longer than {opts.max_doc_bytes} characters"
    return text, None


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a decoded JSON value holds a lone surrogate anywhere (strings, keys, nested values)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return False
        except UnicodeEncodeError:
            return True
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def _parse_json(decoded: str) -> tuple[Any, str | None]:
    """(record, None), or (None, reason) for a line json cannot turn into a value.

    Besides syntax errors this catches integers past Python's digit limit (a ValueError)
    and nesting deep enough to exhaust the recursion limit: each is one bad row, never a
    crash of the part.
    """
    try:
        return json.loads(decoded), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} (column {exc.colno})"
    except RecursionError:
        return None, "invalid JSON: nested too deeply"
    except ValueError as exc:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        return None, f"invalid JSON: {str(exc).split(';')[0]}"


def _extras(record: dict, opts: ReadOptions) -> dict[str, Any] | None:
    if opts.keep_fields:
        return {k: v for k, v in record.items() if k != opts.text_field}
    if opts.carry:
        return {k: record.get(k) for k in opts.carry}
    return None


def _handle_line(line: bytes, row: int, part: Part, opts: ReadOptions, out: _Rows, whole: bool = True) -> None:
    if row == 0 and line.startswith(b"\xef\xbb\xbf"):
        line = line[3:]  # a byte-order mark is not content
    if whole and (not line or line.isspace()):
        return  # blank lines are not rows
    default_id = f"{part.shard_id}#{row}"
    if not whole or (len(line) > opts.max_doc_bytes and len(line.rstrip(b"\r\n")) > opts.max_doc_bytes):
        reason = f"line longer than {opts.max_doc_bytes} bytes"
        _fail(opts, part, row, reason)
        out.bad(row, default_id, reason, line)
        return
    try:
        decoded = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        reason = f"invalid UTF-8 at byte {exc.start}"
        _fail(opts, part, row, reason)
        out.bad(row, default_id, reason, line)
        return
    record, reason = _parse_json(decoded)
    text = None
    if reason is None:
        text, reason = _check_text(record, opts)
    if reason is None:
        doc_id, reason = _doc_id(part, row, record, opts)
    extras = _extras(record, opts) if reason is None else None
    if reason is None and _SURROGATE_ESCAPE.search(line) and _has_lone_surrogate([text, doc_id, extras]):
        reason = "a lone surrogate escape (half of a UTF-16 pair): not valid Unicode text"
    if reason is not None:
        _fail(opts, part, row, reason)
        out.bad(row, default_id, reason, line)
        return
    out.good(row, doc_id, text, extras)


_BLANK_PEEK = 1 << 16


class _Lines:
    """Lines of a binary stream, never holding more than `cap` bytes of one line in memory.

    Yields (line, bytes consumed, whole, blank lines before it): a line longer than
    `cap` comes back as its first `RAW_KEEP_BYTES` with whole=False, the rest skipped
    in bounded reads. Runs of empty lines (bare newlines) are skipped a buffer at a
    time and only counted, so a stream of nothing but newlines costs what inflating it
    costs, not a Python step per line; at most `span` bytes are skipped that way (a
    byte-ranged part never skips far past its end). With a `budget`, reading more than
    that many bytes in all raises ShardError (gzip bombs).
    """

    def __init__(self, fh: Any, cap: int, budget: int | None = None, span: int | None = None) -> None:
        self.fh, self.cap, self.budget, self.span, self.seen = fh, cap, budget, span, 0

    def _count(self, n: int) -> None:
        self.seen += n
        if self.budget is not None and self.seen > self.budget:
            raise ShardError(f"decompressed size exceeds {self.budget} bytes (a decompression bomb, or raise "
                             f"max_decompressed_bytes / max_compression_ratio)")

    def _skip_newlines(self) -> int:
        """Consume the bare newlines at the stream's position; returns how many."""
        skipped = 0
        while self.span is None or self.seen < self.span:
            buf = self.fh.peek(_BLANK_PEEK)[:_BLANK_PEEK]
            n = len(buf) - len(buf.lstrip(b"\n"))
            if self.span is not None:
                n = min(n, self.span - self.seen)
            if n == 0:
                break
            self.fh.read(n)
            self._count(n)
            skipped += n
        return skipped

    def _read(self, size: int) -> bytes:
        chunk = self.fh.readline(size)
        self._count(len(chunk))
        return chunk

    def __iter__(self) -> Iterator[tuple[bytes, int, bool, int]]:
        limit = self.cap + 3  # room for a byte-order mark and the line end
        while True:
            blanks = self._skip_newlines() if self.seen else 0  # the first line keeps its byte-order-mark check
            line = self._read(limit)
            if not line:
                return
            if len(line) < limit or line.endswith(b"\n"):
                yield line, len(line), True, blanks
                continue
            head, used = line[:RAW_KEEP_BYTES], len(line)
            while not line.endswith(b"\n"):
                line = self._read(1 << 20)
                if not line:
                    break
                used += len(line)
            yield head, used, False, blanks


def _read_jsonl(part: Part, opts: ReadOptions, out: _Rows) -> None:
    with open(part.path, "rb") as fh:
        if part.byte_start:
            fh.seek(part.byte_start)
        pos = part.byte_start or 0
        row = part.start
        span = None if part.byte_stop is None else part.byte_stop - pos
        for line, used, whole, blanks in _Lines(fh, opts.max_doc_bytes, span=span):
            pos += blanks
            row += blanks
            if part.byte_stop is not None and pos >= part.byte_stop:
                break
            pos += used
            if not out.skip(row):
                _handle_line(line, row, part, opts, out, whole)
            row += 1


class _NativeRaw(io.RawIOBase):
    """A pyarrow input stream as a raw Python file, so io.BufferedReader gives it bounded readline()."""

    def __init__(self, stream: pa.NativeFile) -> None:
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.stream.close()
        super().close()


def _open_compressed(path: str, fmt: str) -> Any:
    """A binary file object that inflates a compressed JSON-lines shard as it is read."""
    if fmt == "jsonl.gz":
        return gzip.open(path, "rb")
    if fmt == "jsonl.bz2":
        return bz2.open(path, "rb")
    if fmt == "jsonl.xz":
        return lzma.open(path, "rb")
    return io.BufferedReader(_NativeRaw(pa.CompressedInputStream(pa.OSFile(path), "zstd")), 1 << 20)


_CODEC = {"jsonl.gz": "gzip", "jsonl.bz2": "bzip2", "jsonl.xz": "xz", "jsonl.zst": "zstd"}


def _read_jsonl_compressed(part: Part, opts: ReadOptions, out: _Rows) -> None:
    """Rows of a gzip, bzip2, xz or zstd stream; a truncated or corrupt stream ends in one bad row saying where."""
    row = 0
    budget = inflate_limit(os.path.getsize(part.path), opts.max_decompressed_bytes, opts.max_compression_ratio)
    try:
        with _open_compressed(part.path, part.fmt) as fh:
            for line, _, whole, blanks in _Lines(fh, opts.max_doc_bytes, budget):
                row += blanks
                if part.stop is not None and row >= part.stop:
                    break
                if row >= part.start and not out.skip(row):
                    _handle_line(line, row, part, opts, out, whole)
                row += 1
    except (EOFError, OSError, zlib.error, lzma.LZMAError, pa.ArrowException, ShardError) as exc:
        if isinstance(exc, MalformedInput):
            raise
        codec = _CODEC[part.fmt]
        kind = f"truncated {codec} stream" if isinstance(exc, EOFError) else f"unreadable {codec} stream"
        reason = f"{kind} after line {row}: {exc}"
        _fail(opts, part, row, reason)
        if row >= part.start and (part.stop is None or row < part.stop):
            out.bad(row, f"{part.shard_id}#{row}", reason, None)


def _as_string(col: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """A text column as plain strings: dictionary-encoded and view strings are decoded; None if not text at all."""
    t = col.type
    if pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)):
        return col.cast(t.value_type)
    if getattr(pa.types, "is_string_view", lambda _: False)(t):
        return col.cast(pa.string())
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return col
    return None


def _texts(col: pa.ChunkedArray) -> tuple[list[str | None], list[str | None]]:
    """(texts, reasons): a string column's values, with a reason for each value that is not valid UTF-8.

    Parquet does not guarantee its strings are UTF-8; one bad value is one bad row.
    """
    try:
        col.validate(full=True)
        return col.to_pylist(), [None] * len(col)
    except (pa.ArrowInvalid, UnicodeDecodeError):
        texts: list[str | None] = []
        reasons: list[str | None] = []
        for raw in col.cast(pa.binary() if pa.types.is_string(col.type) else pa.large_binary()).to_pylist():
            try:
                texts.append(None if raw is None else raw.decode("utf-8"))
                reasons.append(None)
            except UnicodeDecodeError as exc:
                texts.append(None)
                reasons.append(f"invalid UTF-8 at byte {exc.start}")
        return texts, reasons


def _all_bad(part: Part, opts: ReadOptions, out: _Rows, first_row: int, n: int, reason: str) -> None:
    """Every row of a columnar part is bad for one reason (a missing or mistyped column)."""
    _fail(opts, part, first_row, reason)
    for i in range(n):
        out.bad(first_row + i, f"{part.shard_id}#{first_row + i}", reason, None)


def _records_from_table(table: pa.Table, part: Part, opts: ReadOptions, out: _Rows, first_row: int) -> None:
    """Columnar inputs: validate the text column vectorised, then split good and bad rows."""
    n = table.num_rows
    names = table.column_names
    if opts.text_field not in names:
        return _all_bad(part, opts, out, first_row, n,
                        f"missing text column {opts.text_field!r} (columns: {', '.join(names)})")
    needed = names if opts.keep_fields else [opts.text_field, opts.id_field, *opts.carry]
    repeated = sorted({c for c in needed if c is not None and names.count(c) > 1})
    if repeated:
        return _all_bad(part, opts, out, first_row, n,
                        f"column name(s) {', '.join(map(repr, repeated))} appear more than once; "
                        "a row's value for them is ambiguous")
    col = _as_string(table[opts.text_field])
    if col is None:
        return _all_bad(part, opts, out, first_row, n,
                        f"text column {opts.text_field!r} has type {table[opts.text_field].type}, not string")
    texts, utf8_reasons = _texts(col)
    ids = table[opts.id_field].to_pylist() if opts.id_field and opts.id_field in table.column_names else None
    other = [c for c in table.column_names if c != opts.text_field]
    keep = other if opts.keep_fields else [c for c in opts.carry if c in table.column_names]
    extra_cols = {c: table[c].to_pylist() for c in keep}
    for i, text in enumerate(texts):
        row = first_row + i
        default_id = f"{part.shard_id}#{row}"
        reason = utf8_reasons[i]
        if reason is None and text is None:
            reason = f"text column {opts.text_field!r} is null"
        elif reason is None and len(text) > opts.max_doc_bytes:
            reason = f"document longer than {opts.max_doc_bytes} characters"
        doc_id = default_id
        if reason is None and opts.id_field:
            value = ids[i] if ids is not None else None
            if value is None or value == "":
                reason = f"id field {opts.id_field!r} missing"
            else:
                doc_id = str(value)
        if reason is not None:
            _fail(opts, part, row, reason)
            out.bad(row, default_id, reason, text)
            continue
        extra = {c: extra_cols[c][i] for c in keep} if keep else None
        out.good(row, doc_id, text, extra)


def _read_parquet(part: Part, opts: ReadOptions, out: _Rows) -> None:
    try:
        pf = pq.ParquetFile(part.path)
        groups = list(range(pf.metadata.num_row_groups) if part.batch_start is None
                      else range(part.batch_start, part.batch_stop))
        inflated = sum(pf.metadata.row_group(g).total_byte_size for g in groups)
        budget = inflate_limit(os.path.getsize(part.path), opts.max_decompressed_bytes, opts.max_compression_ratio)
        if inflated > budget:
            raise ShardError(f"row groups inflate to {inflated} bytes, over the limit of {budget} (raise "
                             f"max_decompressed_bytes / max_compression_ratio if this is expected)")
        table = pf.read_row_groups(groups) if groups else pf.schema_arrow.empty_table()
    except Exception as exc:  # pyarrow raises several types for broken files
        reason = f"unreadable Parquet file: {exc}"
        _fail(opts, part, part.start, reason)
        out.bad(part.start, f"{part.shard_id}#{part.start}", reason, None)
        return
    _records_from_table(table, part, opts, out, part.start)


def _read_arrow(part: Part, opts: ReadOptions, out: _Rows) -> None:
    try:
        with pa.memory_map(part.path) as src:
            reader = pa.ipc.open_stream(src)
            batches = list(reader)
        if part.batch_start is not None:
            batches = batches[part.batch_start : part.batch_stop]
        table = pa.Table.from_batches(batches, schema=reader.schema)
    except Exception as exc:
        reason = f"unreadable Arrow stream: {exc}"
        _fail(opts, part, part.start, reason)
        out.bad(part.start, f"{part.shard_id}#{part.start}", reason, None)
        return
    _records_from_table(table, part, opts, out, part.start)


_READERS = {"jsonl": _read_jsonl, "parquet": _read_parquet, "arrow": _read_arrow,
            **dict.fromkeys(_CODEC, _read_jsonl_compressed)}


def _extra_columns(extra: list[dict[str, Any] | None], names: Iterable[str]) -> dict[str, pa.Array]:
    """Typed columns when a field's values agree on a type, JSON text otherwise."""
    cols: dict[str, pa.Array] = {}
    for name in names:
        values = [None if e is None else e.get(name) for e in extra]
        try:
            arr = pa.array(values)
            if pa.types.is_null(arr.type):
                arr = arr.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # mixed types, or an integer past 64 bits
            arr = pa.array([None if v is None else json.dumps(v, sort_keys=True) for v in values], pa.string())
        cols[name] = arr
    return cols


def read_part(part: Part, opts: ReadOptions, rows: Iterable[int] | None = None) -> pa.Table:
    """All rows of a part: `id`, `text`, `__row`, `__malformed`, `__raw`, plus kept fields.

    With `rows` (row numbers, as in `__row`), only those rows: a JSON line that is
    not asked for is not parsed, so re-reading a few documents of a part is cheap.
    """
    out = _Rows(only=frozenset(int(r) for r in rows) if rows is not None else None)
    try:
        _READERS[part.fmt](part, opts, out)
    except MalformedInput:
        raise
    except OSError as exc:  # unreadable file: a link loop, a dangling link, permissions, an I/O error
        row = out.rows[-1] + 1 if out.rows else part.start
        reason = f"unreadable file: {exc.strerror or exc}"
        _fail(opts, part, row, reason)
        out.bad(row, f"{part.shard_id}#{row}", reason, None)
    columns: dict[str, pa.Array] = {
        "id": pa.array(out.ids, pa.string()),
        "text": pa.array(out.texts, pa.string()),
        "__row": pa.array(out.rows, pa.int64()),
        "__malformed": pa.array(out.reasons, pa.string()),
        "__raw": pa.array(out.raws, pa.string()),
    }
    if opts.keep_fields:
        names: list[str] = []
        for e in out.extra:
            if e:
                names.extend(k for k in e if k not in names)
    else:
        names = list(opts.carry)
    reserved = set(columns)
    for name, arr in _extra_columns(out.extra, names).items():
        columns[name if name not in reserved else f"input_{name}"] = arr
    table = pa.table(columns)
    if out.only is not None and part.fmt not in ("jsonl", *_CODEC):  # columnar formats read whole, then pick
        table = table.filter(pc.is_in(table["__row"], value_set=pa.array(sorted(out.only), pa.int64())))
    if opts.id_field:
        table = _mark_duplicate_ids(table, part, opts)
    return table


def _mark_duplicate_ids(table: pa.Table, part: Part, opts: ReadOptions) -> pa.Table:
    """A repeated id inside one part is a malformed row, not a silent overwrite."""
    good = pc.is_null(table["__malformed"])
    ids = table["id"].to_pylist()
    seen: dict[str, int] = {}
    reasons = table["__malformed"].to_pylist()
    changed = False
    for i, (doc_id, ok) in enumerate(zip(ids, good.to_pylist())):
        if not ok:
            continue
        if doc_id in seen:
            reasons[i] = f"duplicate id {doc_id!r} (first at row {seen[doc_id]})"
            _fail(opts, part, table["__row"][i].as_py(), reasons[i])
            changed = True
        else:
            seen[doc_id] = table["__row"][i].as_py()
    if not changed:
        return table
    reason_arr = pa.array(reasons, pa.string())
    bad = pc.invert(pc.is_null(reason_arr))
    text = pc.if_else(bad, pa.scalar(None, pa.string()), table["text"])
    raw = pc.if_else(bad, pc.coalesce(table["__raw"], table["text"]), table["__raw"])
    table = table.set_column(table.schema.get_field_index("text"), "text", text)
    table = table.set_column(table.schema.get_field_index("__malformed"), "__malformed", reason_arr)
    table = table.set_column(table.schema.get_field_index("__raw"), "__raw", raw)
    return table
