"""The per-document map stages of the three dedupe methods (resumable like any scorer).

Each stage writes one binary column to the signature job's sidecars: a 128-bit
exact hash, the LSH band keys, or an embedding. Fixed-width binary keeps the
sidecar small and typed.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from thresher.pipeline.dedupe.minhash import EMPTY, MinHasher, band_keys, text_signatures
from thresher.pipeline.stage import Resources, Stage


def exact_normalise(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """NFC text with whitespace runs collapsed and the ends trimmed: layout changes are not content changes."""
    t = pc.utf8_normalize(texts, form="NFC")
    t = pc.replace_substring_regex(t, r"\s+", " ")
    return pc.utf8_trim_whitespace(t)


def exact_hashes(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """xxh3-128 digests (16 bytes) of the normalised texts; null where the text is null."""
    norm = exact_normalise(texts).cast(pa.binary())
    digest = xxhash.xxh3_128_digest
    return pa.array([None if b is None else digest(b) for b in norm.to_pylist()], pa.binary())


class ExactHashStage(Stage):
    name = "dedupe_exact"
    needs = ("text",)
    adds = {"exact_hash": pa.binary()}
    resources = Resources(cpus=1)

    def __init__(self) -> None:
        self.options: dict[str, Any] = {"hash": "xxh3_128", "normalise": "nfc+whitespace"}

    def params(self) -> dict[str, Any]:
        return dict(self.options)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return pa.table({"exact_hash": exact_hashes(batch["text"])})


class MinHashStage(Stage):
    """Word n-gram MinHash -> LSH band keys (bands x uint64, little-endian); null for a text without words.

    The document's row in its part comes along (`source_row`), so verification can
    re-read just the candidate documents instead of the whole part.
    """

    name = "dedupe_minhash"
    needs = ("text", "__row")
    adds = {"minhash_bands": pa.binary(), "source_row": pa.int64()}
    resources = Resources(cpus=1)

    def __init__(self, num_perm: int = 128, ngram: int = 5, bands: int = 16, rows: int = 8, seed: int = 1):
        if ngram < 1:
            raise ValueError(f"ngram must be >= 1, got {ngram}")
        if bands < 1 or rows < 1 or bands * rows > num_perm:
            raise ValueError(f"need bands, rows >= 1 and bands*rows <= num_perm, got {bands}x{rows} > {num_perm}")
        self.hasher = MinHasher(num_perm, seed)
        self.ngram, self.bands, self.rows = int(ngram), int(bands), int(rows)
        self.options = {"num_perm": int(num_perm), "ngram": self.ngram, "bands": self.bands, "rows": self.rows,
                        "seed": int(seed)}

    def params(self) -> dict[str, Any]:
        return dict(self.options)

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = batch["text"].combine_chunks() if isinstance(batch["text"], pa.ChunkedArray) else batch["text"]
        sig = text_signatures(texts, self.hasher, self.ngram)
        keys = np.ascontiguousarray(band_keys(sig, self.bands, self.rows).astype("<u8"))
        empty = sig[:, 0] == EMPTY
        width = self.bands * 8
        offsets = pa.array(np.arange(len(keys) + 1, dtype=np.int32) * width)
        arr = pa.BinaryArray.from_buffers(pa.binary(), len(keys), [None, offsets.buffers()[1], pa.py_buffer(keys.tobytes())])
        if empty.any():
            arr = pc.if_else(pa.array(empty), pa.scalar(None, pa.binary()), arr)
        return pa.table({"minhash_bands": arr, "source_row": batch["__row"]})


def decode_bands(col: pa.Array | pa.ChunkedArray, bands: int) -> tuple[np.ndarray, np.ndarray]:
    """(valid row mask, (n_valid, bands) uint64 keys) from a `minhash_bands` column."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    valid = col.is_valid().to_numpy(zero_copy_only=False)
    good = col.filter(pa.array(valid)) if not valid.all() else col
    if len(good) == 0:
        return valid, np.zeros((0, bands), np.uint64)
    bufs = good.buffers()
    offs = np.frombuffer(bufs[1], np.int32, count=good.offset + len(good) + 1)[good.offset:]
    raw = np.frombuffer(bufs[2], np.uint8)[offs[0] : offs[-1]]
    return valid, raw.view("<u8").reshape(len(good), bands).astype(np.uint64)


class EmbedStage(Stage):
    """Document embeddings as float32 bytes (the weight-free hashing embedder by default)."""

    name = "dedupe_embed"
    needs = ("text",)
    adds = {"embedding": pa.binary()}
    resources = Resources(cpus=1)

    def __init__(self, embedder: str = "hashing", dim: int = 256):
        self.options = {"embedder": embedder, "dim": int(dim)}
        self._embedder = None

    def params(self) -> dict[str, Any]:
        """Embedder and dim, plus the version of the package holding the weights of a weight-loading embedder."""
        from thresher.metrics.embedders import weights_version

        weights = weights_version(self.options["embedder"])
        return {**self.options, **({"weights": weights} if weights else {})}

    def teardown(self) -> None:
        self._embedder = None

    def setup(self) -> None:
        self._embedder = make_embedder(self.options["embedder"], self.options["dim"])

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self._embedder is None:
            self.setup()
        vecs = np.ascontiguousarray(self._embedder.embed(batch["text"].to_pylist()), dtype="<f4")
        dim = vecs.shape[1]
        offsets = pa.array(np.arange(len(vecs) + 1, dtype=np.int32) * dim * 4)
        arr = pa.BinaryArray.from_buffers(pa.binary(), len(vecs), [None, offsets.buffers()[1], pa.py_buffer(vecs.tobytes())])
        return pa.table({"embedding": arr})


def make_embedder(name: str, dim: int):
    from thresher.metrics.embedders import make_embedder as build

    return build(name, dim=dim) if name != "minilm" else build(name)


def decode_embeddings(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    n = len(col)
    if n == 0:
        return np.zeros((0, 0), np.float32)
    bufs = col.buffers()
    offs = np.frombuffer(bufs[1], np.int32, count=col.offset + n + 1)[col.offset:]
    raw = np.frombuffer(bufs[2], np.uint8)[offs[0] : offs[-1]]
    return raw.view("<f4").reshape(n, -1).astype(np.float32)
