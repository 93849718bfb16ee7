"""Performance models: predict a metric from mixture weights (and OT) at any training size.

Two stages, as in projektor (Kang et al., NeurIPS 2023):

1. At each pilot size N_s a stage-1 form L_s(p) is fitted (see `performance_forms`):
   ``linear_ot`` (a + b OT(p)), ``pq_ot`` (projektor's pseudo-quadratic OT form),
   ``p_linear``, ``p_quadratic``, ``mixing_law`` (Data Mixing Laws' exponential form),
   ``mixing_law_log`` (the same with log-share terms) or ``gbm`` (RegMix's regressor).
2. Size: every prediction is a fixed linear combination of the stage-1 models,
   ``L(N, p) = sum_s c_s(N) L_s(p)``. With two sizes ``log`` is projektor's projection,
   linear in log N; with three or more ``power`` fits E(p) + A(p) N^-alpha with one alpha
   shared by all mixtures (fitted on the pilot data), which is still linear in the L_s.
   A ``size_prior`` on alpha from earlier, longer sweeps steadies it (`size_laws`).

Intervals are percentile bootstrap intervals of the mean prediction: the rows at each size
are resampled, every stage-1 form refitted and, under ``power``, the size exponent refitted
too. Far from the pilots the exponent is the largest source of error, so an interval that held
it fixed would be too narrow exactly where it matters. Give one row per training seed and the
resampling covers seed noise as well. Such an interval is about the fitted mean surface; with
``kind="mixture"`` each replicate also adds one pilot mixture's out-of-fold residual at the
largest pilot size (seeds averaged; the form refitted without that mixture), so the interval
covers how far an unseen mixture can sit off the form.
Models save to JSON (never pickle).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from thresher.mixtures import performance_file
from thresher.mixtures.mixture_observations import MixtureObservations
from thresher.mixtures.observations import Observations
from thresher.mixtures.performance_bootstrap import bootstrap, min_rows, mixture_misfit, size_table
from thresher.mixtures.performance_forms import FORMS, OT_FORMS, make_form
from thresher.mixtures.size_laws import check_prior, fit_size_exponent, size_weights

FORMAT = performance_file.FORMAT
SIZE_LAWS = ("auto", "log", "power", "none")
INTERVAL_KINDS = ("mean", "mixture")
GOALS = ("min", "max")


class OTFunction(Protocol):
    """What the OT forms need: `MixtureOT` satisfies it."""

    def value(self, p: np.ndarray) -> float: ...

    def value_and_grad(self, p: np.ndarray) -> tuple[float, np.ndarray]: ...


def _fit_inputs(obs: Observations | MixtureObservations | np.ndarray, y: np.ndarray | str | None,
                sizes: np.ndarray | None, pools: list[str] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                                                           list[str] | None]:
    """(weights, values, sizes, pools) from what `PerformanceModel.fit` was given."""
    if isinstance(obs, Observations):
        obs = MixtureObservations.from_observations(obs, y if isinstance(y, str) else None)
    if isinstance(obs, MixtureObservations):
        values = y if isinstance(y, np.ndarray) else obs.value(y)
        return obs.weights, values, obs.sizes if sizes is None else sizes, list(obs.pools)
    if y is None or isinstance(y, str):
        raise ValueError("fit(weights, y): y must be an array of values")
    return obs, y, sizes, pools


class PerformanceModel:
    """Metric(p, N) fitted on pilot observations; scikit-learn-like (`fit`, `predict`).

    Parameters
    ----------
    form: one of FORMS (see the module docstring).
    ot: an OT function of the weights (e.g. `MixtureOT`), required by the OT forms.
    size_law: "auto" (log for two pilot sizes, power for three or more, or for two with a
        size prior), "log", "power", or "none" (a single size; predictions ignore N).
    size_prior: (mean, sd) of the power-law exponent, measured on earlier sweeps of the same
        proxy family that reached larger sizes (`thresher.mixtures.size_laws.size_exponent_prior`).
        The exponent is then estimated from the means of the mixtures observed at every
        pilot size, weighed against the prior; bootstrap replicates also draw the prior's
        mean, so intervals carry its width.
    goal: "min" for losses, "max" for accuracies; used by the optimiser.
    alpha: ridge strength of the linear forms (on standardised features).
    n_boot: bootstrap replicates for intervals (0 disables intervals).
    """

    def __init__(
        self,
        form: str = "linear_ot",
        *,
        ot: OTFunction | None = None,
        size_law: str = "auto",
        size_prior: tuple[float, float] | None = None,
        goal: str = "min",
        alpha: float = 1e-3,
        n_boot: int = 100,
        seed: int = 0,
        gbm_params: dict | None = None,
    ) -> None:
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {form!r}")
        if size_law not in SIZE_LAWS:
            raise ValueError(f"size_law must be one of {SIZE_LAWS}, got {size_law!r}")
        if goal not in GOALS:
            raise ValueError(f"goal must be 'min' or 'max', got {goal!r}")
        if alpha < 0 or n_boot < 0:
            raise ValueError("alpha and n_boot must be nonnegative")
        self.form = form
        self.ot = ot
        self.size_law = size_law
        self.size_prior = check_prior(size_prior)
        if self.size_prior is not None and size_law in ("log", "none"):
            raise ValueError(f"a size prior is for the power law; size_law is {size_law!r}")
        self.goal = goal
        self.alpha = float(alpha)
        self.n_boot = int(n_boot)
        self.seed = int(seed)
        self.gbm_params = gbm_params
        self.pools: list[str] = []
        self.sizes_: np.ndarray = np.zeros(0)
        self.size_alpha_: float = float("nan")
        self.law_: str = "none"
        self.stage1_: list = []
        self.boot_: list[list] | None = None
        self.boot_alpha_: list[float] = []
        self.misfit_: np.ndarray = np.zeros(0)
        self.residual_sd_: float = float("nan")
        self.ot_config: dict | None = None
        self._train: dict[str, np.ndarray] | None = None

    # ---- helpers ---------------------------------------------------------------------
    @property
    def uses_ot(self) -> bool:
        return self.form in OT_FORMS

    @property
    def has_gradient(self) -> bool:
        return self.form != "gbm"

    @property
    def n_pools(self) -> int:
        return len(self.pools)

    def _ot_values(self, p: np.ndarray, ot_values: np.ndarray | None) -> np.ndarray:
        if not self.uses_ot:
            return np.zeros(p.shape[0])
        if ot_values is not None:
            o = np.asarray(ot_values, dtype=np.float64).ravel()
            if o.shape != (p.shape[0],):
                raise ValueError(f"{o.size} OT values for {p.shape[0]} mixtures")
            return o
        if self.ot is None:
            raise ValueError(f"form {self.form!r} needs OT values: pass ot= (a MixtureOT) or ot_values=")
        uniq, inv = np.unique(np.round(p, 12), axis=0, return_inverse=True)
        vals = np.array([self.ot.value(row / row.sum()) for row in uniq])
        return vals[inv.ravel()]

    def _check_weights(self, p: np.ndarray) -> np.ndarray:
        p = np.atleast_2d(np.asarray(p, dtype=np.float64))
        if self.pools and p.shape[1] != self.n_pools:
            raise ValueError(f"mixtures have {p.shape[1]} weights; the model has {self.n_pools} pools {self.pools}")
        if not np.all(np.isfinite(p)) or (p < -1e-9).any():
            raise ValueError("mixture weights must be finite and nonnegative")
        s = p.sum(axis=1)
        bad = np.flatnonzero(np.abs(s - 1.0) > 1e-3)
        if bad.size:
            raise ValueError(f"mixture row {bad[0]} sums to {s[bad[0]]:.6g}, expected 1")
        return np.clip(p, 0.0, None) / np.clip(p, 0.0, None).sum(axis=1, keepdims=True)

    def _coefficients(self, n: np.ndarray | float | None, count: int, size_alpha: float | None = None) -> np.ndarray:
        """(count, S) weights on the stage-1 models for the requested sizes."""
        S = len(self.stage1_)
        if S == 1:
            if n is not None:
                nn = np.broadcast_to(np.asarray(n, dtype=np.float64), (count,))
                if self.sizes_.size and not np.allclose(nn, self.sizes_[0]):
                    raise ValueError(
                        f"the model was fitted at one size ({self.sizes_[0]:g}); fit at two or more pilot sizes to extrapolate"
                    )
            return np.ones((count, 1))
        if n is None:
            raise ValueError(f"the model was fitted at sizes {self.sizes_.tolist()}; give the training size n")
        nn = np.broadcast_to(np.asarray(n, dtype=np.float64), (count,))
        if (nn <= 0).any():
            raise ValueError("training size n must be positive")
        return size_weights(self.sizes_, nn, self.law_, self.size_alpha_ if size_alpha is None else size_alpha)

    # ---- fitting ---------------------------------------------------------------------
    def fit(
        self,
        obs: Observations | MixtureObservations | np.ndarray,
        y: np.ndarray | str | None = None,
        *,
        sizes: np.ndarray | None = None,
        ot_values: np.ndarray | None = None,
        pools: list[str] | None = None,
    ) -> PerformanceModel:
        """Fit on observations (`fit(obs, "accuracy")`) or arrays (`fit(weights, y, sizes=...)`).

        obs may be the observation table itself (through its mixer view): the runs a law is fitted
        on feed the mixer too, with `seen` as the training size.
        """
        weights, values, sizes, pools = _fit_inputs(obs, y, sizes, pools)
        p = self._check_weights(weights)
        m = p.shape[1]
        if m < 2:
            raise ValueError("a mixture needs at least two pools")
        self.pools = list(pools) if pools is not None else [f"pool{k}" for k in range(m)]
        if len(self.pools) != m:
            raise ValueError(f"{len(self.pools)} pool names for {m} weight columns")
        yv = np.asarray(values, dtype=np.float64).ravel()
        if yv.shape != (p.shape[0],) or not np.all(np.isfinite(yv)):
            raise ValueError(f"need {p.shape[0]} finite values, got {yv.size}")
        o = self._ot_values(p, ot_values)
        if sizes is None:
            groups = np.zeros(p.shape[0], dtype=int)
            self.sizes_ = np.zeros(0)
        else:
            sz = np.asarray(sizes, dtype=np.float64).ravel()
            if sz.shape != (p.shape[0],) or not np.all(sz > 0):
                raise ValueError("sizes must be one positive number per row")
            self.sizes_, groups = np.unique(sz, return_inverse=True)
        S = max(1, self.sizes_.size)
        law = self._size_law_for(S)
        self.law_ = law
        fewest = min_rows(self.form, m)
        self.stage1_ = []
        for s in range(S):
            rows = groups == s
            if rows.sum() < fewest:
                what = f"size {self.sizes_[s]:g}" if self.sizes_.size else "the data"
                raise ValueError(f"{what} has {int(rows.sum())} rows; form {self.form!r} needs at least {fewest}")
            est = make_form(self.form, alpha=self.alpha, seed=self.seed, gbm_params=self.gbm_params)
            self.stage1_.append(est.fit(p[rows], o[rows], yv[rows]))
        self._train = {"weights": p, "values": yv, "ot": o, "groups": groups}
        if law == "power":
            table = size_table(self, self.stage1_, np.arange(p.shape[0]))
            if self.size_prior is not None and S > 2 and not table.shape[0]:
                raise ValueError(
                    f"a size prior is weighed against the means of mixtures run at every pilot size; no mixture "
                    f"was run at all {S} sizes ({', '.join(f'{s:g}' for s in self.sizes_)})"
                )
            self.size_alpha_ = fit_size_exponent(table, self.sizes_, self.size_prior)
        resid = yv - np.array([self.stage1_[g].predict(p[i : i + 1], o[i : i + 1])[0] for i, g in enumerate(groups)])
        self.residual_sd_ = float(np.sqrt(np.mean(resid**2)))
        self.misfit_ = np.zeros(0)  # computed on the first kind="mixture" interval
        self.boot_, self.boot_alpha_ = None, []
        if self.n_boot and self.form != "gbm":
            self.boot_, self.boot_alpha_ = bootstrap(self, self.n_boot)
        return self

    def _size_law_for(self, S: int) -> str:
        """The size law fitted for S pilot sizes (see `size_law`)."""
        law = self.size_law
        if S == 1:
            law = "none"
        elif law == "auto":
            law = "log" if S == 2 and self.size_prior is None else "power"
        elif law == "none":
            raise ValueError(f"size_law='none' but the observations have {S} sizes")
        elif law == "power" and S < 3 and self.size_prior is None:
            raise ValueError("size_law='power' needs three or more pilot sizes, or a size prior")
        if self.size_prior is not None and S == 1:
            raise ValueError("a size prior needs pilot runs at two or more sizes")
        return law

    # ---- prediction ------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not self.stage1_:
            raise ValueError("the model is not fitted; call fit() first")

    def _combine(self, models: list, p: np.ndarray, o: np.ndarray, coef: np.ndarray) -> np.ndarray:
        table = np.column_stack([est.predict(p, o) for est in models])
        return np.sum(table * coef, axis=1)

    def predict(self, p: np.ndarray, n: float | np.ndarray | None = None, *, ot_values: np.ndarray | None = None) -> np.ndarray:
        """Predicted metric for each mixture row at training size n (one value per row)."""
        self._check_fitted()
        pp = self._check_weights(p)
        o = self._ot_values(pp, ot_values)
        return self._combine(self.stage1_, pp, o, self._coefficients(n, pp.shape[0]))

    def predict_interval(
        self,
        p: np.ndarray,
        n: float | np.ndarray | None = None,
        *,
        level: float = 0.9,
        ot_values: np.ndarray | None = None,
        kind: str = "mean",
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(prediction, lower, upper): percentile bootstrap interval at `level`.

        kind="mean" bounds the fitted surface; kind="mixture" also adds the pilot mixtures'
        own residuals, for the metric of one particular mixture.
        """
        self._check_fitted()
        if not 0 < level < 1:
            raise ValueError("level must be in (0, 1)")
        if kind not in INTERVAL_KINDS:
            raise ValueError(f"kind must be one of {INTERVAL_KINDS}, got {kind!r}")
        pp = self._check_weights(p)
        o = self._ot_values(pp, ot_values)
        coef = self._coefficients(n, pp.shape[0])
        mean = self._combine(self.stage1_, pp, o, coef)
        if self.boot_ is None:
            if self.form == "gbm" and self.n_boot:
                self.boot_, self.boot_alpha_ = bootstrap(self, self.n_boot)
            else:
                return mean, np.full_like(mean, np.nan), np.full_like(mean, np.nan)
        if len(self.boot_alpha_) == len(self.boot_):  # power law: each replicate has its own exponent
            coefs = [self._coefficients(n, pp.shape[0], a) for a in self.boot_alpha_]
        else:
            coefs = [coef] * len(self.boot_)
        reps = np.stack([self._combine(rep, pp, o, c) for rep, c in zip(self.boot_, coefs)])
        if kind == "mixture":
            if not self.misfit_.size:
                self.misfit_ = mixture_misfit(self)
            rng = np.random.default_rng(self.seed + 2)
            reps = reps + self.misfit_[rng.integers(0, self.misfit_.size, size=reps.shape)]
        lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2], axis=0)
        return mean, lo, hi

    def _ot_at(self, p: np.ndarray, caller: str) -> tuple[np.ndarray, float, np.ndarray]:
        """(checked weights, OT value, OT gradient) at one mixture: the one solve both gradient calls need."""
        self._check_fitted()
        if not self.has_gradient:
            raise ValueError("the gbm form has no gradient; optimise it by search")
        pp = self._check_weights(p)
        if pp.shape[0] != 1:
            raise ValueError(f"{caller} takes one mixture")
        row = pp[0]
        if not self.uses_ot:
            return pp, 0.0, np.zeros(row.size)
        if self.ot is None:
            raise ValueError(f"form {self.form!r} needs ot= to compute gradients")
        o, og = self.ot.value_and_grad(row)
        return pp, o, og

    def gradient(self, p: np.ndarray, n: float | None = None) -> np.ndarray:
        """d prediction / d p at one mixture (only directions that sum to zero are meaningful)."""
        pp, o, og = self._ot_at(p, "gradient")
        coef = self._coefficients(n, 1)[0]
        return sum(c * est.gradient(pp[0], o, og) for c, est in zip(coef, self.stage1_))

    def value_and_gradient(self, p: np.ndarray, n: float | None = None) -> tuple[float, np.ndarray]:
        """Prediction and gradient from one OT solve (the optimiser's inner call)."""
        pp, o, og = self._ot_at(p, "value_and_gradient")
        coef = self._coefficients(n, 1)[0]
        value = float(self._combine(self.stage1_, pp, np.array([o]), coef[None, :])[0])
        grad = sum(c * est.gradient(pp[0], o, og) for c, est in zip(coef, self.stage1_))
        return value, grad

    # ---- the model file: JSON, read and written only in `performance_file` -----------------------
    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return performance_file.to_dict(self)

    def to_json(self) -> str:
        return performance_file.to_bytes(self).decode()

    def save(self, path: str | Path) -> Path:
        """Write the model file atomically (JSON; never pickle)."""
        self._check_fitted()
        return performance_file.save(self, path)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, ot: OTFunction | None = None,
                  source: str = "performance model") -> PerformanceModel:
        return performance_file.from_dict(cls, d, ot=ot, source=source)

    @classmethod
    def from_json(cls, text: str | bytes, *, ot: OTFunction | None = None,
                  source: str = "performance model") -> PerformanceModel:
        return performance_file.from_bytes(cls, text, ot=ot, source=source)

    @classmethod
    def load(cls, path: str | Path, *, ot: OTFunction | None = None) -> PerformanceModel:
        return performance_file.load(cls, path, ot=ot)
