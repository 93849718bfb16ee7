"""Size laws: carry a metric measured at pilot sizes to a larger training size.

``power`` fits E + A N^-alpha per mixture with one exponent shared by all mixtures; ``log``
is projektor's E + A log N. Both are linear in the pilot values once alpha is fixed, so a
projection is a fixed weighting of the pilot columns (`size_weights`).

From three pilot sizes the exponent rests on the curvature of three noisy points and is the
largest error far from the pilots. Across related sweeps (the same proxy family on other data)
it varies much less than its estimate from one pilot grid does, so an exponent measured on
earlier sweeps that reached larger sizes (`size_exponent_prior`) can enter the fit as a
Gaussian prior: a maximum a posteriori exponent, where the data's evidence is the profile
likelihood of the pilot means (`fit_size_exponent(..., prior=...)`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ALPHA_GRID = np.geomspace(0.01, 3.0, 240)
DECIMALS = 9  # weights equal to this many decimals are the same mixture


def _size_design(sizes: np.ndarray, law: str, alpha: float) -> np.ndarray:
    s = np.asarray(sizes, dtype=np.float64)
    if law == "log":
        return np.column_stack([np.ones_like(s), np.log(s)])
    return np.column_stack([np.ones_like(s), s ** (-alpha)])


def size_weights(sizes: np.ndarray, n: np.ndarray, law: str, alpha: float) -> np.ndarray:
    """(len(n), len(sizes)) weights that carry values at the pilot sizes to sizes n.

    A least-squares fit of E + A N^-alpha ("power") or E + A log N ("log") through the pilot
    values is linear in them, so projecting a table of values is `table @ weights.T`.
    """
    return _size_design(n, law, alpha) @ np.linalg.pinv(_size_design(sizes, law, alpha))


def check_prior(prior: Sequence[float] | None) -> tuple[float, float] | None:
    """A (mean, sd) exponent prior with both parts positive and finite, or None."""
    if prior is None:
        return None
    try:
        mean, sd = (float(v) for v in prior)
    except (TypeError, ValueError):
        raise ValueError(f"a size prior is (mean, sd), got {prior!r}") from None
    if not (np.isfinite(mean) and np.isfinite(sd) and mean > 0 and sd > 0):
        raise ValueError(f"a size prior needs a positive mean and SD, got ({mean:g}, {sd:g})")
    if not ALPHA_GRID[0] <= mean <= ALPHA_GRID[-1]:
        raise ValueError(f"a size prior's mean must lie in [{ALPHA_GRID[0]:g}, {ALPHA_GRID[-1]:g}], got {mean:g}")
    return mean, sd


def fit_size_exponent(table: np.ndarray, sizes: np.ndarray, prior: Sequence[float] | None = None) -> float:
    """The shared alpha of E + A N^-alpha (one E and A per row) for a (rows, sizes) table.

    Without a prior: least squares. With a (mean, sd) prior, rows must be independent
    observations (pilot means, not a fitted form's predictions, which would overstate the
    evidence): the exponent minimises (SSE(alpha) - SSE_min) / s2 + ((alpha - mean) / sd)^2,
    s2 = SSE_min / (residual degrees of freedom). With no residual freedom (two sizes, or no
    rows) the data say nothing about alpha and the prior mean is returned.
    """
    prior = check_prior(prior)
    table = np.asarray(table, dtype=np.float64)
    sizes = np.asarray(sizes, dtype=np.float64)
    rows = table.shape[0] if table.ndim == 2 else 0
    dof = rows * (sizes.size - 2) - 1
    if prior is not None and dof <= 0:
        return prior[0]
    sse = np.array([np.sum((table - table @ size_weights(sizes, sizes, "power", a).T) ** 2) for a in ALPHA_GRID])
    best = int(np.argmin(sse))
    if prior is None or sse[best] <= 0:
        return float(ALPHA_GRID[best])
    score = (sse - sse[best]) / (sse[best] / dof) + ((ALPHA_GRID - prior[0]) / prior[1]) ** 2
    return float(ALPHA_GRID[int(np.argmin(score))])


def observed_means(weights: np.ndarray, values: np.ndarray, groups: np.ndarray, count: int) -> np.ndarray:
    """(mixtures, count) table of mean values for the mixtures observed in every size group."""
    weights = np.asarray(weights, dtype=np.float64)
    if not weights.size:
        return np.zeros((0, count))
    _, mixture = np.unique(np.round(weights, DECIMALS), axis=0, return_inverse=True)
    mixture = mixture.ravel()
    cells = mixture * count + np.asarray(groups)
    m = int(mixture.max()) + 1
    n = np.bincount(cells, minlength=m * count).reshape(m, count)
    total = np.bincount(cells, weights=values, minlength=m * count).reshape(m, count)
    complete = (n > 0).all(axis=1)
    return total[complete] / n[complete]


def sweep_exponent(table: np.ndarray, sizes: np.ndarray) -> float:
    """The least-squares exponent of one earlier sweep: a (rows, sizes) table of means, three or more sizes."""
    sizes = np.asarray(sizes, dtype=np.float64)
    if sizes.size < 3 or np.unique(sizes).size != sizes.size:
        raise ValueError(f"needs three or more distinct sizes, got {sizes.tolist()}")
    table = np.asarray(table, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != sizes.size or not table.shape[0] or not np.all(np.isfinite(table)):
        raise ValueError(f"need a finite (rows, {sizes.size}) table of means")
    return fit_size_exponent(table, sizes)


def exponent_prior(exponents: Sequence[float]) -> tuple[float, float]:
    """(mean, sd) prior from the exponents of earlier sweeps (`sweep_exponent`).

    Sweeps should cover the size range being projected into; the SD across them is the
    prior's width, so two near-identical sweeps give an overconfident prior.
    """
    if len(exponents) < 2:
        raise ValueError(f"an exponent prior needs at least two sweeps, got {len(exponents)}")
    mean, sd = float(np.mean(exponents)), float(np.std(exponents, ddof=1))
    if sd <= 0:
        raise ValueError("the sweeps' exponents are identical; an SD of zero would make the prior exact")
    return mean, sd


def size_exponent_prior(sweeps: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """(mean, sd) prior from earlier sweeps, each a (rows, sizes) table of means and its sizes."""
    exponents = []
    for k, (table, sizes) in enumerate(sweeps):
        try:
            exponents.append(sweep_exponent(table, sizes))
        except ValueError as exc:
            raise ValueError(f"sweep {k}: {exc}") from None
    return exponent_prior(exponents)
