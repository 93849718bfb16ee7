"""MinHash-LSH global phases: band shuffle, buckets to candidate pairs, exact Jaccard verification.

bands (per part)    band keys -> `bands/<bin>/<part>`, binned by key, so equal keys meet in one task
buckets (per bin)   equal keys -> star edges from the lowest number; with verification the pairs go to
                    the part of their first document (`cand/`) and a request for the second (`need/`)
shingles (per part) re-read the part's text once, shingle the requested documents (`shingles/<part>`),
                    and ship each pair's first set to the part of the second (`half/`)
verify (per part)   exact Jaccard of each pair on the same shingles; pairs at or above the threshold
                    enter the components phase
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.pipeline.dedupe.components import ls_dir, write_both_ways
from thresher.pipeline.dedupe.groups import make_uids, part_of, pkey, position_of, sidecar
from thresher.pipeline.dedupe.phases import read_bin, write_bins
from thresher.pipeline.dedupe.shingles import shingles
from thresher.pipeline.dedupe.stages import decode_bands
from thresher.pipeline.outputs import read_arrow, write_arrow_atomic
from thresher.pipeline.parts import Part
from thresher.pipeline.reader import ReadOptions, read_part
from thresher.pipeline.storage import place


def bands_task(key: str, ctx: dict) -> dict:
    i = int(key)
    side = sidecar(ctx, i, ["minhash_bands"])
    if side is None:
        return {"docs": 0}
    valid, keys = decode_bands(side["minhash_bands"], ctx["lsh_bands"])
    uids = make_uids(i, np.flatnonzero(valid))
    flat = keys.ravel()
    t = pa.table({"key": pa.array(flat, pa.uint64()), "uid": pa.array(np.repeat(uids, ctx["lsh_bands"]), pa.int64())})
    write_bins(t, (flat % np.uint64(ctx["bins"])).astype(np.int64), place(ctx["work"]) / "bands", key)
    return {"docs": int(len(uids))}


def bucket_edges(key: np.ndarray, uid: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Unique star edges (lowest number, other member) of every bucket of two or more equal keys."""
    if len(key) == 0:
        z = np.zeros(0, np.int64)
        return z, z, {"buckets": 0, "largest_bucket": 0}
    order = np.lexsort((uid, key))
    key, uid = key[order], uid[order]
    first = np.concatenate(([True], key[1:] != key[:-1]))
    starts = np.flatnonzero(first)
    sizes = np.diff(np.concatenate((starts, [len(key)])))
    head = np.repeat(uid[starts], sizes)
    member = ~first & (uid != head)
    u, v = head[member], uid[member]
    if len(u):
        o = np.lexsort((v, u))
        u, v = u[o], v[o]
        keep = np.concatenate(([True], (u[1:] != u[:-1]) | (v[1:] != v[:-1])))
        u, v = u[keep], v[keep]
    stats = {"buckets": int(np.sum(sizes >= 2)), "largest_bucket": int(sizes.max())}
    return u, v, stats


def buckets_task(key: str, ctx: dict) -> dict:
    t = read_bin(place(ctx["work"]) / "bands", key)
    if t is None:
        return {"pairs": 0, "buckets": 0, "largest_bucket": 0}
    u, v, stats = bucket_edges(t["key"].to_numpy(), t["uid"].to_numpy())
    if ctx["verify"]:
        work = place(ctx["work"])
        write_bins(pa.table({"u": pa.array(u, pa.int64()), "v": pa.array(v, pa.int64())}), part_of(u), work / "cand", key)
        write_bins(pa.table({"v": pa.array(v, pa.int64())}), part_of(v), work / "need", key)
    else:
        write_both_ways(u, v, ls_dir(place(ctx["work"]) / "cc", 1), key, ctx["bins"])
    return {"pairs": int(len(u)), **stats}


def group_value_order(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A permutation that sorts by group, then value (as `np.lexsort((values, group))`, ties in any order).

    With fewer than 2**16 groups, a sort by value followed by a stable sort by group
    (a radix sort on 16-bit keys) does the same about twice as fast.
    """
    if len(group) == 0 or int(group.max()) >= 1 << 16 or int(group.min()) < 0:
        return np.lexsort((values, group))
    by_value = np.argsort(values)
    return by_value[np.argsort(group.astype(np.uint16)[by_value], kind="stable")]


def sorted_sets(texts: pa.Array, ngram: int) -> pa.ListArray:
    """Sorted unique shingle hashes per text, as a list<uint64> column."""
    sh = shingles(texts, ngram)
    counts = np.diff(sh.offsets)
    doc = np.repeat(np.arange(len(counts)), counts)
    order = group_value_order(doc, sh.hashes)
    h, d = sh.hashes[order], doc[order]
    keep = np.concatenate(([True], (h[1:] != h[:-1]) | (d[1:] != d[:-1]))) if len(h) else np.zeros(0, bool)
    h, d = h[keep], d[keep]
    offsets = np.zeros(len(counts) + 1, np.int32)
    np.cumsum(np.bincount(d, minlength=len(counts)), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(h, pa.uint64()))


def _part_texts(ctx: dict, i: int, positions: np.ndarray) -> pa.Array:
    """Texts of part i's documents at these sidecar positions, parsing only their rows of the input."""
    part = Part.from_json(ctx["part_specs"][i])
    read = dict(ctx["read"])
    read["carry"] = tuple(read.get("carry", ()))
    read["strict"] = False
    side = sidecar(ctx, i, ["id", "source_row"]).take(pa.array(positions))
    rows = side["source_row"].to_numpy()
    table = read_part(part, ReadOptions(**read), rows=rows)
    table = table.filter(pc.is_null(table["__malformed"])).sort_by("__row")
    order = np.argsort(rows, kind="stable")
    ids = side["id"].combine_chunks().take(pa.array(order))
    if table.num_rows != len(ids) or not table["id"].combine_chunks().equals(ids):
        raise RuntimeError(f"part {part.key}: the input no longer matches its signatures; rerun with a new --out")
    return table["text"].combine_chunks().take(pa.array(np.argsort(order)))


def shingles_task(key: str, ctx: dict) -> dict:
    i = int(key)
    work = place(ctx["work"])
    cand = read_bin(work / "cand", key)
    need = read_bin(work / "need", key)
    if cand is None and need is None:
        return {"docs": 0}
    u = cand["u"].to_numpy() if cand is not None else np.zeros(0, np.int64)
    v = cand["v"].to_numpy() if cand is not None else np.zeros(0, np.int64)
    if len(u):
        pairs = np.unique(np.stack([u, v], 1), axis=0)
        u, v = pairs[:, 0], pairs[:, 1]
    wanted = np.unique(np.concatenate([u, need["v"].to_numpy() if need is not None else np.zeros(0, np.int64)]))
    sets = sorted_sets(_part_texts(ctx, i, position_of(wanted)), ctx["ngram"])
    write_arrow_atomic(pa.table({"uid": pa.array(wanted, pa.int64()), "shingles": sets}), work / "shingles" / f"{key}.arrow")
    if len(u):
        u_sets = sets.take(pa.array(np.searchsorted(wanted, u)))
        half = pa.table({"u": pa.array(u, pa.int64()), "v": pa.array(v, pa.int64()), "u_shingles": u_sets})
        write_bins(half, part_of(v), work / "half", key)
    return {"docs": int(len(wanted)), "pairs": int(len(u))}


def jaccard(a: pa.ListArray, b: pa.ListArray, chunk_values: int = 1 << 21) -> np.ndarray:
    """Exact Jaccard of row-aligned sorted unique sets, vectorised in chunks of rows."""
    n = len(a)
    out = np.zeros(n, np.float64)
    la = pc.list_value_length(a).to_numpy(zero_copy_only=False).astype(np.int64)
    lb = pc.list_value_length(b).to_numpy(zero_copy_only=False).astype(np.int64)
    cum = np.cumsum(la + lb)
    s = 0
    while s < n:
        base = cum[s - 1] if s else 0
        e = max(s + 1, int(np.searchsorted(cum, base + chunk_values, side="right")))
        ca, cb = a.slice(s, e - s), b.slice(s, e - s)
        va, vb = pc.list_flatten(ca).to_numpy(), pc.list_flatten(cb).to_numpy()
        ea, eb = pc.list_parent_indices(ca).to_numpy(), pc.list_parent_indices(cb).to_numpy()
        vals = np.concatenate([va, vb])
        rows = np.concatenate([ea, eb])
        order = group_value_order(rows, vals)
        vals, rows = vals[order], rows[order]
        same = (vals[1:] == vals[:-1]) & (rows[1:] == rows[:-1])
        inter = np.bincount(rows[1:][same], minlength=e - s)
        union = la[s:e] + lb[s:e] - inter
        out[s:e] = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        s = e
    return out


def verify_task(key: str, ctx: dict) -> dict:
    work = place(ctx["work"])
    half = read_bin(work / "half", key)
    if half is None:
        return {"candidates": 0, "verified": 0}
    own = read_arrow(work / "shingles" / f"{key}.arrow")
    v = half["v"].to_numpy()
    v_sets = own["shingles"].combine_chunks().take(pa.array(np.searchsorted(own["uid"].to_numpy(), v)))
    j = jaccard(half["u_shingles"].combine_chunks(), v_sets)
    ok = j >= ctx["threshold"] - 1e-12
    u = half["u"].to_numpy()
    write_both_ways(u[ok], v[ok], ls_dir(work / "cc", 1), f"v{key}", ctx["bins"])
    return {"candidates": int(len(u)), "verified": int(ok.sum())}


__all__ = ["bands_task", "buckets_task", "shingles_task", "verify_task", "jaccard", "bucket_edges", "sorted_sets", "pkey"]
