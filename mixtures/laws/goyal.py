"""Goyal et al.'s repetition-aware utility law (FADU), generalised to unequal pools and weights.

Each pool has a utility b_i < 0 (its power-law exponent) and a half-life tau_i in epochs; a and
d are shared. During the first pass y = (a n / Z)^b + d. Afterwards the curve continues as a
power law whose exponent decays by half every tau epochs: d ln y / d ln n = b_eff(n) with

    b_eff(n) = sum_i w_i b_i 0.5^(k_i(n) / tau_i),   k_i(n) = floor(w_i n / U_i).

b_eff is piecewise constant, so the integral is exact and separates by pool. With equal pools
and uniform weights this is the reference code's union recursion. The reference multiplies every
half-life by the number of pools mixed (`tau_scaling="by_pool_count"`); the per-pool definition
(`"per_pool"`, the default) does not. For unequal weights we count pools as 1 / sum_i w_i^2, the
effective number of pools: equal to the count for uniform mixtures, and continuous, so a sliver
of an extra pool cannot double every half-life.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from thresher.mixtures.laws.base import Law, LawData, ParamSpec, pooled
from thresher.mixtures.observations import Observations

TAU_SCALINGS = ("per_pool", "by_pool_count")


class GoyalLaw(Law):
    name = "goyal"
    needs_params = False
    option_defaults = {"tau_scaling": "per_pool", "Z": 1e5}

    def _check_options(self) -> None:
        if self.options["tau_scaling"] not in TAU_SCALINGS:
            raise ValueError(f"law 'goyal': tau_scaling must be one of {TAU_SCALINGS}, got {self.options['tau_scaling']!r}")
        if not float(self.options["Z"]) > 0:
            raise ValueError("law 'goyal': Z must be positive")

    def param_specs(self, pools: Sequence[str], obs: Observations | None = None) -> list[ParamSpec]:
        vmin = float(np.nanmin(obs.value)) if obs is not None and np.isfinite(obs.value).any() else 1.0
        # a sets the sample scale: spread starts so a*n/Z spans 1..1e4 at the median seen.
        nmed = float(np.median(obs.seen)) if obs is not None else 1e7
        a_grid = tuple(float(10.0**e) * float(self.options["Z"]) / nmed for e in (0.5, 2.0, 3.5))
        specs = [
            ParamSpec("a", "log", 1e-30, 1e30, a_grid, axis="a"),
            ParamSpec("d", "log", 1e-12, 1e6, (0.05 * vmin, 0.5 * vmin), axis="d"),
        ]
        specs += [ParamSpec(pooled("b", p), "neglog", -2.0, -1e-6, (-0.05, -0.15, -0.4), axis="b") for p in pools]
        specs += [ParamSpec(pooled("tau", p), "log", 0.25, 100.0, (1.5, 6.0), axis="tau", repetition=True, neutral=100.0) for p in pools]
        return specs

    def predict_batch(self, theta: np.ndarray, data: LawData) -> np.ndarray:
        theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        n_pools = data.weights.shape[1]
        a, d = theta[:, 0:1], theta[:, 1:2]
        b = theta[:, 2 : 2 + n_pools]
        tau = theta[:, 2 + n_pools : 2 + 2 * n_pools]
        w, x = data.weights, data.seen
        active = w > 0
        period = np.where(active, data.unique / np.where(active, w, 1.0), np.inf)  # samples seen per pass over pool i
        n1 = period.min(axis=1)  # no pool repeats before n1
        x1 = np.minimum(x, n1)
        b0 = b @ w.T  # (m, n)
        first = (a * x1 / float(self.options["Z"])) ** b0 + d
        log_y = np.log(first)
        beyond = x > n1
        if beyond.any():
            log_y[:, beyond] += self._repetition_term(b, tau, w[beyond], period[beyond], x[beyond], x1[beyond])
        return np.exp(log_y)

    def _repetition_term(self, b: np.ndarray, tau: np.ndarray, w: np.ndarray, period: np.ndarray, x: np.ndarray,
                         x1: np.ndarray) -> np.ndarray:
        """sum_i w_i b_i (H_i(x) - ln x1) for rows past the first pass; H_i is the decayed log-integral."""
        m, n_pools = b.shape
        active = w > 0
        safe_period = np.where(active, period, 1.0)
        k = np.where(active, np.floor(x[:, None] / safe_period), 0).astype(np.int64)  # completed passes (n, P)
        if self.options["tau_scaling"] == "by_pool_count":
            count = 1.0 / np.sum(w * w, axis=1)
        else:
            count = np.ones(len(x))
        out = np.zeros((m, len(x)))
        for c in np.unique(count):
            rows = count == c
            kr = k[rows]
            log_delta = -np.log(2.0) / (tau * float(c))  # (m, P)
            # Terms past delta^k < e^-45 no longer change the sum: cap the cumulative sum there.
            kmax = int(min(kr.max(), np.ceil(45.0 / np.abs(log_delta).min()) + 1))
            kr_capped = np.minimum(kr, kmax)
            if kmax >= 1:
                ks = np.arange(1, kmax + 1, dtype=np.float64)
                terms = np.exp(log_delta[:, :, None] * ks) * np.log1p(1.0 / ks)  # (m, P, kmax)
                cum = np.concatenate([np.zeros((m, n_pools, 2)), np.cumsum(terms, axis=2)[:, :, : kmax - 1]], axis=2)
                gathered = cum[:, np.arange(n_pools)[None, :], kr_capped]  # (m, rows, P): sum_{j<k} delta^j ln(1+1/j)
            else:
                gathered = np.zeros((m,) + kr.shape)
            xr = x[rows][:, None]
            pr = safe_period[rows]
            tail = np.where(kr >= 1, np.log(xr / (np.maximum(kr, 1) * pr)), 0.0)  # partial current pass
            h = np.log(np.minimum(xr, pr)) + np.where(kr >= 1, gathered + np.exp(log_delta[:, None, :] * kr) * tail, 0.0)
            h = h - np.log(x1[rows])[:, None]
            out[:, rows] = np.einsum("mrp,rp,mp->mr", h, w[rows], b)
        return out
