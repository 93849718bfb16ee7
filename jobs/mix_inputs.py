"""The files behind `thresher mix`: embedding sets and the OT built on them, mixture tables, saved models.

An OT configuration is a plain dict (pools -> embedding file, target file, solver settings)
because a fitted model stores it as is (`PerformanceModel.ot_config`): a model can rebuild
its OT from the files it was fitted with, or from new paths to the same pools.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thresher.jobs.embedding_files import read_embeddings
from thresher.metrics.errors import InputError


@dataclass(frozen=True)
class TableLayout:
    """How a wide mixture CSV names its columns, and an optional second CSV holding the values."""

    weight_prefix: str = "weight_"
    size_column: str | None = "size"
    values_path: str | None = None
    join: str | None = None


def load_embedding_set(path: Path, name: str | None = None, column: str = "embedding"):
    """An `EmbeddingSet` from .npy, .npz or .parquet (layouts in `embedding_files`)."""
    from thresher.mixtures.transport import EmbeddingSet

    arrays = read_embeddings(path, column=column)
    try:
        return EmbeddingSet(arrays.x, labels=arrays.labels, weights=arrays.weights, name=str(name or path))
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None


def load_sets(config: dict[str, Any], base: Path | None = None, pool_order: list[str] | None = None):
    """Pool and target embedding sets named by an OT config (paths also tried relative to `base`)."""

    def resolve(path: str) -> Path:
        p = Path(path)
        if not p.exists() and base is not None and (base / p).exists():
            return base / p
        return p

    column = config.get("embedding_column", "embedding")
    names = pool_order or list(config["pools"])
    missing = [n for n in names if n not in config["pools"]]
    if missing:
        raise InputError(f"no embedding file for pools {missing}; give --pools for every pool {names}")
    pools = {n: load_embedding_set(resolve(config["pools"][n]), n, column) for n in names}
    target = load_embedding_set(resolve(config["target"]), "target", column)
    return pools, target


def build_ot(config: dict[str, Any], base: Path | None = None, pool_order: list[str] | None = None):
    """The `MixtureOT` of a config with a fixed label weight."""
    from thresher.mixtures.transport import MixtureOT

    if config["label_weight"] == "auto":
        raise InputError("--label-weight auto needs pilot runs: use it with `mix fit`")
    pools, target = load_sets(config, base, pool_order)
    return MixtureOT(
        pools, target, solver=config["solver"], reg=config["reg"], label_cost=config["label_cost"],
        label_weight=config["label_weight"], max_per_pool=config["max_per_pool"],
        n_projections=config.get("n_projections", 200),
    )


def choose_label_weight(config: dict[str, Any], obs, value_column: str, source: str, log: Callable[[str], None]):
    """`label_weight: auto`: the candidate whose OT best predicts the pilot metric (leave-one-out).

    Sets the chosen weight in `config` (the model stores it) and returns its `MixtureOT`.
    """
    from thresher.mixtures.transport import select_label_weight

    if config["label_cost"] is None:
        raise InputError("--label-weight auto needs a label cost (--label-cost gaussian or onehot)")
    pools, target = load_sets(config, pool_order=obs.pools)
    try:
        choice = select_label_weight(
            pools, target, obs.weights, obs.value(value_column), sizes=obs.sizes,
            solver=config["solver"], reg=config["reg"], label_cost=config["label_cost"],
            max_per_pool=config["max_per_pool"], n_projections=config.get("n_projections", 200),
        )
    except ValueError as exc:
        raise InputError(f"{source}: {exc}") from None
    config["label_weight"] = choice.label_weight
    log("label weight (pilot leave-one-out MAE): "
        + ", ".join(f"{c:g}: {e:.4g}" for c, e in choice.scores.items()) + f"; chose {choice.label_weight:g}")
    return choice.ot


def read_table(path: str, layout: TableLayout, value_columns: list[str] | None):
    """A wide mixture table (`MixtureObservations`); errors name the file and line."""
    from thresher.mixtures.mixture_observations import read_mixture_csv

    return read_mixture_csv(path, weight_prefix=layout.weight_prefix, value_columns=value_columns,
                            size_column=layout.size_column, values_path=layout.values_path, join=layout.join)


def align(obs, pools: list[str], source: str) -> np.ndarray:
    """The table's weights with columns in `pools` order; the table must have exactly those pools."""
    missing = [p for p in pools if p not in obs.pools]
    extra = [p for p in obs.pools if p not in pools]
    if missing or extra:
        raise InputError(f"{source}: weight columns must match the model's pools {pools} (missing {missing}, extra {extra})")
    return obs.weights[:, [obs.pools.index(p) for p in pools]]


def load_model(path: Path, pools: dict[str, str] | None = None, target: str | None = None):
    """A saved `PerformanceModel`, its OT rebuilt from the fitted files or from `pools` and `target` given anew."""
    from thresher.mixtures.performance import PerformanceModel

    try:
        model = PerformanceModel.load(path)
    except OSError as exc:
        raise InputError(str(exc)) from None
    if model.uses_ot:
        config = dict(model.ot_config or {})
        if pools:
            config["pools"] = pools
        if target:
            config["target"] = target
        if not config.get("pools") or not config.get("target"):
            raise InputError(f"{path}: form {model.form!r} needs OT; give --pools and --target")
        # Solver settings stay those the model was fitted with: its coefficients depend on them.
        model.ot = build_ot(config, base=path.parent, pool_order=model.pools)
    return model
