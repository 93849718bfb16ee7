"""Thresher's public Python API: the whole loop from a notebook, in the order a user runs it.

Every name here is what the CLI command of the same name calls, so a notebook and
`thresher ...` write the same bytes. Heavy modules (Ray, scipy, POT) load on first use,
not on `import thresher.jobs.api`.

    from thresher.jobs import api

    api.score("shards/", "scored")                       # sidecars + ledger, summary dict
    api.dedupe("scored", "deduped", method="minhash")    # duplicate groups
    api.build_pools("scored", "pools", api.PoolSpec(score="c4_words", edges=(0.5,)))
    fit = api.fit(api.load_observations("runs.csv", "run=run,seen=tokens,unique=unique,value=loss"))
    pools, unit = api.load_pools("pools")
    best = api.plan(fit, pools, budget=5e8)
    api.save_plan(best, "plan.json")
    api.materialize("plan.json", "pools", "train")

Names not listed in `__all__` are internal and may change between releases.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# name -> module it lives in; resolved lazily by __getattr__
_EXPORTS: dict[str, str] = {
    # pipeline: data at scale
    "MapJob": "thresher.pipeline.executor",
    "run_map_job": "thresher.pipeline.executor",
    "ReadOptions": "thresher.pipeline.reader",
    "make_scorer": "thresher.pipeline.registry",
    "scorer_names": "thresher.pipeline.registry",
    "Stage": "thresher.pipeline.stage",
    "DedupeJob": "thresher.pipeline.dedupe.job",
    "run_dedupe": "thresher.pipeline.dedupe.job",
    "PoolSpec": "thresher.pipeline.pools",
    "build_pools": "thresher.pipeline.pools",
    "read_members": "thresher.pipeline.pools",
    "materialize": "thresher.pipeline.materialize",
    # mixtures: deciding (no Ray)
    "Observations": "thresher.mixtures.observations",
    "load_observations": "thresher.mixtures.observations",
    "fit": "thresher.mixtures.fitting",
    "FittedLaw": "thresher.mixtures.fitted_law",
    "plan": "thresher.mixtures.planning",
    "frontier": "thresher.mixtures.planning",
    "MixtureObservations": "thresher.mixtures.mixture_observations",
    "PerformanceModel": "thresher.mixtures.performance",
    "optimize_mixture": "thresher.mixtures.optimize",
    "EmbeddingSet": "thresher.mixtures.transport",
    "MixtureOT": "thresher.mixtures.transport",
    # jobs: files between the rooms
    "load_pools": "thresher.jobs.planning_files",
    "save_plan": "thresher.jobs.planning_files",
    "save_frontier": "thresher.jobs.planning_files",
}

__all__ = sorted([*_EXPORTS, "score", "dedupe"])

DEFAULT_SCORERS = ("gopher_quality", "gopher_repetition", "c4")


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def score(input: str, out: str | Path, scorers: Sequence[str] = DEFAULT_SCORERS, *,
          options: Mapping[str, Mapping[str, Any]] | None = None, text_field: str = "text", id_field: str | None = None,
          carry: Sequence[str] = (), strict: bool = False, workers: int | None = None, address: str | None = None,
          engine: str = "auto", quiet: bool = True) -> dict[str, Any]:
    """Score every document of `input` with the named scorers, as `thresher score` does; returns the summary.

    `options` maps a scorer name to its options (the CLI's `--scorer-option NAME.KEY=VALUE`).
    A rerun into the same `out` resumes; a changed setting is refused.
    """
    from thresher.pipeline.executor import MapJob, run_map_job
    from thresher.pipeline.reader import ReadOptions
    from thresher.pipeline.registry import make_scorer
    from thresher.pipeline.storage import place

    options = dict(options or {})
    unknown = sorted(set(options) - set(scorers))
    if unknown:
        raise ValueError(f"options given for scorer(s) not selected: {unknown}")
    stages = [make_scorer(name, **dict(options.get(name, {}))) for name in scorers]
    read = ReadOptions(text_field=text_field, id_field=id_field, carry=tuple(carry), strict=strict)
    return run_map_job(MapJob(input=str(input), out_dir=place(out), stages=stages, read=read, workers=workers,
                              address=address, quiet=quiet, engine=engine))


def dedupe(input: str, out: str | Path, method: str = "minhash", **settings: Any) -> dict[str, Any]:
    """Find duplicate groups in shards or a score output, as `thresher dedupe` does; returns the summary.

    `settings` are `DedupeJob` fields (threshold, num_perm, ngram, bands, rows, keep_by, seed, ...).
    """
    from thresher.pipeline.dedupe.job import DedupeJob, run_dedupe
    from thresher.pipeline.storage import place

    return run_dedupe(DedupeJob(input=str(input), out_dir=place(out), method=method, **settings))
