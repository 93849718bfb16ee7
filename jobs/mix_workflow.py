"""The steps of `thresher mix`: fit a performance model on pilot runs, predict, choose weights, size priors, OT.

Each step reads its files (through `mix_inputs`), calls the mixer in `thresher.mixtures`
and writes its output; the command module only turns arguments into these calls and
prints a summary. Outputs are written whole: atomically on a local disk, as one upload to a
URI (`embedding_files.commit`).
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from thresher.jobs.embedding_files import Where, commit, place
from thresher.jobs.mix_inputs import TableLayout, align, build_ot, choose_label_weight, read_table, table_copy
from thresher.metrics.errors import InputError
from thresher.pipeline.storage import StorageError

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def write_json(path: Where, data: dict[str, Any], indent: int = 2) -> str:
    """Write a JSON output (a local path or a URI); returns how to name it."""
    from thresher.pipeline.outputs import write_bytes_atomic

    return commit(path, json.dumps(data, indent=indent).encode("utf-8"), local=write_bytes_atomic)


def read_size_prior(text: str | None) -> tuple[float, float] | None:
    """A size-exponent prior given as MEAN,SD, or the JSON written by `thresher mix exponent`."""
    from thresher.mixtures.size_laws import check_prior

    if text is None:
        return None
    if text.lower().endswith(".json"):
        path = place(text)
        try:
            prior = json.loads(path.read_text(encoding="utf-8"))["size_prior"]
        except StorageError:
            raise  # the store failed (throttled, unreachable), not the file
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: not a size prior from `thresher mix exponent` ({exc})") from None
    else:
        prior = text.split(",")
        if len(prior) != 2:
            raise InputError(f"--size-prior {text!r} must be MEAN,SD or a .json file")
    try:
        return check_prior(prior)
    except ValueError as exc:
        raise InputError(f"--size-prior {text!r}: {exc}") from None


def fit_model(observations: str, value_column: str, form: str, layout: TableLayout, *,
              ot_config: dict[str, Any] | None, size_law: str, size_prior: tuple[float, float] | None, goal: str,
              alpha: float, n_boot: int, seed: int, log: Log = _quiet):
    """A `PerformanceModel` fitted on the pilot runs in `observations`; OT forms need `ot_config`."""
    from thresher.mixtures.performance import PerformanceModel
    from thresher.mixtures.performance_forms import OT_FORMS

    if size_prior is not None and size_law in ("log", "none"):
        raise InputError(f"--size-prior is a prior on the power law's exponent; it cannot go with --size-law {size_law}")
    obs = read_table(observations, layout, [value_column])
    ot_fn = None
    if form in OT_FORMS:
        if ot_config is None:
            raise InputError(f"form {form!r} needs --pools and --target (embedding files) to compute OT")
        if ot_config["label_weight"] == "auto":
            ot_fn = choose_label_weight(ot_config, obs, value_column, observations, log)
        else:
            ot_fn = build_ot(ot_config, pool_order=obs.pools)
        log(f"OT: {ot_fn.solver}, {ot_fn.n_points[0]} pool points vs {ot_fn.n_points[1]} target points")
    try:
        model = PerformanceModel(form, ot=ot_fn, size_law=size_law, size_prior=size_prior, goal=goal, alpha=alpha,
                                 n_boot=n_boot, seed=seed).fit(obs, value_column)
    except ValueError as exc:
        raise InputError(f"{observations}: {exc}") from None
    model.ot_config = ot_config if form in OT_FORMS else None
    sizes = ", ".join(f"{s:g}" for s in model.sizes_) or "one size"
    law = model.law_ + (f", exponent {model.size_alpha_:.3f}" if model.law_ == "power" else "")
    log(f"fitted {form} on {len(obs)} runs ({sizes}; size law {law}); in-sample RMSE {model.residual_sd_:.4g}")
    return model


def predict_csv(model, mixtures: str, out: Where, layout: TableLayout, *, size: float | None, level: float,
                interval: str) -> int:
    """The rows of `mixtures` plus predicted, predicted_low and predicted_high, written to `out`; returns the count."""
    from thresher.pipeline.outputs import write_bytes_atomic

    with table_copy(mixtures) as local:  # read twice (the table, then its rows as text): one copy of a remote file
        obs = read_table(local, layout, [])
        weights = align(obs, model.pools, mixtures)
        n = size if size is not None else obs.sizes
        try:
            mean, lo, hi = model.predict_interval(weights, n, level=level, kind=interval)
        except ValueError as exc:
            raise InputError(f"{mixtures}: {exc}") from None
        with open(local, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    header, body = rows[0], rows[1:]
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(header + ["predicted", "predicted_low", "predicted_high"])
    for row, m, low, high in zip(body, mean, lo, hi):
        writer.writerow(row + [repr(float(m)), repr(float(low)), repr(float(high))])
    commit(out, buf.getvalue().encode("utf-8"), local=write_bytes_atomic)
    return len(mean)


def sweep_exponent(path: str, value_column: str, layout: TableLayout) -> dict[str, Any]:
    """The size exponent of one earlier sweep (three or more sizes), fitted on the mixtures run at every size."""
    from thresher.mixtures.size_laws import observed_means
    from thresher.mixtures.size_laws import sweep_exponent as fit_exponent

    obs = read_table(path, layout, [value_column])
    if obs.sizes is None:
        raise InputError(f"{path}: no {layout.size_column!r} column; a sweep needs three or more sizes")
    sizes, groups = np.unique(obs.sizes, return_inverse=True)
    listed = ", ".join(f"{s:g}" for s in sizes)
    if sizes.size < 3:
        raise InputError(f"{path}: {sizes.size} size(s) ({listed}); a sweep needs three or more")
    table = observed_means(obs.weights, obs.value(value_column), groups.ravel(), sizes.size)
    if not table.shape[0]:
        raise InputError(f"{path}: no mixture was run at every size ({listed})")
    alpha = fit_exponent(table, sizes)
    return {"path": str(path), "exponent": alpha, "sizes": sizes.tolist(), "mixtures": int(table.shape[0])}


def exponent_prior(paths: list[str], value_column: str, layout: TableLayout, log: Log = _quiet) -> dict[str, Any]:
    """{"size_prior": [mean, sd], "sweeps": [...]}: the prior on the size exponent from earlier sweeps."""
    from thresher.mixtures.size_laws import exponent_prior as prior_of

    rows = []
    for path in paths:
        row = sweep_exponent(path, value_column, layout)
        rows.append(row)
        log(f"{path}: exponent {row['exponent']:.3f} from {row['mixtures']} mixtures at sizes "
            + ", ".join(f"{s:g}" for s in row["sizes"]))
    mean, sd = prior_of([r["exponent"] for r in rows])
    log(f"size prior: {mean:.3f},{sd:.3f} (mean, SD over {len(rows)} sweeps)")
    return {"size_prior": [mean, sd], "sweeps": rows}


def optimize(model, model_path: str, *, size: float | None, caps: dict[str, float] | None,
             available: dict[str, float] | None, prices: dict[str, float] | None, budget: float | None, starts: int,
             level: float, interval: str, seed: int) -> tuple[Any, dict[str, Any]]:
    """(the `MixtureChoice`, its JSON data): the best weights under caps, availability and a budget."""
    from thresher.mixtures.optimize import optimize_mixture

    if (prices is None) != (budget is None):
        raise InputError("--prices and --budget go together")
    choice = optimize_mixture(model, size, caps=caps, available=available, prices=prices, budget=budget,
                              starts=starts, level=level, interval=interval, seed=seed)
    return choice, {"model": str(model_path), "form": model.form, **choice.to_dict()}


def ot_report(model, config: dict[str, Any], mixtures: list[np.ndarray]) -> dict[str, Any]:
    """OT (`MixtureOT` of `config`) of each pool alone and of each mixture, with the gradient of OT in the weights."""
    names = model.pool_names
    vertices = model.vertex_values()
    rows = []
    for w in mixtures:
        value, grad = model.value_and_grad(w)
        rows.append({"weights": dict(zip(names, map(float, w))), "ot": value, "gradient": dict(zip(names, map(float, grad)))})
    return {
        "config": {**model.config(), "pools": config["pools"], "target": config["target"]},
        "pool_ot": dict(zip(names, map(float, vertices))),
        "mixtures": rows,
        "note": "gradient: dOT/dp projected on the simplex (sums to zero); OT(p + h d) ~ OT(p) + h gradient.d",
    }
