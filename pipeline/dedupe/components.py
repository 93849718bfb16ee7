"""Connected components of the duplicate graph across Ray tasks (large-star / small-star).

The alternating large-star and small-star steps of Kiveris et al. (2014,
"Connected Components in MapReduce and Beyond") turn every component into a star
centred on its smallest node in O(log^2 n) rounds; each step is a group-by on a
node, so a task only ever holds the messages of its own bin of nodes. The graph
is a fixed point once a large-star + small-star round leaves the edge set
unchanged, which the driver checks from per-task counts and an order-free
checksum. No task and no driver ever holds all edges.

Files: round r's large-star input is `cc/r<r>-ls/<bin>/*.arrow` with columns
(node, nbr) holding each edge in both directions, binned by `node`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from thresher.pipeline.dedupe.phases import bin_of, read_bin, write_bins
from thresher.pipeline.dedupe.shingles import mix64
from thresher.pipeline.storage import place

_EDGE_SALT = np.uint64(0x2545F4914F6CDD1D)


def ls_dir(cc: Path, r: int) -> Path:
    return place(cc) / f"r{r:03d}-ls"


def ss_dir(cc: Path, r: int) -> Path:
    return place(cc) / f"r{r:03d}-ss"


def edge_table(u: np.ndarray, v: np.ndarray) -> pa.Table:
    return pa.table({"node": pa.array(u, pa.int64()), "nbr": pa.array(v, pa.int64())})


def write_both_ways(u: np.ndarray, v: np.ndarray, directory: Path, producer: str, n_bins: int) -> None:
    """Large-star input: each undirected edge as (u, v) and (v, u), binned by the first."""
    nodes = np.concatenate([u, v])
    nbrs = np.concatenate([v, u])
    write_bins(edge_table(nodes, nbrs), bin_of(nodes, n_bins), directory, producer)


def _unique_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(a) == 0:
        return a, b
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    keep = np.concatenate(([True], (a[1:] != a[:-1]) | (b[1:] != b[:-1])))
    return a[keep], b[keep]


def _group_min(node: np.ndarray, nbr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted pairs -> (group starts, unique nodes, min neighbour per node)."""
    starts = np.flatnonzero(np.concatenate(([True], node[1:] != node[:-1])))
    return starts, node[starts], np.minimum.reduceat(nbr, starts)


def _read_pairs(directory: Path, key: str) -> tuple[np.ndarray, np.ndarray]:
    t = read_bin(directory, key)
    if t is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return _unique_pairs(t["node"].to_numpy(), t["nbr"].to_numpy())


def large_star(key: str, cc: str, r: int, n_bins: int, ctx: dict | None = None) -> dict:
    """For node u with neighbours N(u): m = min(N(u) + u); link every neighbour v > u to m."""
    node, nbr = _read_pairs(ls_dir(place(cc), r), key)
    if len(node) == 0:
        return {"edges_in": 0}
    starts, nodes, mins = _group_min(node, nbr)
    m = np.minimum(np.repeat(mins, np.diff(np.concatenate((starts, [len(node)])))), node)
    emit = nbr > node
    big, small = nbr[emit], m[emit]
    # small-star input: keyed by the larger endpoint, value the smaller
    write_bins(edge_table(big, small), bin_of(big, n_bins), ss_dir(place(cc), r), key)
    return {"edges_in": int(len(node))}


def small_star(key: str, cc: str, r: int, n_bins: int, ctx: dict | None = None) -> dict:
    """For node u with its smaller neighbours S: m = min(S + u); link u and every v in S (but m) to m."""
    node, nbr = _read_pairs(ss_dir(place(cc), r), key)
    if len(node) == 0:
        return {"edges": 0, "checksum": 0}
    starts, nodes, mins = _group_min(node, nbr)
    sizes = np.diff(np.concatenate((starts, [len(node)])))
    m_rep = np.repeat(mins, sizes)
    # edges (v, m) for v in S, v != m, plus (u, m) once per node
    keep = nbr != m_rep
    big = np.concatenate([nbr[keep], nodes])
    small = np.concatenate([m_rep[keep], mins])
    big, small = _unique_pairs(big, small)
    write_both_ways(big, small, ls_dir(place(cc), r + 1), key, n_bins)
    with np.errstate(over="ignore"):
        checksum = int(np.sum(mix64(mix64(big.astype(np.uint64)) ^ (small.astype(np.uint64) * _EDGE_SALT)),
                              dtype=np.uint64))
    return {"edges": int(len(big)), "checksum": checksum}


def labels_from_stars(key: str, cc: str, r: int) -> tuple[np.ndarray, np.ndarray]:
    """After convergence: (node, component min) for every node of this bin that has an edge."""
    node, nbr = _read_pairs(ls_dir(place(cc), r), key)
    if len(node) == 0:
        return node, nbr
    starts, nodes, mins = _group_min(node, nbr)
    return nodes, np.minimum(nodes, mins)


def local_components(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(node, component min) by scipy on one machine: the reference the distributed result is tested against."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    nodes, inv = np.unique(np.concatenate([u, v]), return_inverse=True)
    n = len(nodes)
    if n == 0:
        return nodes, nodes
    e = len(u)
    g = coo_matrix((np.ones(e), (inv[:e], inv[e:])), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    mins = np.full(comp.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(mins, comp, nodes)
    return nodes, mins[comp]
