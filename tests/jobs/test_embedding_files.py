"""The one embedding-file reader (.npy, .npz, Parquet) and its limits, as `mix` and `vendors` use it."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thresher.jobs.embedding_files import DataFileError, FileLimits, read_embeddings
from thresher.jobs.vendor_rows import read_rows


@pytest.fixture()
def x():
    return np.arange(12, dtype=np.float32).reshape(4, 3)


def test_the_three_layouts_read_alike(tmp_path, x):
    labels, weights = np.array([0, 1, 1, 0]), np.array([1.0, 2.0, 3.0, 4.0])
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "b.npz", x=x, labels=labels, weights=weights)
    np.savez(tmp_path / "c.npz", embeddings=x)
    pq.write_table(pa.table({"vec": [list(map(float, r)) for r in x], "label": labels, "weight": weights}),
                   tmp_path / "d.parquet")
    a = read_embeddings(tmp_path / "a.npy")
    b = read_embeddings(tmp_path / "b.npz")
    c = read_embeddings(tmp_path / "c.npz")
    d = read_embeddings(tmp_path / "d.parquet", column="vec")
    for got in (a, b, c, d):
        assert got.x.dtype == np.float64 and np.array_equal(got.x, x)
    assert a.labels is None and c.weights is None
    for got in (b, d):
        assert got.labels.tolist() == labels.tolist() and got.weights.tolist() == weights.tolist()


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: np.save(p / "f.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True), "object arrays are refused"),
    (lambda p: np.save(p / "f.npy", np.zeros(3)), "must be a real (n, d) array"),
    (lambda p: np.save(p / "f.npy", np.zeros((2, 2), dtype=complex)), "must be a real (n, d) array"),
    (lambda p: np.save(p / "f.npy", np.array([["a", "b"]])), "must be a real (n, d) array"),
    (lambda p: np.savez(p / "f.npz", y=np.zeros((2, 2))), ".npz needs an array named 'x' (found ['y'])"),
    (lambda p: np.savez(p / "f.npz", x=np.zeros((3, 2)), labels=np.zeros(2)), "(2,) labels for 3 rows"),
    (lambda p: (p / "f.npz").write_bytes(b"not a zip"), "cannot read embeddings"),
    (lambda p: pq.write_table(pa.table({"embedding": [[1.0, 2.0], [3.0]]}), p / "f.parquet"),
     "row 1: embedding has 1 values, row 0 has 2"),
    (lambda p: pq.write_table(pa.table({"embedding": [[1.0], None]}), p / "f.parquet"), "row 1: missing embedding"),
    (lambda p: pq.write_table(pa.table({"emb": [[1.0]]}), p / "f.parquet"), "no 'embedding' column"),
    (lambda p: (p / "f.csv").write_text("1,2\n"), "unknown embedding format '.csv'"),
])
def test_bad_files_are_refused_naming_the_file(tmp_path, make, message):
    make(tmp_path)
    path = next(tmp_path.glob("f.*"))
    with pytest.raises(DataFileError) as exc:
        read_embeddings(path)
    assert str(exc.value).startswith(str(path)) and message in str(exc.value)
    with pytest.raises(DataFileError, match="no such embedding file"):
        read_embeddings(tmp_path / "missing.npy")


def test_limits_are_checked_before_parsing_with_the_callers_hint(tmp_path, x):
    np.save(tmp_path / "big.npy", np.zeros((1000, 64)))
    limits = FileLimits(max_bytes=10_000, max_rows=10**6, bytes_hint="raise the cap")
    with pytest.raises(DataFileError, match=r"big.npy: 0.5 MB exceeds the 0.0 MB limit \(raise the cap\)"):
        read_embeddings(tmp_path / "big.npy", limits)
    np.savez_compressed(tmp_path / "bomb.npz", x=np.zeros((4000, 64)))  # a small file that unpacks to 2 MB
    assert (tmp_path / "bomb.npz").stat().st_size < 100_000
    with pytest.raises(DataFileError, match="unpacks to 2.0 MB, over the 1.0 MB limit"):
        read_embeddings(tmp_path / "bomb.npz", FileLimits(max_bytes=2**20))
    with pytest.raises(DataFileError, match=r"1000 rows, more than 999 \(subsample first\)"):
        read_embeddings(tmp_path / "big.npy", FileLimits(max_rows=999))


def test_vendor_rows_read_numpy_through_the_same_reader(tmp_path, x):
    x = x.astype(np.float64)
    x[2, 1] = np.nan
    np.savez(tmp_path / "v.npz", x=x, labels=np.array(["a", "b", "c", "d"]))
    rows = read_rows(tmp_path / "v.npz", max_bytes=10**6, max_rows=10)
    assert len(rows) == 3 and rows.labels.tolist() == ["a", "b", "d"] and rows.rows_read == 4
    assert rows.quarantined == [{"line": 2, "reason": "non-finite embedding value (row index)"}]
    with pytest.raises(DataFileError, match=r"more than 3 \(raise limits.max_rows if you trust this file\)"):
        read_rows(tmp_path / "v.npz", max_bytes=10**6, max_rows=3)
    np.savez(tmp_path / "f.npz", x=x, labels=np.array([0.5, 1, 2, 3]))
    with pytest.raises(DataFileError, match="labels must be integers or strings"):
        read_rows(tmp_path / "f.npz", max_bytes=10**6, max_rows=10)
