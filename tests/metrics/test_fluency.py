import numpy as np
import pytest

from thresher.metrics.fluency import BOS, FluencyModel, buckets, fit_cutoffs, normalize, tokenize_lines

REFERENCE = [
    "the cat sat on the mat.\nthe dog sat on the log.",
    "a cat and a dog sat together on the mat.",
    "the cat ate the fish and the dog ate the bone.",
    "a bird sang on the roof while the cat slept.",
] * 3


@pytest.fixture(scope="module")
def model():
    return FluencyModel(order=3, min_count=1).fit(REFERENCE)


def test_normalisation_follows_ccnet():
    assert normalize("Café 2024 ÉTÉ") == "cafe 0000 ete"
    assert tokenize_lines("Hello, World!\n\n  \nBye") == [["hello", ",", "world", "!"], ["bye"]]


@pytest.mark.parametrize("context", [[], ["the"], ["the", "cat"], ["zebra", "quux"], ["on", "the"]])
def test_conditional_distribution_sums_to_one(model, context):
    index = model._word_index()
    ctx = [index.get(w, 2) for w in context]
    total = 0.0
    for w in range(1, model.n_types_ + 1):  # </s>, <unk>, every word
        ids = np.array([BOS, *ctx, w])
        total += 10 ** model.token_log10_probs(ids, np.arange(ids.size))[-1]
    assert total == pytest.approx(1.0, abs=1e-9)


def test_perplexity_ranks_fluent_above_scrambled_and_foreign(model):
    ppl = model.perplexity(["the cat sat on the mat.", "mat the on sat cat the.", "zebra quantum flux capacitor"])
    assert ppl[0] < ppl[1] < ppl[2]


def test_perplexity_matches_ccnet_definition(model):
    # One line of 2 words: 3 predicted tokens (2 words + </s>).
    total, count = model.log10_prob(["the cat\n\n"])
    assert count.tolist() == [3]
    ids = np.array([BOS, model._word_index()["the"], model._word_index()["cat"], 1])
    lp = model.token_log10_probs(ids, np.arange(4))
    assert total[0] == pytest.approx(lp.sum())
    assert model.perplexity(["the cat"])[0] == pytest.approx(10 ** (-lp.sum() / 3))


def test_empty_documents_give_nan(model):
    ppl = model.perplexity(["", "  \n ", "the cat"])
    assert np.isnan(ppl[:2]).all() and np.isfinite(ppl[2])


def test_unknown_words_map_to_unk_with_min_count():
    m = FluencyModel(order=2, min_count=2).fit(["alpha beta alpha beta gamma"])
    assert m.vocab_ == ["alpha", "beta"]
    a, b = m.perplexity(["alpha beta gamma", "alpha beta delta"])
    assert a == pytest.approx(b)  # gamma and delta are both <unk>


def test_training_is_deterministic_and_order_free_of_chunking(model):
    again = FluencyModel(order=3, min_count=1).fit(iter(REFERENCE))
    small = FluencyModel(order=3, min_count=1, chunk_tokens=1000)
    small.fit(REFERENCE * 10)
    big = FluencyModel(order=3, min_count=1).fit(REFERENCE * 10)
    probe = ["the dog sat on the mat.", "a fish sang"]
    assert np.array_equal(again.perplexity(probe), model.perplexity(probe))
    assert np.allclose(small.perplexity(probe), big.perplexity(probe), rtol=1e-12)


def test_save_load_round_trip(tmp_path, model):
    model.cutoffs_ = np.array([5.0, 9.0])
    path = model.save(tmp_path / "ref.npz")
    loaded = FluencyModel.load(path)
    probe = ["the dog sat on the mat.", "mat mat mat"]
    assert np.array_equal(loaded.perplexity(probe), model.perplexity(probe))
    assert loaded.cutoffs_.tolist() == [5.0, 9.0]
    with np.load(path, allow_pickle=False) as z:  # nothing pickled inside
        assert all(z[k].dtype != object for k in z.files)


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "x.npz"
    np.savez(bad, meta=np.frombuffer(b'{"format": "other"}', np.uint8))
    with pytest.raises(ValueError, match="not a fluency model"):
        FluencyModel.load(bad)
    with pytest.raises(FileNotFoundError, match="thresher fluency train"):
        FluencyModel.load(tmp_path / "missing.npz")


def test_buckets_and_cutoffs():
    ppl = np.arange(1.0, 11.0)
    cut = fit_cutoffs(ppl, (30, 60))
    assert cut.tolist() == pytest.approx([3.7, 6.4])
    got = buckets(np.r_[ppl, np.nan], cut)
    assert got.tolist() == ["head"] * 3 + ["middle"] * 3 + ["tail"] * 4 + [""]
    with pytest.raises(ValueError):
        fit_cutoffs(ppl, (60, 30))


def test_validation_errors():
    with pytest.raises(ValueError, match="order"):
        FluencyModel(order=0)
    with pytest.raises(ValueError, match="no tokens"):
        FluencyModel().fit(["", "   "])
    with pytest.raises(RuntimeError, match="not fitted"):
        FluencyModel().perplexity(["x"])


def _debian_paragraphs():
    import gzip
    from pathlib import Path

    faq = sorted(Path("/usr/share/doc/anarchism/markdown").glob("*.md.gz"))
    pydoc = sorted(Path("/usr/share/doc/python3.11-doc/html/_sources/tutorial").glob("*.txt"))
    if len(faq) < 10 or len(pydoc) < 3:
        pytest.skip("real-text check needs Debian's `anarchism` and `python3.11-doc` packages")
    prose = [p for f in faq[:10] for p in gzip.open(f, "rt", errors="replace").read().split("\n\n") if len(p) > 200]
    tech = [p for f in pydoc[:3] for p in f.read_text(errors="replace").split("\n\n") if len(p) > 200]
    return prose, tech


def test_real_text_in_domain_is_more_fluent_than_other_registers():
    prose, tech = _debian_paragraphs()
    train, held_out = prose[: int(0.8 * len(prose))], prose[int(0.8 * len(prose)) :]
    m = FluencyModel(order=3).fit(train)
    rng = np.random.default_rng(0)
    shuffled = [" ".join(rng.permutation(p.split())) for p in held_out]
    med = {name: float(np.median(m.perplexity(docs))) for name, docs in
           {"held_out": held_out, "tech": tech, "shuffled": shuffled}.items()}
    assert med["held_out"] < med["tech"] and med["held_out"] < med["shuffled"] / 2


def test_model_file_limits_version_and_no_pickle(tmp_path, model, monkeypatch):
    import dataclasses
    import json

    from thresher.metrics import fluency as mod
    from thresher.metrics.files import FormatError

    path = model.save(tmp_path / "ref.npz")
    assert path.read_bytes() == model.to_bytes()  # one writer, same bytes to memory or disk
    assert not list(tmp_path.glob(".*"))
    probe = ["the dog sat on the mat."]
    assert np.array_equal(FluencyModel.from_bytes(model.to_bytes()).perplexity(probe), model.perplexity(probe))
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{**arrays, "vocab": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(FormatError, match=r"pickled\.npz: it holds a pickled object array"):
        FluencyModel.load(pickled)
    meta = json.loads(arrays["meta"].tobytes())
    newer = tmp_path / "newer.npz"
    np.savez(newer, **{**arrays, "meta": np.frombuffer(json.dumps({**meta, "version": 2}).encode(), np.uint8)})
    with pytest.raises(FormatError, match=r"newer\.npz: fluency model format version 2 is not one this Thresher reads"):
        FluencyModel.load(newer)
    monkeypatch.setattr(mod, "MAX_UNPACKED_BYTES", 100)
    with pytest.raises(FormatError, match=r"ref\.npz: its arrays unpack to \d+ bytes"):
        FluencyModel.load(path)
    monkeypatch.setattr(mod, "FORMAT", dataclasses.replace(mod.FORMAT, max_bytes=100))
    with pytest.raises(FormatError, match=r"ref\.npz: .* is over the 100 bytes limit for fluency model files"):
        FluencyModel.load(path)
