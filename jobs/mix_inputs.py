"""The files behind `thresher mix`: embedding sets and the OT built on them, mixture tables, saved models.

An OT configuration is a plain dict (pools -> embedding file, target file, solver settings)
because a fitted model stores it as is (`PerformanceModel.ot_config`): a model can rebuild
its OT from the files it was fitted with, or from new paths to the same pools.

Any of these files may be a URI: embeddings and models are read through
`thresher.pipeline.storage` (`embedding_files`); the mixer's wide tables, whose reader
(`thresher.mixtures.mixture_observations.read_mixture_csv`) takes only a path, are read from a
local copy of the object, with errors that name the URI.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thresher.jobs.embedding_files import Where, local_copy, place, read_capped, read_embeddings, shown
from thresher.metrics.errors import InputError
from thresher.pipeline.storage import StorageError, is_remote


@dataclass(frozen=True)
class TableLayout:
    """How a wide mixture CSV names its columns, and an optional second CSV holding the values."""

    weight_prefix: str = "weight_"
    size_column: str | None = "size"
    values_path: str | None = None
    join: str | None = None


def load_embedding_set(path: Where, name: str | None = None, column: str = "embedding"):
    """An `EmbeddingSet` from .npy, .npz or .parquet (layouts in `embedding_files`)."""
    from thresher.mixtures.transport import EmbeddingSet

    arrays = read_embeddings(path, column=column)
    try:
        return EmbeddingSet(arrays.x, labels=arrays.labels, weights=arrays.weights, name=str(name or path))
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None


def load_sets(config: dict[str, Any], base: Where | None = None, pool_order: list[str] | None = None):
    """Pool and target embedding sets named by an OT config (relative paths also tried relative to `base`)."""

    def resolve(path: str) -> Where:
        p = place(path)
        if base is not None and not is_remote(path) and not os.path.isabs(path) and not p.exists() \
                and (base / path).exists():
            return base / path
        return p

    column = config.get("embedding_column", "embedding")
    names = pool_order or list(config["pools"])
    missing = [n for n in names if n not in config["pools"]]
    if missing:
        raise InputError(f"no embedding file for pools {missing}; give --pools for every pool {names}")
    pools = {n: load_embedding_set(resolve(config["pools"][n]), n, column) for n in names}
    target = load_embedding_set(resolve(config["target"]), "target", column)
    return pools, target


def build_ot(config: dict[str, Any], base: Where | None = None, pool_order: list[str] | None = None):
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
    """A wide mixture table (`MixtureObservations`); errors name the file (its URI) and line."""
    from thresher.mixtures.mixture_observations import read_mixture_csv

    with table_copy(path) as local, table_copy(layout.values_path) as values:
        return read_mixture_csv(local, weight_prefix=layout.weight_prefix, value_columns=value_columns,
                                size_column=layout.size_column, values_path=values, join=layout.join)


@contextlib.contextmanager
def table_copy(path: str | None) -> Iterator[str | None]:
    """A mixture table as its reader takes it: a local path as given, a remote object as a local copy.

    The copy is made within the observation-table size limit, and a missing or oversize object
    is refused as the reader refuses a local file (an ObservationError naming the URI).
    """
    from thresher.mixtures.observation_files import MAX_BYTES, ObservationError

    where = None if path is None else place(path)
    if where is None or isinstance(where, Path):
        yield path
        return
    with contextlib.ExitStack() as stack:
        try:
            local = stack.enter_context(local_copy(where, MAX_BYTES, "observation table"))
        except FileNotFoundError:
            raise ObservationError(f"{where.uri}: no such file") from None
        except InputError as exc:  # over the size limit
            raise ObservationError(str(exc)) from None
        yield str(local)


def align(obs, pools: list[str], source: str) -> np.ndarray:
    """The table's weights with columns in `pools` order; the table must have exactly those pools."""
    missing = [p for p in pools if p not in obs.pools]
    extra = [p for p in obs.pools if p not in pools]
    if missing or extra:
        raise InputError(f"{source}: weight columns must match the model's pools {pools} (missing {missing}, extra {extra})")
    return obs.weights[:, [obs.pools.index(p) for p in pools]]


def load_model(path: Where, pools: dict[str, str] | None = None, target: str | None = None):
    """A saved `PerformanceModel` (a path or a URI), its OT rebuilt from the fitted files or from `pools` and `target`."""
    from thresher.mixtures import performance_file
    from thresher.mixtures.performance import PerformanceModel

    fmt = performance_file.FORMAT
    try:
        data = read_capped(path, fmt.max_bytes, fmt.what, missing=performance_file.MISSING)
    except StorageError:
        raise  # the store's own one-line error (throttled, unreachable): not the user's input
    except OSError as exc:
        raise InputError(str(exc)) from None
    model = PerformanceModel.from_json(data, source=shown(path))
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
