"""From duplicate groups to sidecars and ledgers: representatives, their doc ids, per-part outputs.

Documents are numbered `uid = part index << 32 | position in the part's sidecar`,
so a number says which part holds the document and where, and "lowest number"
means "first in input order". A group's representative is the member with the
highest `keep_by` score (nulls lowest), ties and the no-score case going to the
lowest number; the choice depends only on the group, never on workers or bins.
"""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.pipeline import ledger as ledger_mod
from thresher.pipeline.dedupe.components import labels_from_stars
from thresher.pipeline.dedupe.phases import bin_name, bin_of, read_bin, write_bins
from thresher.pipeline.outputs import marker_path, read_parquet, write_json_atomic, write_part_file
from thresher.pipeline.storage import place

POS_MASK = np.int64(0xFFFFFFFF)


def make_uids(part_index: int, positions: np.ndarray) -> np.ndarray:
    return (np.int64(part_index) << np.int64(32)) | np.asarray(positions, np.int64)


def part_of(uids: np.ndarray) -> np.ndarray:
    return np.asarray(uids, np.int64) >> np.int64(32)


def position_of(uids: np.ndarray) -> np.ndarray:
    return np.asarray(uids, np.int64) & POS_MASK


def pkey(i: int) -> str:
    return bin_name(i)


def sidecar(ctx: dict, i: int, columns: list[str] | None = None, source: str = "sig") -> pa.Table | None:
    """Part i's sidecar from the signature job (`sig`) or the score job (`score`), or None for an empty part."""
    root = ctx["sig_dir"] if source == "sig" else ctx["score_dir"]
    path = place(root) / "sidecars" / f"{ctx['parts'][i]}.parquet"
    return read_parquet(path, columns=columns) if path.exists() else None


def part_scores(ctx: dict, i: int, positions: np.ndarray) -> np.ndarray:
    """keep_by values of part i's rows at `positions`, as float64 with nulls (and NaN) as -inf."""
    source = "score" if ctx.get("score_dir") else "sig"
    col = ctx["keep_by"]
    t = sidecar(ctx, i, ["id", col], source)
    if t is None:
        raise RuntimeError(f"part {ctx['parts'][i]}: no sidecar holding {col!r}")
    try:
        vals = pc.cast(t[col], pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValueError(f"--keep-by column {col!r} is not numeric ({t.schema.field(col).type}): {exc}") from None
    arr = pc.fill_null(vals, float("-inf")).to_numpy(zero_copy_only=False).astype(np.float64)
    arr = np.where(np.isnan(arr), -np.inf, arr)
    return arr[positions]


def choose_representatives(label: np.ndarray, uid: np.ndarray, score: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per member (sorted by group): (uid, representative uid, group size); one group per distinct label."""
    neg = -score if score is not None else np.zeros(len(uid))
    order = np.lexsort((uid, neg, label))
    label, uid = label[order], uid[order]
    starts = np.flatnonzero(np.concatenate(([True], label[1:] != label[:-1])))
    sizes = np.diff(np.concatenate((starts, [len(label)])))
    rep = np.repeat(uid[starts], sizes)
    return uid, rep, np.repeat(sizes, sizes)


def size_histogram(sizes_per_member: np.ndarray, rep: np.ndarray, uid: np.ndarray) -> dict[str, int]:
    """{group size: number of groups}, counting each group once (at its representative)."""
    s = sizes_per_member[rep == uid]
    vals, counts = np.unique(s, return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(vals, counts)}


def write_reps(ctx: dict, uid: np.ndarray, rep: np.ndarray, size: np.ndarray, producer: str) -> None:
    t = pa.table({"uid": pa.array(uid, pa.int64()), "rep": pa.array(rep, pa.int64()), "size": pa.array(size, pa.int64())})
    write_bins(t, part_of(rep), place(ctx["work"]) / "reps", producer)


def labels_task(key: str, ctx: dict, rounds: int) -> dict:
    """Component labels of one bin of nodes, routed to the score join (keep_by) or straight to grouping."""
    nodes, labels = labels_from_stars(key, str(place(ctx["work"]) / "cc"), rounds)
    if len(nodes) == 0:
        return {"nodes": 0}
    t = pa.table({"uid": pa.array(nodes, pa.int64()), "label": pa.array(labels, pa.int64())})
    if ctx.get("keep_by"):
        write_bins(t, part_of(nodes), place(ctx["work"]) / "labels", key)
    else:
        write_bins(t, bin_of(labels, ctx["bins"]), place(ctx["work"]) / "grouped", key)
    return {"nodes": int(len(nodes))}


def attach_scores_task(key: str, ctx: dict) -> dict:
    """Add each labelled document's keep_by score (read where the document lives), then bin by label."""
    i = int(key)
    t = read_bin(place(ctx["work"]) / "labels", key)
    if t is None:
        return {"nodes": 0}
    uid = t["uid"].to_numpy()
    t = t.append_column("score", pa.array(part_scores(ctx, i, position_of(uid)), pa.float64()))
    write_bins(t, bin_of(t["label"].to_numpy(), ctx["bins"]), place(ctx["work"]) / "grouped", key)
    return {"nodes": int(t.num_rows)}


def groups_task(key: str, ctx: dict) -> dict:
    t = read_bin(place(ctx["work"]) / "grouped", key)
    if t is None:
        return {"groups": 0, "members": 0, "histogram": {}}
    score = t["score"].to_numpy() if "score" in t.column_names else None
    uid, rep, size = choose_representatives(t["label"].to_numpy(), t["uid"].to_numpy(), score)
    write_reps(ctx, uid, rep, size, key)
    hist = size_histogram(size, rep, uid)
    return {"groups": int(sum(hist.values())), "members": int(len(uid)), "histogram": hist}


def rep_ids_task(key: str, ctx: dict) -> dict:
    """Replace representative numbers by their doc ids (read from the part that holds them)."""
    t = read_bin(place(ctx["work"]) / "reps", key)
    if t is None:
        return {"members": 0}
    ids = sidecar(ctx, int(key), ["id"])["id"]
    rep = t["rep"].to_numpy()
    out = pa.table({"uid": t["uid"], "rep": t["rep"], "rep_id": ids.take(pa.array(position_of(rep))), "size": t["size"]})
    write_bins(out, part_of(t["uid"].to_numpy()), place(ctx["work"]) / "final", key)
    return {"members": int(out.num_rows)}


def finish_task(key: str, ctx: dict) -> dict:
    """Write part i's sidecar (id, duplicate_of, dup_group) and its ledger, then the part's marker."""
    i = int(key)
    part_key = ctx["parts"][i]
    out = place(ctx["out"])
    side = sidecar(ctx, i, ["id"])
    n = side.num_rows if side is not None else 0
    ids = side["id"] if side is not None else pa.chunked_array([], pa.string())
    t = read_bin(place(ctx["work"]) / "final", key)
    src = np.full(n, -1, np.int64)
    group = np.ones(n, np.int64)
    rep_ids = pa.array([], pa.string())
    if t is not None:
        uid, rep = t["uid"].to_numpy(), t["rep"].to_numpy()
        pos = position_of(uid)
        group[pos] = t["size"].to_numpy()
        dup = uid != rep
        src[pos[dup]] = np.flatnonzero(dup)
        rep_ids = t["rep_id"].combine_chunks()
    duplicate_of = rep_ids.take(pa.array(src, mask=src < 0)) if n else pa.array([], pa.string())
    sc = pa.table({"id": ids, "duplicate_of": duplicate_of.cast(pa.string()), "dup_group": pa.array(group, pa.int64())})
    base = place(ctx["base_dir"]) / "ledger" / f"{part_key}.parquet"
    old = read_parquet(base) if base.exists() else ledger_mod.ledger_table(
        pa.array([], pa.string()), pa.array([], pa.string()), pa.array([], pa.string()))
    if n:
        where = pc.index_in(old["id"], value_set=sc["id"].combine_chunks())
        dup_of_row = sc["duplicate_of"].combine_chunks().take(where)
        is_dup = pc.and_(pc.is_valid(dup_of_row), pc.equal(old["status"], "kept"))
        is_dup = pc.fill_null(is_dup, False)
        status = pc.if_else(is_dup, "duplicate", old["status"])
        reason = pc.if_else(is_dup, ctx["method"], old["reason"])
        dup_col = pc.if_else(is_dup, dup_of_row, old["duplicate_of"])
        new = ledger_mod.ledger_table(old["id"].combine_chunks(), status.combine_chunks().cast(pa.string()),
                                      reason.combine_chunks().cast(pa.string()), dup_col.combine_chunks().cast(pa.string()))
    else:
        new = old
    outputs: dict[str, str] = {}
    write_part_file(sc, out, "sidecars", part_key, outputs)
    write_part_file(new, out, "ledger", part_key, outputs)
    counts = ledger_mod.count(new)
    ledger_mod.check_invariant(counts, old.num_rows)
    marker = {"part": json.loads(ctx["part_specs"][i]), "rows_read": old.num_rows, "ledger": counts, "outputs": outputs,
              "duplicates": int(counts["duplicate"])}
    write_json_atomic(marker, marker_path(out, part_key))
    return {"duplicates": int(counts["duplicate"])}


def merge_histograms(markers: list[dict]) -> Counter:
    total: Counter = Counter()
    for m in markers:
        total.update({int(k): v for k, v in m.get("histogram", {}).items()})
    return total
