"""Our law: the data-constrained law plus a price for memorising repeated data.

Neither published law lets loss rise with more epochs: Goyal's decayed utility and Muennighoff's
effective data only ever add value. In the datablations runs it does rise, and the rise depends
on two things: how much larger the model is than the unique data can use, and how often the
data was repeated. 421M parameters on 100M unique tokens bottom out near 27 epochs and climb by
2 nats by 320 epochs; 14M parameters on the same data keep improving for 9000 epochs. So

    L = E + A / N'^alpha + B / D'^beta + C (N / U_N)^gamma * sum_i w_i m(R_i)

N / U_N (>= 1) is the excess capacity: the model size over the compute-optimal size for the
unique data (U_N as in Muennighoff). m(R) says how the price grows with the repetitions R_i of
each pool: `penalty="saturating"` (default) uses m = R / (R + R_O), which saturates after about
R_O repetitions once the data is memorised; `penalty="power"` uses m = R^eta, which keeps
growing and extrapolates further from few-epoch pilot runs. The penalty is zero
without repetition, so on single-epoch data the law is exactly the data-constrained law. Loss
turns upward when the penalty grows faster than the effective data helps, which happens sooner
for larger models on smaller pools.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from thresher.mixtures.laws.base import LawData, ParamSpec
from thresher.mixtures.laws.muennighoff import MuennighoffLaw, scale_grids
from thresher.mixtures.observations import Observations

PENALTIES = ("saturating", "power")


class OverfitLaw(MuennighoffLaw):
    name = "overfit"
    needs_params = True
    option_defaults = {"tie_exponents": True, "penalty": "saturating"}

    def _check_options(self) -> None:
        if self.options["penalty"] not in PENALTIES:
            raise ValueError(f"law 'overfit': penalty must be one of {PENALTIES}, got {self.options['penalty']!r}")

    def param_specs(self, pools: Sequence[str], obs: Observations | None = None) -> list[ParamSpec]:
        vmin, _, _ = scale_grids(obs)
        shape = (ParamSpec("R_O", "log", 1e-2, 1e6, (1.0, 10.0, 100.0), axis="R_O", repetition=True)
                 if self.options["penalty"] == "saturating"
                 else ParamSpec("eta", "log", 1e-3, 2.0, (0.5, 1.5), axis="eta", repetition=True))
        return self.base_specs(pools, obs) + [
            ParamSpec("C", "log", 1e-12, 1e6, (1e-4 * vmin, 1e-2 * vmin), axis="C", repetition=True, neutral=1e-12),
            ParamSpec("gamma", "log", 1e-3, 5.0, (0.5, 1.5), axis="gamma", repetition=True),
            shape,
        ]

    def predict_batch(self, theta: np.ndarray, data: LawData) -> np.ndarray:
        theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        t = self.terms(theta, data)
        j = t["used"]
        C, gamma, shape = theta[:, j : j + 1], theta[:, j + 1 : j + 2], theta[:, j + 2 : j + 3]
        excess = np.maximum(data.params / t["u_n"], 1.0)
        reps = t["reps"][None]  # (1, n, P)
        if self.options["penalty"] == "saturating":
            grow = reps / (reps + shape[:, :, None])
        else:
            grow = reps ** shape[:, :, None]
        memorised = np.einsum("np,mnp->mn", data.weights, grow)
        return t["loss"] + C * excess**gamma * memorised
