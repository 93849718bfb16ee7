"""Selecting documents by their scores: the cheap step after scoring.

Re-reads each part's documents, evaluates the `--where` expression on its sidecar,
writes the kept documents as Parquet shards and carries the ledger forward: a
document the expression rejects is `dropped`, with the first failing scorer's
reason when the expression uses `<scorer>_pass` columns.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.metrics.errors import InputError
from thresher.pipeline import expression
from thresher.pipeline import ledger as ledger_mod
from thresher.pipeline.outputs import marker_path, read_parquet, write_json_atomic, write_part_file
from thresher.pipeline.reader import ReadOptions, read_part
from thresher.pipeline.shards import Part
from thresher.pipeline.storage import place

SHARDS = "shards"


class SelectError(InputError):
    """The scored directory is incomplete or inconsistent."""


def load_job(scored: Path) -> dict:
    path = place(scored) / "job.json"
    if not path.exists():
        raise SelectError(f"{scored}: no job.json; pass the --out directory of `thresher score`")
    job = json.loads(path.read_text())
    if "part_specs" not in job:
        raise SelectError(f"{scored}: job.json has no part list; rerun `thresher score` with this version")
    return job


def _drop_reasons(sidecar: pa.Table, where: str, mask: np.ndarray) -> list[str | None]:
    reason_cols = [c[: -len("_pass")] + "_reason" for c in expression.columns(where)
                   if c.endswith("_pass") and c[: -len("_pass")] + "_reason" in sidecar.column_names]
    fallback = f"where: {where}"
    if not reason_cols:
        return [None if keep else fallback for keep in mask]
    names = [c[: -len("_reason")] for c in reason_cols]
    out: list[str | None] = []
    for keep, *reasons in zip(mask, *[sidecar[c].to_pylist() for c in reason_cols]):
        if keep:
            out.append(None)
            continue
        hit = next(((n, r) for n, r in zip(names, reasons) if r is not None), None)
        out.append(f"{hit[0]}:{hit[1]}" if hit else fallback)
    return out


def select_part(part: Part, out_dir: Path, scored: str, where: str, read: dict) -> dict:
    scored_dir = place(scored)
    opts = ReadOptions(**{**read, "carry": tuple(read.get("carry", ())), "keep_fields": True, "strict": False})
    docs = read_part(part, opts)
    good = docs.filter(pc.is_null(docs["__malformed"]))
    side_path = scored_dir / "sidecars" / f"{part.key}.parquet"
    sidecar = read_parquet(side_path) if side_path.exists() else pa.table({"id": pa.array([], pa.string())})
    if sidecar.num_rows != good.num_rows or not sidecar["id"].equals(good["id"]):
        raise SelectError(f"{side_path}: sidecar rows do not match the input part {part.key}; did the input change?")
    old_ledger_path = scored_dir / "ledger" / f"{part.key}.parquet"
    old = read_parquet(old_ledger_path) if old_ledger_path.exists() else ledger_mod.ledger_table(
        pa.array([], pa.string()), pa.array([], pa.string()), pa.array([], pa.string()))
    if sidecar.num_rows:
        mask = expression.evaluate(where, sidecar).to_numpy(zero_copy_only=False)
    else:
        mask = np.zeros(0, dtype=bool)
    reasons = dict(zip(sidecar["id"].to_pylist(), _drop_reasons(sidecar, where, mask)))
    statuses, why = [], []
    for doc_id, status, reason in zip(old["id"].to_pylist(), old["status"].to_pylist(), old["reason"].to_pylist()):
        if status == "kept":
            r = reasons.get(doc_id)
            statuses.append("kept" if r is None else "dropped")
            why.append(r)
        else:
            statuses.append(status)
            why.append(reason)
    new_ledger = ledger_mod.ledger_table(old["id"], pa.array(statuses, pa.string()), pa.array(why, pa.string()),
                                         old["duplicate_of"])
    outputs: dict[str, str] = {}
    kept = good.filter(pa.array(mask, pa.bool_())) if good.num_rows else good
    kept = kept.drop_columns([c for c in kept.column_names if c.startswith("__")])
    write_part_file(kept, out_dir, SHARDS, part.key, outputs)
    write_part_file(new_ledger, out_dir, "ledger", part.key, outputs)
    counts = ledger_mod.count(new_ledger)
    ledger_mod.check_invariant(counts, old.num_rows)
    marker = {"part": json.loads(part.to_json()), "rows_read": old.num_rows, "ledger": counts, "outputs": outputs,
              "kept_documents": kept.num_rows}
    write_json_atomic(marker, marker_path(out_dir, part.key))
    return marker
