"""Doc ids given by the input must be unique over the whole job, not only within a part.

Parts are finalized independently, so a later copy of an id in another part is
found once every part is complete, over the ledgers (ids only): it becomes a
malformed row of its part, whose outputs and marker are rewritten. The pass is
idempotent, so a run killed midway through it is repaired by the next one.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.pipeline import ledger as ledger_mod
from thresher.pipeline.engines.steps import LEDGER, MALFORMED, SIDECARS
from thresher.pipeline.outputs import (
    file_sha256,
    marker_path,
    part_file,
    read_marker,
    read_parquet,
    write_json_atomic,
    write_parquet_atomic,
)
from thresher.pipeline.parts import Part
from thresher.pipeline.reader import RAW_KEEP_BYTES, MalformedInput, ReadOptions, read_part

CROSS_PART_DUPLICATE = "duplicate id across parts: "


def mark_ids_seen_in_earlier_parts(out: Path, parts: list[Part], read: ReadOptions) -> int:
    """Mark every later copy of an id malformed (see the module docstring); returns how many rows it marked.

    In strict mode the first later copy stops the job instead, naming its file and line.
    """
    tables = []
    for i, p in enumerate(parts):
        path = part_file(out, LEDGER, p.key)
        if path.exists():
            t = read_parquet(path, columns=["id", "status", "reason"])
            order = np.int64(i) * (1 << 32) + np.arange(t.num_rows, dtype=np.int64)
            tables.append(t.append_column("__order", pa.array(order)))
    if not tables:
        return 0
    led = pa.concat_tables(tables)
    earlier = pc.starts_with(pc.fill_null(led["reason"], ""), CROSS_PART_DUPLICATE)
    cand = led.filter(pc.or_(pc.equal(led["status"], "kept"), earlier))
    firsts = cand.group_by("id").aggregate([("__order", "min"), ("__order", "count")])
    firsts = firsts.filter(pc.greater(firsts["__order_count"], 1))
    if firsts.num_rows == 0:
        return 0
    joined = cand.join(firsts, "id")
    joined = joined.filter(pc.not_equal(joined["__order"], joined["__order_min"]))
    later = joined.select(["id", "__order", "__order_min"]).to_pylist()
    by_part: dict[int, dict[int, tuple[str, str]]] = defaultdict(dict)
    for r in later:
        first = parts[r["__order_min"] >> 32]
        by_part[r["__order"] >> 32][r["__order"] & 0xFFFFFFFF] = (r["id"], f"{CROSS_PART_DUPLICATE}{r['id']!r} (first in {first.shard_id})")
    if read.strict:
        i = min(by_part)
        _, (doc_id, reason) = min(by_part[i].items())
        rows = read_part(parts[i], ReadOptions(**{**asdict(read), "strict": False}))
        hit = rows.filter(pc.equal(rows["id"], doc_id))["__row"].to_pylist()
        line = f"line {hit[0] + 1}: " if hit else ""
        raise MalformedInput(f"{parts[i].path}: {line}{reason} (run without --strict to quarantine bad rows)")
    for i in sorted(by_part):
        _rewrite_part_with_duplicates(out, parts[i], read, by_part[i])
    return len(later)


def _rewrite_part_with_duplicates(out: Path, part: Part, read: ReadOptions, dups: dict[int, tuple[str, str]]) -> None:
    """Mark ledger positions `dups` malformed, drop them from the sidecar, quarantine them; marker last."""
    ledger_path = part_file(out, LEDGER, part.key)
    ledger = read_parquet(ledger_path)
    status, reason = ledger["status"].to_pylist(), ledger["reason"].to_pylist()
    for pos, (_, why) in dups.items():
        status[pos], reason[pos] = "malformed", why
    new_ledger = ledger_mod.ledger_table(ledger["id"].combine_chunks(), pa.array(status, pa.string()),
                                         pa.array(reason, pa.string()), ledger["duplicate_of"].combine_chunks())
    if not new_ledger.equals(ledger):
        write_parquet_atomic(new_ledger, ledger_path)
    ids = pa.array(sorted({doc_id for doc_id, _ in dups.values()}), pa.string())
    side_path = part_file(out, SIDECARS, part.key)
    if side_path.exists():
        side = read_parquet(side_path)
        keep = pc.invert(pc.is_in(side["id"], value_set=ids))
        if not pc.all(keep).as_py():
            side = side.filter(keep)
            if side.num_rows:
                write_parquet_atomic(side, side_path)
            else:
                side_path.unlink()
    q_path = part_file(out, MALFORMED, part.key)
    old_q = read_parquet(q_path) if q_path.exists() else None
    have = set(old_q.filter(pc.starts_with(pc.fill_null(old_q["reason"], ""), CROSS_PART_DUPLICATE))["id"].to_pylist()) \
        if old_q is not None else set()
    if have != set(ids.to_pylist()):
        rows = read_part(part, ReadOptions(**{**asdict(read), "strict": False}))
        rows = rows.filter(pc.and_(pc.is_in(rows["id"], value_set=ids), pc.is_null(rows["__malformed"])))
        why = dict(dups.values())
        new_q = pa.table({"id": rows["id"], "row": rows["__row"],
                          "reason": pa.array([why[i] for i in rows["id"].to_pylist()], pa.string()),
                          "raw": pc.utf8_slice_codeunits(rows["text"], 0, RAW_KEEP_BYTES)})
        if old_q is not None:
            old_q = old_q.filter(pc.invert(pc.starts_with(pc.fill_null(old_q["reason"], ""), CROSS_PART_DUPLICATE)))
            new_q = pa.concat_tables([old_q, new_q.cast(old_q.schema)])
        write_parquet_atomic(new_q.sort_by("row"), q_path)
    marker = read_marker(out, part.key)
    outputs = {}
    for name, path in ((SIDECARS, side_path), (LEDGER, ledger_path), (MALFORMED, q_path)):
        if path.exists():
            outputs[name] = file_sha256(path)
    counts = ledger_mod.count(new_ledger)
    ledger_mod.check_invariant(counts, marker["rows_read"])
    kept = counts["kept"]
    stages = {name: {**st, "rows_in": kept, "rows_out": kept} for name, st in marker["stages"].items()}
    fresh = {**marker, "ledger": counts, "outputs": outputs, "stages": stages}
    if fresh != marker:
        write_json_atomic(fresh, marker_path(out, part.key))
