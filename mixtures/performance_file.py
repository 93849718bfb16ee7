"""The performance-model file: the one reader and writer of `PerformanceModel` JSON (never pickle).

A saved model holds its stage-1 forms, bootstrap replicates and training rows; a gbm form is
refitted from the stored rows on load (deterministic for its seed), so no estimator object is
ever serialised. `PerformanceModel.save` / `load` / `to_dict` / `from_dict` call these; `to_bytes` /
`from_bytes` serve callers that move the file themselves (`thresher.jobs`, to and from object storage).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from thresher.metrics.files import FormatError, JsonFormat, MiB, read_limited, write_bytes_atomic
from thresher.mixtures.performance_forms import form_from_dict, make_form

if TYPE_CHECKING:
    from thresher.mixtures.performance import OTFunction, PerformanceModel

FORMAT = JsonFormat("thresher.performance_model", 1, "performance model", max_bytes=256 * MiB, version_field=True)
MISSING = "write one with `thresher mix fit`"  # what to do about a missing model file


def to_dict(model: PerformanceModel) -> dict[str, Any]:
    t = model._train
    replicates = model.boot_ is not None and model.form != "gbm"
    return {
        **FORMAT.stamp(),
        "form": model.form,
        "goal": model.goal,
        "pools": model.pools,
        "size_law": model.size_law,
        "size_prior": None if model.size_prior is None else list(model.size_prior),
        "law": model.law_,
        "sizes": model.sizes_.tolist(),
        "size_alpha": None if not np.isfinite(model.size_alpha_) else model.size_alpha_,
        "alpha": model.alpha,
        "n_boot": model.n_boot,
        "seed": model.seed,
        "gbm_params": model.gbm_params,
        "residual_sd": model.residual_sd_,
        "misfit": model.misfit_.tolist(),
        "stage1": [est.to_dict() for est in model.stage1_],
        "bootstrap": [[e.to_dict() for e in rep] for rep in model.boot_] if replicates else None,
        "bootstrap_size_alpha": list(model.boot_alpha_) if replicates else None,
        "ot": model.ot_config,
        "training": {
            "weights": t["weights"].tolist(),
            "values": t["values"].tolist(),
            "ot": t["ot"].tolist(),
            "sizes": (model.sizes_[t["groups"]].tolist() if model.sizes_.size else None),
        },
    }


def to_bytes(model: PerformanceModel) -> bytes:
    """The model file's bytes, for `save` and for callers that write them elsewhere (an object store)."""
    return json.dumps(to_dict(model), indent=1).encode()


def save(model: PerformanceModel, path: str | Path) -> Path:
    return write_bytes_atomic(to_bytes(model), path)


def _restore(model: PerformanceModel, d: Mapping[str, Any]) -> None:
    """Fill a freshly built model's fitted state from a saved one."""
    model.pools = list(d["pools"])
    model.law_ = d["law"]
    model.sizes_ = np.asarray(d["sizes"], dtype=np.float64)
    model.size_alpha_ = float("nan") if d.get("size_alpha") is None else float(d["size_alpha"])
    model.residual_sd_ = float(d["residual_sd"])
    model.misfit_ = np.asarray(d.get("misfit") or [], dtype=np.float64)
    model.ot_config = d.get("ot")
    tr = d["training"]
    w = np.asarray(tr["weights"], dtype=np.float64)
    groups = (
        np.searchsorted(model.sizes_, np.asarray(tr["sizes"], dtype=np.float64))
        if tr.get("sizes") is not None
        else np.zeros(w.shape[0], dtype=int)
    )
    model._train = {"weights": w, "values": np.asarray(tr["values"], float), "ot": np.asarray(tr["ot"], float),
                     "groups": groups}
    if model.form == "gbm":
        # Refit from the stored rows (no pickle); deterministic for the stored seed.
        model.stage1_ = []
        for s in range(max(1, model.sizes_.size)):
            rows = groups == s
            est = make_form("gbm", seed=model.seed, gbm_params=model.gbm_params)
            model.stage1_.append(est.fit(w[rows], np.zeros(0), model._train["values"][rows]))
    else:
        model.stage1_ = [form_from_dict(model.form, e) for e in d["stage1"]]
        boot = d.get("bootstrap")
        model.boot_ = None if boot is None else [[form_from_dict(model.form, e) for e in rep] for rep in boot]
        model.boot_alpha_ = [float(a) for a in (d.get("bootstrap_size_alpha") or [])]


def from_dict(cls: type[PerformanceModel], d: Mapping[str, Any], *, ot: OTFunction | None = None,
              source: str = "performance model") -> PerformanceModel:
    FORMAT.check(d, source)
    try:
        model = cls(
            d["form"], ot=ot, size_law=d["size_law"], size_prior=d.get("size_prior"), goal=d["goal"], alpha=d["alpha"],
            n_boot=d["n_boot"], seed=d["seed"], gbm_params=d.get("gbm_params"),
        )
        _restore(model, d)
    except (KeyError, TypeError) as exc:
        raise FormatError(source, f"malformed performance model: missing or bad field {exc}") from None
    except ValueError as exc:
        raise FormatError(source, str(exc)) from None
    return model


def from_bytes(cls: type[PerformanceModel], data: str | bytes, *, ot: OTFunction | None = None,
               source: str = "performance model") -> PerformanceModel:
    """A model from the bytes of its file, read by the caller (within `FORMAT.max_bytes`); `source` names the file."""
    return from_dict(cls, FORMAT.loads(data, source), ot=ot, source=source)


def load(cls: type[PerformanceModel], path: str | Path, *, ot: OTFunction | None = None) -> PerformanceModel:
    data = read_limited(path, FORMAT.max_bytes, FORMAT.what, missing=MISSING)
    return from_bytes(cls, data, ot=ot, source=str(path))
