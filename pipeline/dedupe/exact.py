"""Exact dedupe: documents whose normalised text has the same 128-bit hash form a group.

hashes (per part)  digests (+ keep_by score) -> `exact/<bin>/<part>`, binned by the digest
groups (per bin)   equal digests -> representative and size -> `reps/`
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from thresher.pipeline.dedupe.groups import make_uids, part_scores, sidecar, size_histogram, write_reps
from thresher.pipeline.dedupe.phases import read_bin, write_bins
from thresher.pipeline.storage import place


def digests(col: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(valid mask, (n_valid, 2) uint64) from a column of 16-byte digests."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    valid = col.is_valid().to_numpy(zero_copy_only=False)
    good = col.filter(pa.array(valid)) if not valid.all() else col
    if len(good) == 0:
        return valid, np.zeros((0, 2), np.uint64)
    bufs = good.buffers()
    offs = np.frombuffer(bufs[1], np.int32, count=good.offset + len(good) + 1)[good.offset:]
    raw = np.frombuffer(bufs[2], np.uint8)[offs[0] : offs[-1]]
    return valid, raw.view("<u8").reshape(len(good), 2).astype(np.uint64)


def hashes_task(key: str, ctx: dict) -> dict:
    i = int(key)
    side = sidecar(ctx, i, ["exact_hash"])
    if side is None:
        return {"docs": 0}
    valid, h = digests(side["exact_hash"])
    pos = np.flatnonzero(valid)
    cols = {"hi": pa.array(h[:, 0], pa.uint64()), "lo": pa.array(h[:, 1], pa.uint64()),
            "uid": pa.array(make_uids(i, pos), pa.int64())}
    if ctx.get("keep_by"):
        cols["score"] = pa.array(part_scores(ctx, i, pos), pa.float64())
    write_bins(pa.table(cols), (h[:, 0] % np.uint64(ctx["bins"])).astype(np.int64), place(ctx["work"]) / "exact", key)
    return {"docs": int(len(pos))}


def exact_groups(hi: np.ndarray, lo: np.ndarray, uid: np.ndarray, score: np.ndarray | None):
    """Members of groups of two or more equal digests: (uid, representative, size), sorted by group."""
    neg = -score if score is not None else np.zeros(len(uid))
    order = np.lexsort((uid, neg, lo, hi))
    hi, lo, uid = hi[order], lo[order], uid[order]
    new = np.concatenate(([True], (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])))
    starts = np.flatnonzero(new)
    sizes = np.diff(np.concatenate((starts, [len(uid)])))
    size = np.repeat(sizes, sizes)
    rep = np.repeat(uid[starts], sizes)
    keep = size >= 2
    return uid[keep], rep[keep], size[keep]


def groups_task(key: str, ctx: dict) -> dict:
    t = read_bin(place(ctx["work"]) / "exact", key)
    if t is None:
        return {"groups": 0, "members": 0, "histogram": {}}
    score = t["score"].to_numpy() if "score" in t.column_names else None
    uid, rep, size = exact_groups(t["hi"].to_numpy(), t["lo"].to_numpy(), t["uid"].to_numpy(), score)
    write_reps(ctx, uid, rep, size, key)
    hist = size_histogram(size, rep, uid)
    return {"groups": int(sum(hist.values())), "members": int(len(uid)), "histogram": hist}
