import argparse
import json

import numpy as np
import pytest

from thresher.metrics.classifier import QualityClassifier

GOOD = [
    f"The committee reviewed the {w} report and published a detailed analysis of the findings."
    for w in ["annual", "quarterly", "financial", "scientific", "technical", "final", "draft", "public", "internal", "medical"]
]
BAD = [
    f"click here buy now {w} free free free win prize !!! subscribe"
    for w in ["cheap", "deal", "offer", "sale", "bonus", "casino", "pills", "crypto", "loans", "discount"]
]


@pytest.fixture(scope="module")
def clf():
    return QualityClassifier(n_features=2**14, validation_fraction=0.2, seed=0).fit(GOOD, BAD)


def test_scores_are_probabilities_that_separate_the_pools(clf):
    p = clf.predict_proba(["The board reviewed the annual analysis of the findings.", "buy now free prize casino !!!"])
    assert p.shape == (2,) and np.all((p > 0) & (p < 1))
    assert p[0] > 0.5 > p[1]
    assert clf.validation_["auc"] == pytest.approx(1.0)


def test_bigrams_matter():
    # Same unigrams, different order: only bigram features can tell them apart.
    pos = ["new york is big"] * 5
    neg = ["york is new big"] * 5
    m = QualityClassifier(n_features=2**12, ngram_range=(1, 2), validation_fraction=0).fit(pos, neg)
    u = QualityClassifier(n_features=2**12, ngram_range=(1, 1), validation_fraction=0).fit(pos, neg)
    assert m.predict_proba(["new york is big"])[0] > 0.7
    assert u.predict_proba(["new york is big"])[0] == pytest.approx(u.predict_proba(["york is new big"])[0])


def test_deterministic_under_seed():
    a = QualityClassifier(n_features=2**12, seed=3).fit(GOOD, BAD)
    b = QualityClassifier(n_features=2**12, seed=3).fit(GOOD, BAD)
    assert np.array_equal(a.coef_, b.coef_) and a.validation_ == b.validation_


def test_json_round_trip(tmp_path, clf):
    path = clf.save(tmp_path / "q.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "thresher.quality_classifier"
    loaded = QualityClassifier.load(path)
    probe = GOOD[:3] + BAD[:3] + ["unrelated words here"]
    assert np.array_equal(loaded.predict_proba(probe), clf.predict_proba(probe))


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        QualityClassifier().fit(["one"], BAD)
    with pytest.raises(ValueError, match="document 1"):
        QualityClassifier(n_features=2**10).fit(["a b", None, "c d"], BAD)
    with pytest.raises(RuntimeError, match="not fitted"):
        QualityClassifier().predict_proba(["x"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a readable quality classifier"):
        QualityClassifier.load(bad)


def _cli():
    from thresher.jobs import cmd_classifier

    p = argparse.ArgumentParser(prog="thresher")
    p.add_argument("--quiet", action="store_true")
    cmd_classifier.register(p.add_subparsers(dest="command"))
    return p


def _write_jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t, "n": i}) + "\n" for i, t in enumerate(texts)))
    return path


def test_cli_trains_classifier_and_fluency(tmp_path, capsys):
    pos = _write_jsonl(tmp_path / "pos.jsonl", GOOD * 3)
    neg = _write_jsonl(tmp_path / "neg.jsonl", BAD * 3)
    p = _cli()
    args = p.parse_args(["--quiet", "classifier", "train", "--positives", str(pos), "--negatives", str(neg),
                         "--out", str(tmp_path / "q.json"), "--max-docs", "12", "--hash-bits", "12"])
    assert args.handler(args) == 0
    m = QualityClassifier.load(tmp_path / "q.json")
    assert m.n_train_["positives"] + m.n_train_["negatives"] < 24  # sampled and a validation share held out
    args = p.parse_args(["--quiet", "fluency", "train", "--reference", str(pos), "--out", str(tmp_path / "ref.npz"),
                         "--calibrate", str(neg)])
    assert args.handler(args) == 0
    from thresher.metrics.fluency import FluencyModel

    f = FluencyModel.load(tmp_path / "ref.npz")
    assert f.cutoffs_ is not None and f.cutoffs_[0] <= f.cutoffs_[1]
    out = capsys.readouterr().out.split()
    assert str(tmp_path / "q.json") in out and str(tmp_path / "ref.npz") in out


def test_cli_reports_missing_input(tmp_path):
    from thresher.metrics.errors import InputError

    p = _cli()
    args = p.parse_args(["classifier", "train", "--positives", str(tmp_path / "none.jsonl"),
                         "--negatives", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "q.json")])
    with pytest.raises(InputError, match="none.jsonl"):  # the reader's own error: `thresher` exits 2 with it
        args.handler(args)


def test_reservoir_sample_is_uniform_and_seeded(tmp_path):
    from thresher.jobs.cmd_classifier import sample_texts

    path = _write_jsonl(tmp_path / "d.jsonl", [f"doc {i}" for i in range(200)])
    a, n = sample_texts(str(path), "text", 20, seed=1)
    b, _ = sample_texts(str(path), "text", 20, seed=1)
    assert n == 200 and a == b and len(set(a)) == 20
    idx = [int(t.split()[1]) for t in a]
    assert idx == sorted(idx) and max(idx) >= 100  # not just the first 20


def test_model_file_limits_and_version(tmp_path, clf, monkeypatch):
    import dataclasses

    from thresher.metrics import classifier as mod
    from thresher.metrics.files import FormatError

    path = clf.save(tmp_path / "q.json")
    assert QualityClassifier.from_bytes(clf.to_bytes()).intercept_ == clf.intercept_
    assert not list(tmp_path.glob(".*.tmp"))  # written under a temporary name, then renamed
    doc = json.loads(path.read_text())
    doc["version"] = 2
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=r"newer\.json: not a readable quality classifier \(.*version 2"):
        QualityClassifier.load(newer)
    doc["version"], doc["params"]["n_features"] = 1, 2**40
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=r"huge\.json: .*n_features"):
        QualityClassifier.load(huge)
    monkeypatch.setattr(mod, "FORMAT", dataclasses.replace(mod.FORMAT, max_bytes=path.stat().st_size - 1))
    with pytest.raises(FormatError, match=r"q\.json: .* is over the .* limit for quality classifier files"):
        QualityClassifier.load(path)
