"""Columnar shards (Parquet, Arrow streams): the text column checked as a whole, then rows split good and bad.

Text in another string encoding (dictionary, view) is decoded first; a missing,
mistyped or repeated text column makes every row of the part bad for that reason;
a value that is not valid UTF-8 is one bad row.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from thresher.pipeline.parts import Part, ShardError
from thresher.pipeline.read_rows import MISSING_TEXT, ReadOptions, Rows, fail
from thresher.pipeline.safety import inflate_limit
from thresher.pipeline.storage import StorageError, at


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


def _all_bad(part: Part, opts: ReadOptions, out: Rows, first_row: int, n: int, reason: str) -> None:
    """Every row of a columnar part is bad for one reason (a missing or mistyped column)."""
    fail(opts, part, first_row, reason)
    for i in range(n):
        out.bad(first_row + i, f"{part.shard_id}#{first_row + i}", reason, None)


def records_from_table(table: pa.Table, part: Part, opts: ReadOptions, out: Rows, first_row: int) -> None:
    """Columnar inputs: validate the text column vectorised, then split good and bad rows."""
    n = table.num_rows
    names = table.column_names
    if opts.text_field not in names:
        return _all_bad(part, opts, out, first_row, n,
                        f"{MISSING_TEXT} column {opts.text_field!r} (columns: {', '.join(names)})")
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
            fail(opts, part, row, reason)
            out.bad(row, default_id, reason, text)
            continue
        extra = {c: extra_cols[c][i] for c in keep} if keep else None
        out.good(row, doc_id, text, extra)


def read_parquet(part: Part, opts: ReadOptions, out: Rows) -> None:
    try:
        source = at(part.path)
        native = None if source.local is not None else source.open_native()
        pf = pq.ParquetFile(part.path if native is None else native, pre_buffer=True)
        groups = list(range(pf.metadata.num_row_groups) if part.batch_start is None
                      else range(part.batch_start, part.batch_stop))
        inflated = sum(pf.metadata.row_group(g).total_byte_size for g in groups)
        size = source.stat().size if native is None else native.size()  # no second lookup of an object
        budget = inflate_limit(size, opts.max_decompressed_bytes, opts.max_compression_ratio)
        if inflated > budget:
            raise ShardError(f"row groups inflate to {inflated} bytes, over the limit of {budget} (raise "
                             f"max_decompressed_bytes / max_compression_ratio if this is expected)")
        table = pf.read_row_groups(groups) if groups else pf.schema_arrow.empty_table()
    except StorageError:
        raise  # the store failed, not the file: the task fails (and is retried)
    except Exception as exc:  # pyarrow raises several types for broken files
        reason = f"unreadable Parquet file: {exc}"
        fail(opts, part, part.start, reason)
        out.bad(part.start, f"{part.shard_id}#{part.start}", reason, None)
        return
    records_from_table(table, part, opts, out, part.start)


def read_arrow(part: Part, opts: ReadOptions, out: Rows) -> None:
    try:
        with at(part.path).open_native() as src:
            reader = pa.ipc.open_stream(src)
            batches = list(reader)
        if part.batch_start is not None:
            batches = batches[part.batch_start : part.batch_stop]
        table = pa.Table.from_batches(batches, schema=reader.schema)
    except StorageError:
        raise
    except Exception as exc:
        reason = f"unreadable Arrow stream: {exc}"
        fail(opts, part, part.start, reason)
        out.bad(part.start, f"{part.shard_id}#{part.start}", reason, None)
        return
    records_from_table(table, part, opts, out, part.start)


