"""Dedupe building blocks without Ray: shingles, MinHash, LSH parameters, buckets, Jaccard, SemDeDup greedy."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from thresher.pipeline.dedupe.components import local_components
from thresher.pipeline.dedupe.exact import exact_groups
from thresher.pipeline.dedupe.fuzzy import bucket_edges, group_value_order, jaccard, sorted_sets
from thresher.pipeline.dedupe.groups import choose_representatives
from thresher.pipeline.dedupe.lsh import choose_bands
from thresher.pipeline.dedupe.minhash import EMPTY, MinHasher, band_keys, estimate_jaccard, text_signatures
from thresher.pipeline.dedupe.semantic import greedy_duplicates
from thresher.pipeline.dedupe.shingles import Words, _words_unicode, normalise, shingle_sets, shingles, words
from thresher.pipeline.dedupe.stages import MinHashStage, decode_bands, exact_hashes


def reference_shingles(text: str, n: int) -> set[tuple[str, ...]]:
    """The definition, written plainly: lower-case, digits -> 0, non-alphanumerics split words."""
    import re
    import unicodedata

    t = unicodedata.normalize("NFKC", text).lower()
    t = re.sub(r"\d+", "0", t)
    toks = [w for w in re.split(r"[\W_]+", t) if w]
    if not toks:
        return set()
    if len(toks) < n:
        return {tuple(toks)}
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


TEXTS = [
    "The quick brown fox jumps over the lazy dog, again and again.",
    "the QUICK brown fox -- jumps over the lazy dog again & again!!",
    "Straße café naïve 42 apples, 7 pears; 1999 was a year.",
    "short one",
    "",
    "   \n\t ",
    "a b c d e a b c d e a b c d e",
    "under_score and tab\tseparated\nlines",
]


@pytest.mark.parametrize("n", [1, 3, 5])
def test_shingle_hashes_match_the_plain_definition(n):
    sets = shingle_sets(TEXTS, n)
    for text, got in zip(TEXTS, sets):
        ref = reference_shingles(text, n)
        assert len(got) == len(ref), text
    # equal reference sets give equal hash sets, different ones different
    for i in range(len(TEXTS)):
        for j in range(len(TEXTS)):
            same_ref = reference_shingles(TEXTS[i], n) == reference_shingles(TEXTS[j], n)
            assert same_ref == (len(sets[i]) == len(sets[j]) and bool(np.all(sets[i] == sets[j]))), (TEXTS[i], TEXTS[j])


def test_normalise_and_words_handle_nulls_and_empty_texts():
    arr = pa.array(["Hello,World", None, "", "x"])
    assert normalise(arr).to_pylist() == ["hello world", None, "", "x"]
    w = words(arr)
    assert w.counts.tolist() == [2, 0, 0, 1]
    s = shingles(arr, 5)
    assert np.diff(s.offsets).tolist() == [1, 0, 0, 1]


def test_word_hashes_do_not_depend_on_batch_or_chunking():
    big = ["alpha beta gamma delta " * 50 + f"tail{chr(97 + i % 26)}" for i in range(300)]
    whole = words(pa.array(big)).hashes
    parts = np.concatenate([words(pa.array(big[i : i + 7])).hashes for i in range(0, 300, 7)])
    assert np.array_equal(whole, parts)


def test_the_byte_path_gives_the_unicode_paths_words():
    """Words are cut from bytes; Arrow's normalise-and-split is the definition they must match."""
    rng = np.random.default_rng(5)
    alphabet = list("abcXYZ019 _-.,;'\t\n") + ["é", "É", "ß", "ﬁ", "Ａ", "１", "٣", "²", "½", "Ⅻ", "中", "文", "😀",
                                                "\u0301", "\u00a0", "\u2028", "Σ", "ς", "İ", "ǅ", "\u200b", "𝟘", "𝐀",
                                                "\U000E0041", "\ufffd", "⁄", "№", "ª", "\x01"]
    texts = ["".join(rng.choice(alphabet, size=int(rng.integers(0, 40)))) for _ in range(2000)]
    texts += [None, "", "12 34 5x6", "ASCII only, with 99 digits."] + TEXTS
    arr = pa.array(texts)
    for batch in (arr, arr.slice(3, 1500), pa.chunked_array([arr.slice(0, 100), arr.slice(100, 40)]),
                  pa.array(texts * 40)):  # the last is cut into several byte chunks
        fast, ref = words(batch), _words_unicode(batch)
        assert np.array_equal(fast.offsets, ref.offsets)
        assert np.array_equal(fast.hashes, ref.hashes)


@pytest.mark.parametrize("groups", [1, 300, 70_000])
def test_group_value_order_is_lexsort(groups):
    rng = np.random.default_rng(groups)
    group = rng.integers(0, groups, 50_000)
    values = rng.integers(0, 2**64 - 1, 50_000, dtype=np.uint64, endpoint=True)
    values[::7] = values[1::7][: len(values[::7])]  # ties inside and across groups
    got, ref = group_value_order(group, values), np.lexsort((values, group))
    assert np.array_equal(np.sort(got), np.arange(len(group)))  # a permutation
    assert np.array_equal(group[got], group[ref]) and np.array_equal(values[got], values[ref])  # equal rows in any order


def _random_pair(rng, n: int, jac: float) -> tuple[np.ndarray, np.ndarray]:
    common = int(round(2 * n * jac / (1 + jac)))
    u = rng.integers(0, 2**63, size=2 * n - common, dtype=np.uint64)
    return u[:n], np.concatenate([u[:common], u[n:]])


def test_minhash_estimate_is_unbiased_with_binomial_spread():
    rng = np.random.default_rng(7)
    hasher = MinHasher(128, seed=3)
    z = []
    for _ in range(200):
        a, b = _random_pair(rng, 300, rng.uniform(0.2, 0.95))
        true = len(np.intersect1d(a, b)) / len(np.union1d(a, b))
        sig = hasher.signatures(Words(np.concatenate([a, b]), np.array([0, len(a), len(a) + len(b)])))
        z.append((estimate_jaccard(sig[0], sig[1]) - true) / np.sqrt(true * (1 - true) / 128))
    assert abs(np.mean(z)) < 0.25 and 0.75 < np.std(z) < 1.3


def test_signatures_are_the_same_whatever_the_slicing_and_empty_docs_are_marked():
    texts = pa.array([" ".join(f"w{chr(97 + (i * 7 + k) % 26)}x{chr(97 + k % 26)}" for k in range(40 + i)) for i in range(50)]
                     + ["", None])
    h = MinHasher(64, seed=1)
    a = text_signatures(texts, h, 5, chunk_chars=1 << 20)
    b = text_signatures(texts, h, 5, chunk_chars=100)
    assert np.array_equal(a, b)
    assert (a[-2:] == EMPTY).all() and not (a[:-2] == EMPTY).any()


def test_minhash_stage_encodes_band_keys_and_nulls_for_wordless_texts():
    stage = MinHashStage(num_perm=32, ngram=3, bands=4, rows=8)
    out = stage.run_checked(pa.table({"text": ["one two three four", "one two three four", "!!!"], "__row": [4, 7, 9]}))
    assert out["source_row"].to_pylist() == [4, 7, 9]  # where verification finds the text again
    valid, keys = decode_bands(out["minhash_bands"], 4)
    assert valid.tolist() == [True, True, False]
    assert keys.shape == (2, 4) and np.array_equal(keys[0], keys[1])
    sig = MinHasher(32, seed=1).signatures(shingles(pa.array(["one two three four"]), 3))
    assert np.array_equal(keys[0], band_keys(sig, 4, 8)[0])


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9])
@pytest.mark.parametrize("num_perm", [64, 128, 256])
def test_band_choice_matches_datasketch(threshold, num_perm):
    lsh = pytest.importorskip("datasketch.lsh")
    ours = choose_bands(threshold, num_perm)
    assert (ours.bands, ours.rows) == lsh._optimal_param(threshold, num_perm, 0.5, 0.5)


def test_band_choice_leans_to_recall_when_false_negatives_weigh_more():
    even = choose_bands(0.8, 128)
    recall = choose_bands(0.8, 128, 0.05, 0.95)
    assert recall.candidate_probability(0.8) > even.candidate_probability(0.8) + 0.3
    assert recall.false_negative < even.false_negative
    with pytest.raises(ValueError, match="threshold"):
        choose_bands(1.2, 128)


def test_bucket_edges_are_stars_from_the_lowest_number():
    key = np.array([5, 9, 5, 5, 9, 7], np.uint64)
    uid = np.array([30, 2, 10, 20, 40, 1], np.int64)
    u, v, stats = bucket_edges(key, uid)
    assert sorted(zip(u.tolist(), v.tolist())) == [(2, 40), (10, 20), (10, 30)]
    assert stats == {"buckets": 2, "largest_bucket": 3}


def test_vectorised_jaccard_equals_set_arithmetic():
    rng = np.random.default_rng(0)
    texts_a, texts_b = [], []
    vocab = ["".join(rng.choice(list("abcdefgh"), 4)) for _ in range(60)]
    for _ in range(40):
        doc = list(rng.choice(vocab, 30))
        other = [w if rng.random() > 0.15 else rng.choice(vocab) for w in doc]
        texts_a.append(" ".join(doc))
        texts_b.append(" ".join(other))
    a = sorted_sets(pa.array(texts_a), 3)
    b = sorted_sets(pa.array(texts_b), 3)
    got = jaccard(a, b, chunk_values=97)
    for i in range(40):
        sa, sb = set(a[i].as_py()), set(b[i].as_py())
        assert got[i] == pytest.approx(len(sa & sb) / len(sa | sb))


def test_representatives_prefer_the_best_score_then_input_order():
    label = np.array([1, 1, 1, 8, 8])
    uid = np.array([1, 5, 3, 8, 9])
    u, rep, size = choose_representatives(label, uid, None)
    assert dict(zip(u.tolist(), rep.tolist())) == {1: 1, 5: 1, 3: 1, 8: 8, 9: 8}
    u, rep, size = choose_representatives(label, uid, np.array([0.1, 0.9, 0.9, -np.inf, 2.0]))
    assert dict(zip(u.tolist(), rep.tolist())) == {1: 3, 5: 3, 3: 3, 8: 9, 9: 9}
    assert dict(zip(u.tolist(), size.tolist())) == {1: 3, 5: 3, 3: 3, 8: 2, 9: 2}


def test_exact_groups_and_hashes():
    h = exact_hashes(pa.array(["a  b\n", "a b", "A b", None]))
    assert h[0] == h[1] and h[0] != h[2] and h[3].as_py() is None
    hi = np.array([1, 1, 2, 1], np.uint64)
    lo = np.array([4, 4, 4, 5], np.uint64)
    uid, rep, size = exact_groups(hi, lo, np.array([7, 3, 1, 2]), None)
    assert sorted(zip(uid.tolist(), rep.tolist(), size.tolist())) == [(3, 3, 2), (7, 3, 2)]


def test_semdedup_greedy_drops_only_near_a_kept_item():
    x = np.array([[1, 0, 0], [0.99, 0.141, 0], [0.97, 0.243, 0], [0, 1, 0], [0, 0.999, 0.0447]], np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    # sims: 0-1 .99, 1-2 ~.995, 0-2 .97, 3-4 .999
    match = greedy_duplicates(x, 0.98)
    # 1 is near kept 0 -> dropped; 2 is near 1 (dropped) but not near 0 (0.97) -> kept; 4 near 3 -> dropped
    assert match.tolist() == [-1, 0, -1, -1, 3]
    assert greedy_duplicates(x, 0.98, block=2).tolist() == match.tolist()


def test_local_components_reference():
    nodes, labels = local_components(np.array([5, 2, 9]), np.array([2, 7, 10]))
    assert dict(zip(nodes.tolist(), labels.tolist())) == {2: 2, 5: 2, 7: 2, 9: 9, 10: 9}
