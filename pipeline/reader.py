"""Reading one part into an Arrow table, with every row accounted for.

Well-formed rows get `id` and `text`; a row that cannot be read (bad JSON, invalid
UTF-8, missing or non-string text, oversized, truncated stream, unreadable file)
stays in the table with `text` null and its reason in `__malformed`, so the ledger
can count it and the quarantine can keep its raw bytes.
"""
from __future__ import annotations

import json
import lzma
import re
import zlib
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from thresher.pipeline.columnar_reader import read_arrow, read_parquet
from thresher.pipeline.line_streams import CODECS, Lines, open_compressed
from thresher.pipeline.parts import Part, ShardError
from thresher.pipeline.read_rows import MISSING_TEXT, RAW_KEEP_BYTES, MalformedInput, ReadOptions, Rows, fail
from thresher.pipeline.safety import inflate_limit
from thresher.pipeline.storage import StorageError, at

__all__ = ["RAW_KEEP_BYTES", "MalformedInput", "ReadOptions", "read_part"]

# A JSON escape of a UTF-16 surrogate: its text may decode to a lone surrogate, which no UTF-8 output can hold.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


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
        return None, f"{MISSING_TEXT} field {opts.text_field!r}"
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


def _handle_line(line: bytes, row: int, part: Part, opts: ReadOptions, out: Rows, whole: bool = True) -> None:
    if row == 0 and line.startswith(b"\xef\xbb\xbf"):
        line = line[3:]  # a byte-order mark is not content
    if whole and (not line or line.isspace()):
        return  # blank lines are not rows
    default_id = f"{part.shard_id}#{row}"
    if not whole or (len(line) > opts.max_doc_bytes and len(line.rstrip(b"\r\n")) > opts.max_doc_bytes):
        reason = f"line longer than {opts.max_doc_bytes} bytes"
        fail(opts, part, row, reason)
        out.bad(row, default_id, reason, line)
        return
    try:
        decoded = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        reason = f"invalid UTF-8 at byte {exc.start}"
        fail(opts, part, row, reason)
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
        fail(opts, part, row, reason)
        out.bad(row, default_id, reason, line)
        return
    out.good(row, doc_id, text, extras)


def _read_jsonl(part: Part, opts: ReadOptions, out: Rows) -> None:
    with at(part.path).open_input() as fh:
        if part.byte_start:
            fh.seek(part.byte_start)
        pos = part.byte_start or 0
        row = part.start
        span = None if part.byte_stop is None else part.byte_stop - pos
        for line, used, whole, blanks in Lines(fh, opts.max_doc_bytes, span=span):
            pos += blanks
            row += blanks
            if part.byte_stop is not None and pos >= part.byte_stop:
                break
            pos += used
            if not out.skip(row):
                _handle_line(line, row, part, opts, out, whole)
            row += 1


def _read_jsonl_compressed(part: Part, opts: ReadOptions, out: Rows) -> None:
    """Rows of a gzip, bzip2, xz or zstd stream; a truncated or corrupt stream ends in one bad row saying where."""
    row = 0
    try:
        source = at(part.path)
        raw = None
        if source.local is None:  # one lookup: the size comes with opening the object
            raw, size = source.open_input_sized()
        else:
            size = source.stat().size
        budget = inflate_limit(size, opts.max_decompressed_bytes, opts.max_compression_ratio)
        with open_compressed(source, part.fmt, raw) as fh:
            for line, _, whole, blanks in Lines(fh, opts.max_doc_bytes, budget):
                row += blanks
                if part.stop is not None and row >= part.stop:
                    break
                if row >= part.start and not out.skip(row):
                    _handle_line(line, row, part, opts, out, whole)
                row += 1
    except (EOFError, OSError, zlib.error, lzma.LZMAError, pa.ArrowException, ShardError) as exc:
        if isinstance(exc, (MalformedInput, StorageError)):
            raise
        codec = CODECS[part.fmt]
        kind = f"truncated {codec} stream" if isinstance(exc, EOFError) else f"unreadable {codec} stream"
        reason = f"{kind} after line {row}: {exc}"
        fail(opts, part, row, reason)
        if row >= part.start and (part.stop is None or row < part.stop):
            out.bad(row, f"{part.shard_id}#{row}", reason, None)


_READERS = {"jsonl": _read_jsonl, "parquet": read_parquet, "arrow": read_arrow,
            **dict.fromkeys(CODECS, _read_jsonl_compressed)}


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
    out = Rows(only=frozenset(int(r) for r in rows) if rows is not None else None)
    try:
        _READERS[part.fmt](part, opts, out)
    except (MalformedInput, StorageError):
        raise  # a store that keeps failing is no property of the input: the task fails and is retried, then the job
    except OSError as exc:  # unreadable file: a link loop, a dangling link, permissions, an I/O error
        row = out.rows[-1] + 1 if out.rows else part.start
        reason = f"unreadable file: {exc.strerror or exc}"
        fail(opts, part, row, reason)
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
    if out.only is not None and part.fmt not in ("jsonl", *CODECS):  # columnar formats read whole, then pick
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
            fail(opts, part, table["__row"][i].as_py(), reasons[i])
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
