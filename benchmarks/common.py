"""Shared helpers for benchmarks: real data locations, timing and peak memory."""
from __future__ import annotations

import gzip
import resource
import struct
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tests.reference_data import reference_data_dir  # noqa: F401  (the benchmarks' one location of it)

FASHION_MNIST_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    magic, = struct.unpack(">I", raw[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Fashion-MNIST from Debian's `dataset-fashion-mnist` as float32 pixels in [0, 1], or None if absent."""
    for d in FASHION_MNIST_DIRS:
        if (d / "train-images-idx3-ubyte.gz").exists():
            xtr = _read_idx(d / "train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0
            ytr = _read_idx(d / "train-labels-idx1-ubyte.gz").astype(np.int64)
            xte = _read_idx(d / "t10k-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0
            yte = _read_idx(d / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
            return xtr, ytr, xte, yte
    return None


def require_fashion_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = load_fashion_mnist()
    if data is None:
        sys.exit("Fashion-MNIST not found: install Debian's `dataset-fashion-mnist` (apt-get install dataset-fashion-mnist)")
    return data


def peak_rss_mb() -> float:
    """Peak resident memory of this process (and finished children) in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0


@contextmanager
def timed() -> Iterator[dict]:
    box: dict = {}
    t0 = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - t0
