"""How sure a performance model is: bootstrap replicates, the size exponent's table, mixture misfit.

Replicates resample the pilot rows at each size and refit every stage-1 form (and, under the
power size law, the exponent); a size prior's mean is drawn per replicate. Misfit is each pilot
mixture's out-of-fold residual at the largest size. `PerformanceModel.fit` and
`predict_interval` call these; see `thresher.mixtures.performance` for the model itself.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from thresher.mixtures.performance_forms import refit_like
from thresher.mixtures.size_laws import ALPHA_GRID, fit_size_exponent, observed_means

if TYPE_CHECKING:
    from thresher.mixtures.performance import PerformanceModel


def min_rows(form: str, pools: int) -> int:
    """Fewest rows per size a form can be fitted on."""
    return {"gbm": 4, "mixing_law": pools + 2, "mixing_law_log": 2 * pools + 2}.get(form, 3)


def size_table(model: PerformanceModel, models: list, rows: np.ndarray) -> np.ndarray:
    """(mixtures, sizes) table the size exponent is fitted to, for training rows `rows`.

    Without a prior: the stage-1 predictions at those rows. With one, the evidence must be
    independent observations, so it is the mixtures' own means and `models` is unused:
    smoothed predictions would overstate how much the pilots know.
    """
    t = model._train
    if model.size_prior is None:
        p, o = t["weights"][rows], t["ot"][rows]
        return np.column_stack([est.predict(p, o) for est in models])
    return observed_means(t["weights"][rows], t["values"][rows], t["groups"][rows], len(model.stage1_))


def mixture_misfit(model: PerformanceModel, folds: int = 5) -> np.ndarray:
    """Out-of-fold residual of each pilot mixture at the largest size, seeds averaged.

    Folds hold out whole mixtures, so a residual says how far a mixture the form never saw
    sits off it; in-sample residuals would flatter flexible forms such as gbm.
    """
    t = model._train
    last = np.flatnonzero(t["groups"] == len(model.stage1_) - 1)
    p, o, y = t["weights"][last], t["ot"][last], t["values"][last]
    _, mixture = np.unique(p, axis=0, return_inverse=True)
    mixture = mixture.ravel()
    count = int(mixture.max()) + 1
    fold = np.random.default_rng(model.seed + 3).permutation(count) % min(folds, count)
    est = model.stage1_[-1]
    pred = est.predict(p, o)
    for k in range(min(folds, count)):
        held = fold[mixture] == k
        if (~held).sum() < min_rows(model.form, p.shape[1]):
            continue  # too few pilot rows to refit without this fold: keep in-sample residuals
        pred[held] = refit_like(est, p[~held], o[~held], y[~held]).predict(p[held], o[held])
    return np.bincount(mixture, weights=y - pred, minlength=count) / np.bincount(mixture, minlength=count)


def bootstrap(model: PerformanceModel, n_boot: int) -> tuple[list[list], list[float]]:
    """Replicate stage-1 models and, under the power law, each replicate's own size exponent.

    With a size prior each replicate also draws the prior's mean from the prior (a
    randomised MAP), so the exponent's spread reflects both the pilots and the prior.
    """
    t = model._train
    rng = np.random.default_rng(model.seed + 1)
    prior_rng = np.random.default_rng(model.seed + 4)
    reps: list[list] = []
    alphas: list[float] = []
    for _ in range(n_boot):
        rep, picks = [], []
        for s, est in enumerate(model.stage1_):
            idx = np.flatnonzero(t["groups"] == s)
            pick = rng.choice(idx, size=idx.size, replace=True)
            picks.append(pick)
            rep.append(refit_like(est, t["weights"][pick], t["ot"][pick], t["values"][pick]))
        reps.append(rep)
        if model.law_ != "power":
            continue
        if model.size_prior is None:
            table, drawn = size_table(model, rep, np.arange(t["weights"].shape[0])), None
        else:
            mean, sd = model.size_prior
            # The drawn mean stays on the exponent grid, as check_prior requires of any prior mean.
            drawn_mean = float(np.clip(mean + sd * prior_rng.standard_normal(), ALPHA_GRID[0], ALPHA_GRID[-1]))
            table, drawn = size_table(model, rep, np.concatenate(picks)), (drawn_mean, sd)
        alphas.append(fit_size_exponent(table, model.sizes_, drawn))
    return reps, alphas
