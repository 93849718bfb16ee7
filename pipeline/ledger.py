"""The ledger: where every input row ended up.

Each row is exactly one of `kept`, `dropped` (with a reason), `duplicate` (of a
doc id) or `malformed` (with a reason). Per-part ledgers are Parquet files keyed by
doc id; a job's summary adds them up and checks that the sum equals rows read.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

STATUSES = ("kept", "dropped", "duplicate", "malformed")
LEDGER_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("duplicate_of", pa.string()),
    ]
)


class LedgerInvariantError(AssertionError):
    """The ledger lost or invented rows."""


def ledger_table(ids: pa.Array, status: pa.Array, reason: pa.Array, duplicate_of: pa.Array | None = None) -> pa.Table:
    n = len(ids)
    if duplicate_of is None:
        duplicate_of = pa.nulls(n, pa.string())
    return pa.Table.from_arrays([ids, status, reason, duplicate_of], schema=LEDGER_SCHEMA)


def initial_ledger(ids: pa.Array, malformed: pa.Array) -> pa.Table:
    """After reading: malformed rows with their reason, everything else kept."""
    bad = pc.invert(pc.is_null(malformed))
    status = pc.if_else(bad, "malformed", "kept")
    return ledger_table(ids, status.cast(pa.string()), malformed)


def count(ledger: pa.Table) -> dict:
    """Counts by status, with reasons for dropped and malformed rows."""
    status = ledger["status"]
    counts = dict.fromkeys(STATUSES, 0)
    for row in pc.value_counts(status).to_pylist():
        if row["values"] not in counts:
            raise LedgerInvariantError(f"unknown ledger status {row['values']!r}")
        counts[row["values"]] = row["counts"]
    out: dict = {"rows": ledger.num_rows, **counts, "dropped_by_reason": {}, "malformed_by_reason": {}}
    for state in ("dropped", "malformed"):
        sub = ledger.filter(pc.equal(status, state))
        if sub.num_rows:
            reasons = sub["reason"] if state == "dropped" else malformed_kind(sub["reason"])
            for row in pc.value_counts(reasons).to_pylist():
                out[f"{state}_by_reason"][row["values"] or "unspecified"] = row["counts"]
    return out


def malformed_kind(reasons: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Malformed reasons without their per-row details (ids, offsets, line numbers), for counting.

    The ledger keeps each row's full reason; counts by kind stay a short list even
    when a million rows are bad in a million slightly different ways.
    """
    kinds = pc.replace_substring_regex(reasons, r"^(duplicate id across parts|duplicate id)\b.*$", r"\1")
    return pc.replace_substring_regex(kinds, r"(^|[\s(=:])\d+", r"\1N")


def merge_counts(parts: Iterable[Mapping]) -> dict:
    total: dict = {"rows": 0, **dict.fromkeys(STATUSES, 0), "dropped_by_reason": Counter(), "malformed_by_reason": Counter()}
    for c in parts:
        for k in ("rows", *STATUSES):
            total[k] += int(c.get(k, 0))
        for k in ("dropped_by_reason", "malformed_by_reason"):
            total[k].update(c.get(k, {}))
    total["dropped_by_reason"] = dict(sorted(total["dropped_by_reason"].items()))
    total["malformed_by_reason"] = dict(sorted(total["malformed_by_reason"].items()))
    return total


def check_invariant(counts: Mapping, rows_read: int) -> None:
    accounted = sum(int(counts[s]) for s in STATUSES)
    if accounted != rows_read or counts["rows"] != rows_read:
        raise LedgerInvariantError(
            f"ledger accounts for {accounted} rows ({ {s: counts[s] for s in STATUSES} }) but {rows_read} were read"
        )


def read_ledger(job_dir: str | Path) -> pa.Table:
    """The whole job's ledger as one table (small: ids and statuses only)."""
    from thresher.pipeline.storage import at

    path = at(job_dir) / "ledger"
    if not path.is_dir():
        raise FileNotFoundError(f"{job_dir}: no ledger/ directory; is this a thresher job output?")
    from thresher.pipeline.outputs import parquet_dataset

    return parquet_dataset(path, schema=LEDGER_SCHEMA).to_table()


def format_counts(counts: Mapping) -> str:
    lines = [f"ledger: {counts['rows']} rows read"]
    for s in STATUSES:
        lines.append(f"  {s:<10} {counts[s]:>10}")
        for reason, n in (counts.get(f"{s}_by_reason") or {}).items():
            lines.append(f"      {n:>10}  {reason}")
    accounted = sum(counts[s] for s in STATUSES)
    lines.append(f"  {'sum':<10} {accounted:>10}  ({'ok' if accounted == counts['rows'] else 'MISMATCH'})")
    return "\n".join(lines)
