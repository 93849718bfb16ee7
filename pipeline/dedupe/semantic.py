"""Semantic dedupe (SemDeDup, Abbas et al. 2023): embeddings -> k-means -> within-cluster cosine.

fit (one task)     spherical k-means on a deterministic sample of the embeddings (fitting on a
                   sample keeps k-means off the memory wall; assignments still cover every document)
assign (per part)  nearest centroid and cosine distance to it -> `semantic/<bin>/<part>`, binned by cluster
within (per bin)   per cluster, order members by what to keep first (farthest from the centroid, or the
                   best `keep_by` score), then drop each member whose cosine to an already kept member
                   exceeds the threshold (1 - eps); it becomes a duplicate of its most similar kept member
"""
from __future__ import annotations

import io

import numpy as np
import pyarrow as pa

from thresher.pipeline.dedupe.groups import make_uids, part_scores, sidecar, size_histogram, write_reps
from thresher.pipeline.dedupe.phases import read_bin, write_bins
from thresher.pipeline.dedupe.shingles import mix64
from thresher.pipeline.dedupe.stages import decode_embeddings
from thresher.pipeline.outputs import write_bytes_atomic
from thresher.pipeline.storage import at, place


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(n > 0, n, 1.0)).astype(np.float32)


def sampled(uids: np.ndarray, rate: float) -> np.ndarray:
    """A fixed pseudo-random subset: the same documents whatever the workers or batch sizes."""
    u = (mix64(uids.astype(np.uint64)) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return u < rate


def fit_task(key: str, ctx: dict) -> dict:
    from thresher.metrics.prototypes import fit_prototypes

    rate = min(1.0, ctx["sample"] / max(1, ctx["docs"]))
    rows = []
    for i in range(len(ctx["parts"])):
        side = sidecar(ctx, i, ["embedding"])
        if side is None:
            continue
        uids = make_uids(i, np.arange(side.num_rows))
        pick = sampled(uids, rate)
        if pick.any():
            rows.append(decode_embeddings(side["embedding"].combine_chunks().filter(pa.array(pick))))
    if not rows:
        return {"clusters": 0, "sample": 0}
    x = _unit(np.concatenate(rows))
    k = int(min(ctx["clusters"], len(x)))
    centroids = fit_prototypes(x, k, seed=ctx["seed"]).centroids.astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, centroids, allow_pickle=False)
    write_bytes_atomic(buf.getvalue(), place(ctx["work"]) / "semantic-centroids.npy")
    return {"clusters": k, "sample": int(len(x))}


def assign_task(key: str, ctx: dict) -> dict:
    i = int(key)
    side = sidecar(ctx, i, ["embedding"])
    if side is None:
        return {"docs": 0}
    c = np.load(io.BytesIO(at(place(ctx["work"]) / "semantic-centroids.npy").read_bytes()), allow_pickle=False)
    emb = side["embedding"].combine_chunks()
    x = _unit(decode_embeddings(emb))
    cluster = np.empty(len(x), np.int64)
    dist = np.empty(len(x), np.float64)
    for s in range(0, len(x), 8192):
        sim = x[s : s + 8192] @ c.T
        cluster[s : s + 8192] = sim.argmax(1)
        dist[s : s + 8192] = 1.0 - sim.max(1)
    pos = np.arange(len(x))
    cols = {"uid": pa.array(make_uids(i, pos), pa.int64()), "cluster": pa.array(cluster, pa.int64()),
            "dist": pa.array(dist, pa.float64()), "embedding": emb}
    if ctx.get("keep_by"):
        cols["score"] = pa.array(part_scores(ctx, i, pos), pa.float64())
    write_bins(pa.table(cols), cluster % ctx["bins"], place(ctx["work"]) / "semantic", key)
    return {"docs": int(len(x))}


def greedy_duplicates(x: np.ndarray, threshold: float, block: int = 2048) -> np.ndarray:
    """For rows in keep-priority order: -1 if kept, else the index of the most similar kept earlier row.

    A row is dropped when its cosine to some kept earlier row exceeds `threshold`;
    only rows with such a neighbour enter the sequential pass.
    """
    n = len(x)
    match = np.full(n, -1, np.int64)
    if n < 2:
        return match
    cands: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for s in range(0, n, block):
        sim = x[s : s + block] @ x[: s + block].T
        rows, cols = np.nonzero(sim > threshold)
        lower = cols < rows + s
        rows, cols = rows[lower], cols[lower]
        if len(rows) == 0:
            continue
        vals = sim[rows, cols]
        starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1])))
        ends = np.concatenate((starts[1:], [len(rows)]))
        for a, b in zip(starts, ends):
            cands[int(rows[a]) + s] = (cols[a:b], vals[a:b])
    kept = np.ones(n, bool)
    for j in sorted(cands):
        cols, vals = cands[j]
        ok = kept[cols]
        if ok.any():
            kept[j] = False
            match[j] = int(cols[ok][np.argmax(vals[ok])])
    return match


def within_task(key: str, ctx: dict) -> dict:
    t = read_bin(place(ctx["work"]) / "semantic", key)
    if t is None:
        return {"groups": 0, "members": 0, "histogram": {}}
    uid = t["uid"].to_numpy()
    cluster = t["cluster"].to_numpy()
    first = -t["score"].to_numpy() if "score" in t.column_names else -t["dist"].to_numpy()
    order = np.lexsort((uid, first, cluster))
    uid, cluster = uid[order], cluster[order]
    x = _unit(decode_embeddings(t["embedding"].combine_chunks().take(pa.array(order))))
    starts = np.flatnonzero(np.concatenate(([True], cluster[1:] != cluster[:-1])))
    ends = np.concatenate((starts[1:], [len(uid)]))
    out_uid, out_rep = [], []
    for a, b in zip(starts, ends):
        match = greedy_duplicates(x[a:b], ctx["threshold"])
        dup = np.flatnonzero(match >= 0)
        if len(dup):
            out_uid.append(uid[a:b][dup])
            out_rep.append(uid[a:b][match[dup]])
    if not out_uid:
        return {"groups": 0, "members": 0, "histogram": {}}
    dup_uid, dup_rep = np.concatenate(out_uid), np.concatenate(out_rep)
    reps, counts = np.unique(dup_rep, return_counts=True)
    members = np.concatenate([reps, dup_uid])
    rep = np.concatenate([reps, dup_rep])
    size = np.concatenate([counts + 1, counts[np.searchsorted(reps, dup_rep)] + 1])
    write_reps(ctx, members, rep, size, key)
    hist = size_histogram(size, rep, members)
    return {"groups": int(len(reps)), "members": int(len(members)), "histogram": hist}
