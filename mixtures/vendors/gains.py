"""Gain curve of one vendor: predicted metric change as a function of the quantity bought.

The pilot gains are fitted as g(u) = a + b log u over the pilot levels u (novel rows), the
size projection of projektor applied to the difference with the owned-only baseline. Below
the smallest pilot level the curve runs linearly to g(0) = 0. A purchase of q rows brings
u = q (1 - d) novel rows, d being the duplicate fraction of the revealed sample.

Uncertainty is a bootstrap over everything measured: validation rows (multinomial weights,
so no retraining), pilot runs (resampled within each level) and the duplicate count
(binomial). Every replicate refits the curve, so intervals widen with extrapolation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thresher.mixtures.vendors.pilots import PilotRuns


def _fit_lines(log_levels: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Least-squares (a, b) per column of gains (L, B); b = 0 with a single level."""
    if log_levels.size == 1:
        return np.vstack([gains[0], np.zeros(gains.shape[1])])
    x = np.column_stack([np.ones_like(log_levels), log_levels])
    return np.linalg.pinv(x) @ gains


@dataclass
class GainCurve:
    """Fitted gain curve with bootstrap replicates of its coefficients.

    Quantities are rows bought; gains are sign-adjusted (positive = better metric).
    """

    levels: np.ndarray
    coef: np.ndarray           # (2,)
    coef_boot: np.ndarray      # (2, B)
    duplicate_fraction: float
    duplicate_boot: np.ndarray  # (B,)
    level_gains: np.ndarray
    base_metric: float
    metric: str

    @classmethod
    def fit(cls, runs: PilotRuns, *, duplicates: int = 0, revealed: int | None = None,
            n_boot: int = 300, seed: int = 0) -> GainCurve:
        """Fit on pilot runs; `duplicates` of `revealed` sample rows were already owned."""
        if n_boot < 10:
            raise ValueError(f"n_boot must be at least 10, got {n_boot}")
        revealed = int(revealed) if revealed is not None else 0
        if duplicates < 0 or (revealed and duplicates > revealed):
            raise ValueError("duplicates must lie between 0 and the revealed rows")
        rng = np.random.default_rng(seed)
        dup = duplicates / revealed if revealed else 0.0
        dup_boot = rng.binomial(revealed, dup, size=n_boot) / revealed if revealed else np.zeros(n_boot)
        loglev = np.log(runs.levels)
        point = runs.level_gains()
        coef = _fit_lines(loglev, point[:, None])[:, 0]

        n = runs.base_num.shape[1]
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).T.astype(np.float64) if n > 1 else np.ones((1, n_boot))
        base = (runs.base_num @ w) / (runs.base_den @ w)  # (R0, B)
        r0 = base.shape[0]
        cols = np.arange(n_boot)[None, :]
        base_pick = rng.integers(0, r0, size=(r0, n_boot))
        gains = np.empty((runs.levels.size, n_boot))
        for li, (num, den) in enumerate(zip(runs.num, runs.den)):
            m = (num @ w) / (den @ w)  # (R_l, B)
            if runs.paired:
                gains[li] = (m[base_pick, cols] - base[base_pick, cols]).mean(axis=0)
            else:
                pick = rng.integers(0, m.shape[0], size=(m.shape[0], n_boot))
                gains[li] = m[pick, cols].mean(axis=0) - base[base_pick, cols].mean(axis=0)
        gains *= runs.sign
        coef_boot = _fit_lines(loglev, gains)
        return cls(runs.levels.copy(), coef, coef_boot, float(dup), dup_boot, point, runs.base_metric(), runs.metric)

    @property
    def n_boot(self) -> int:
        return self.coef_boot.shape[1]

    def _curve(self, novel: np.ndarray, coef: np.ndarray) -> np.ndarray:
        """g at novel quantities (..., G) for coefficient columns broadcast against them."""
        lo = self.levels[0]
        a, b = coef[0], coef[1]
        at_lo = a + b * np.log(lo)
        safe = np.maximum(novel, lo)
        above = a + b * np.log(safe)
        below = at_lo * np.clip(novel, 0.0, None) / lo
        return np.where(novel >= lo, above, below)

    def predict(self, quantity: np.ndarray | float) -> np.ndarray:
        """Point prediction of the gain for buying `quantity` rows."""
        q = np.atleast_1d(np.asarray(quantity, dtype=np.float64))
        return self._curve(q * (1.0 - self.duplicate_fraction), self.coef)

    def samples(self, quantity: np.ndarray | float) -> np.ndarray:
        """(B, G) bootstrap replicates of the gain at each quantity."""
        q = np.atleast_1d(np.asarray(quantity, dtype=np.float64))
        novel = q[None, :] * (1.0 - self.duplicate_boot[:, None])
        return self._curve(novel, (self.coef_boot[0][:, None], self.coef_boot[1][:, None]))

    def extrapolation(self, quantity: float) -> float:
        """How far beyond the largest pilot level a purchase reaches (1 = within the pilots)."""
        return float(max(1.0, quantity * (1.0 - self.duplicate_fraction) / self.levels[-1]))


def zero_curve(*, metric: str, base_metric: float, n_boot: int = 300, duplicate_fraction: float = 1.0) -> GainCurve:
    """The curve of a vendor with no novel rows: buying it changes nothing."""
    return GainCurve(np.ones(1), np.zeros(2), np.zeros((2, n_boot)), float(duplicate_fraction),
                     np.full(n_boot, float(duplicate_fraction)), np.zeros(1), base_metric, metric)
