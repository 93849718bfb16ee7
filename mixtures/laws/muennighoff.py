"""Muennighoff et al.'s data-constrained law, extended to several pools with per-pool quality.

Repeated tokens are worth less than fresh ones and saturate: a pool of U unique tokens seen
R + 1 times counts as U (1 + R*_D (1 - exp(-R / R*_D))) effective tokens, at most (1 + R*_D) U.
Parameters beyond the compute-optimal size for the unique data (U_N) decay the same way with
R*_N. With several pools, each pool's effective data is scaled by its quality q (q = 1 for the
first pool) and has its own R*_D; the effective unique data feeding U_N is sum_i q_i U_i.

    L = E + A / N'^alpha + B / D'^beta

D' is monotone in the tokens seen, so this law cannot predict a loss that rises with epochs.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from thresher.mixtures.laws.base import Law, LawData, ParamSpec, pooled
from thresher.mixtures.observations import Observations

# Published constants (datablations README); the `natural` values of its log-space fit.
PUBLISHED = {
    "E": float(np.exp(0.6254804)),
    "A": float(np.exp(6.255414)),
    "B": float(np.exp(7.3049974)),
    "alpha": 0.3526596,
    "beta": 0.3526596,
    "R_N": 5.309743,
    "R_D": 15.387756,
}


def scale_grids(obs: Observations | None) -> tuple[float, float, float]:
    """Typical value, model size and tokens seen, so start grids follow the user's units."""
    if obs is None:
        return 1.0, 1e8, 1e10
    vmin = float(np.nanmin(obs.value)) if np.isfinite(obs.value).any() else 1.0
    nmed = float(np.nanmedian(obs.params)) if np.isfinite(obs.params).any() else 1e8
    return vmin, nmed, float(np.median(obs.seen))


class MuennighoffLaw(Law):
    name = "muennighoff"
    needs_params = True
    option_defaults = {"tie_exponents": True}

    def base_specs(self, pools: Sequence[str], obs: Observations | None) -> list[ParamSpec]:
        vmin, nmed, dmed = scale_grids(obs)
        mid = 0.35
        specs = [
            ParamSpec("E", "log", 1e-6, 1e6, tuple(vmin * f for f in (0.2, 0.5, 0.8)), axis="E"),
            ParamSpec("A", "log", 1e-12, 1e15, tuple(vmin * nmed**mid * f for f in (0.03, 0.3, 3.0)), axis="A"),
            ParamSpec("B", "log", 1e-12, 1e15, tuple(vmin * dmed**mid * f for f in (0.03, 0.3, 3.0)), axis="B"),
            ParamSpec("alpha", "log", 0.01, 3.0, (0.2, 0.35, 0.6), axis="alpha"),
        ]
        if not self.options["tie_exponents"]:
            specs.append(ParamSpec("beta", "log", 0.01, 3.0, (0.25, 0.45), axis="beta"))
        specs.append(ParamSpec("R_N", "log", 1e-2, 1e6, (2.0, 20.0), axis="R_N", repetition=True, neutral=1e6))
        specs += [ParamSpec(pooled("R_D", p), "log", 1e-2, 1e6, (5.0, 50.0), axis="R_D", repetition=True, neutral=1e6) for p in pools]
        specs += [ParamSpec(pooled("q", p), "log", 1e-4, 1e4, (1.0,), axis="q") for p in pools[1:]]
        return specs

    def param_specs(self, pools: Sequence[str], obs: Observations | None = None) -> list[ParamSpec]:
        return self.base_specs(pools, obs)

    def _unpack(self, theta: np.ndarray, n_pools: int) -> tuple:
        E, A, B, alpha = (theta[:, j : j + 1] for j in range(4))
        j = 4
        if self.options["tie_exponents"]:
            beta = alpha
        else:
            beta, j = theta[:, 4:5], 5
        r_n = theta[:, j : j + 1]
        r_d = theta[:, j + 1 : j + 1 + n_pools]
        q = np.concatenate([np.ones((theta.shape[0], 1)), theta[:, j + 1 + n_pools : j + 2 * n_pools]], axis=1)
        return E, A, B, alpha, beta, r_n, r_d, q, j + 2 * n_pools

    def terms(self, theta: np.ndarray, data: LawData) -> dict[str, np.ndarray]:
        """Effective data and parameters, (m, n) each; shared with laws built on this one."""
        theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        E, A, B, alpha, beta, r_n, r_d, q, used = self._unpack(theta, data.weights.shape[1])
        w, N = data.weights, data.params
        seen_i = w * data.seen[:, None]  # (n, P)
        active = w > 0
        u_used = np.minimum(seen_i, data.unique)
        reps = np.where(active, seen_i / np.where(active, u_used, 1.0) - 1.0, 0.0)  # repetitions R_i >= 0
        gain = 1.0 + r_d[:, None, :] * -np.expm1(-reps[None] / r_d[:, None, :])  # (m, n, P)
        d_eff = np.einsum("mnp,np,mp->mn", gain, u_used, q)
        u_eff = q @ u_used.T  # (m, n)
        G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
        u_n = np.minimum(N, G * (G * u_eff) ** (beta / alpha))
        r_params = np.maximum(N / u_n - 1.0, 0.0)
        n_eff = u_n * (1.0 + r_n * -np.expm1(-r_params / r_n))
        loss = E + A / n_eff**alpha + B / d_eff**beta
        return {"loss": loss, "d_eff": d_eff, "n_eff": n_eff, "u_n": u_n, "reps": reps, "used": used}

    def predict_batch(self, theta: np.ndarray, data: LawData) -> np.ndarray:
        return self.terms(theta, data)["loss"]
