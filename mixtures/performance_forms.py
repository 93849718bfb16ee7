"""Stage-1 performance forms: metric as a function of mixture weights p (and OT(p)) at one size.

Every form is fitted on rows (p, o, y), where o = OT(p) (ignored by non-OT forms), predicts
y, gives dy/dp for a single p given dOT/dp (when the form is smooth), and round-trips through
a JSON-safe dict. Forms that use the weights directly use the first m-1 coordinates: on the
simplex the last one is implied, and dropping it keeps the least-squares problem identifiable.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import least_squares
from sklearn.ensemble import HistGradientBoostingRegressor


class FeatureRidge:
    """Ridge regression on a fixed feature map phi(p, o): linear_ot, pq_ot, p_linear, p_quadratic.

    Features are standardised and the penalty is alpha * |beta|^2 on the mean squared error,
    so alpha means the same thing whatever the number of rows.
    """

    has_gradient = True

    def __init__(self, form: str, alpha: float = 1e-3) -> None:
        self.form = form
        self.alpha = float(alpha)
        self.coef: np.ndarray | None = None
        self.intercept = 0.0

    # ---- feature maps -------------------------------------------------------------------
    def features(self, p: np.ndarray, o: np.ndarray) -> np.ndarray:
        r = p[:, :-1]
        o = o[:, None]
        if self.form == "linear_ot":
            return o
        if self.form == "pq_ot":
            # projektor's columns: OT, p_i, p_i*OT, p_i^2*OT (i < m); the c2 terms are dropped.
            return np.hstack([o, r, o * r, o * r**2])
        if self.form == "p_linear":
            return r
        if self.form == "p_quadratic":
            iu = np.triu_indices(r.shape[1])
            return np.hstack([r, (r[:, :, None] * r[:, None, :])[:, iu[0], iu[1]]])
        raise ValueError(f"unknown feature form {self.form!r}")

    def jacobian(self, p: np.ndarray, o: float) -> tuple[np.ndarray, np.ndarray]:
        """d features / d p (q, m) and d features / d OT (q,) at one mixture."""
        m = p.size
        r = p[:-1]
        k = m - 1
        eye = np.eye(k, m)
        if self.form == "linear_ot":
            return np.zeros((1, m)), np.ones(1)
        if self.form == "pq_ot":
            dp = np.vstack([np.zeros((1, m)), eye, o * eye, 2 * o * r[:, None] * eye])
            do = np.concatenate([[1.0], np.zeros(k), r, r**2])
            return dp, do
        if self.form == "p_linear":
            return eye, np.zeros(k)
        if self.form == "p_quadratic":
            iu, ju = np.triu_indices(k)
            quad = r[ju][:, None] * eye[iu] + r[iu][:, None] * eye[ju]
            return np.vstack([eye, quad]), np.zeros(k + iu.size)
        raise ValueError(f"unknown feature form {self.form!r}")

    # ---- estimator ----------------------------------------------------------------------
    def fit(self, p: np.ndarray, o: np.ndarray, y: np.ndarray) -> FeatureRidge:
        x = self.features(p, o)
        mu = x.mean(axis=0)
        sd = x.std(axis=0)
        sd[sd < 1e-12] = 1.0
        z = (x - mu) / sd
        n = z.shape[0]
        ybar = y.mean()
        beta = np.linalg.solve(z.T @ z / n + self.alpha * np.eye(z.shape[1]), z.T @ (y - ybar) / n)
        self.coef = beta / sd
        self.intercept = float(ybar - mu @ self.coef)
        return self

    def predict(self, p: np.ndarray, o: np.ndarray) -> np.ndarray:
        return self.features(p, o) @ self.coef + self.intercept

    def gradient(self, p: np.ndarray, o: float, ot_grad: np.ndarray) -> np.ndarray:
        dp, do = self.jacobian(p, o)
        return self.coef @ dp + (self.coef @ do) * ot_grad

    def to_dict(self) -> dict[str, Any]:
        return {"coef": self.coef.tolist(), "intercept": self.intercept, "alpha": self.alpha}

    @classmethod
    def from_dict(cls, form: str, d: dict[str, Any]) -> FeatureRidge:
        obj = cls(form, d.get("alpha", 1e-3))
        obj.coef = np.asarray(d["coef"], dtype=np.float64)
        obj.intercept = float(d["intercept"])
        return obj


class MixingLaw:
    """Data Mixing Laws: y = c + sign * exp(kappa + sum_j t_j p_j) (Ye et al. 2024).

    With `log_terms`, also + sum_j s_j log(p_j + delta) in the exponent: the loss then
    behaves like a power of each domain's share near zero, which the published form cannot
    bend to. delta is picked by 5-fold cross-validation on the training rows.
    """

    has_gradient = True
    DELTAS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)

    def __init__(self, log_terms: bool = False, ridge: float = 1e-4, delta: float | None = None) -> None:
        self.log_terms = bool(log_terms)
        self.ridge = float(ridge)
        self.delta = delta
        self.sign = 1.0
        self.theta: np.ndarray | None = None

    def _design(self, p: np.ndarray, delta: float) -> np.ndarray:
        cols = [p[:, :-1]]
        if self.log_terms:
            cols.append(np.log(p + delta))
        return np.hstack(cols)

    def _solve(self, x: np.ndarray, y: np.ndarray, sign: float, start: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        spread = max(float(np.ptp(y)), 1e-6)
        c0 = float(y.min() - spread) if sign > 0 else float(y.max() + spread)
        theta0 = np.zeros(2 + x.shape[1]) if start is None else start.copy()
        if start is None:
            theta0[0] = c0
            theta0[1] = np.log(max(abs(float(np.mean(y)) - c0), 1e-9))
        lam = np.sqrt(self.ridge)

        def resid(th: np.ndarray) -> np.ndarray:
            e = np.exp(np.clip(th[1] + x @ th[2:], -700, 700))
            return np.concatenate([th[0] + sign * e - y, lam * th[2:]])

        def jac(th: np.ndarray) -> np.ndarray:
            e = np.exp(np.clip(th[1] + x @ th[2:], -700, 700))
            top = np.hstack([np.ones((x.shape[0], 1)), (sign * e)[:, None], (sign * e)[:, None] * x])
            bottom = np.hstack([np.zeros((x.shape[1], 2)), lam * np.eye(x.shape[1])])
            return np.vstack([top, bottom])

        res = least_squares(resid, theta0, jac=jac, x_scale="jac", max_nfev=2000)
        return res.x, float(np.mean(res.fun[: x.shape[0]] ** 2))

    def fit(self, p: np.ndarray, o: np.ndarray, y: np.ndarray, *, choose: bool = True) -> MixingLaw:
        if choose or self.delta is None:
            delta = self.DELTAS[2] if self.delta is None else self.delta
            x = self._design(p, delta)
            fits = {s: self._solve(x, y, s) for s in (1.0, -1.0)}
            self.sign = min(fits, key=lambda s: fits[s][1])
            if self.log_terms and choose:
                self.delta = self._cv_delta(p, y)
            else:
                self.delta = delta
        self.theta, _ = self._solve(self._design(p, self.delta), y, self.sign)
        return self

    def _cv_delta(self, p: np.ndarray, y: np.ndarray, folds: int = 5) -> float:
        rng = np.random.default_rng(0)
        fold = rng.permutation(np.arange(p.shape[0]) % folds)
        best, best_err = self.DELTAS[0], np.inf
        for delta in self.DELTAS:
            x = self._design(p, delta)
            err = 0.0
            for k in range(folds):
                tr, va = fold != k, fold == k
                th, _ = self._solve(x[tr], y[tr], self.sign)
                pred = th[0] + self.sign * np.exp(np.clip(th[1] + x[va] @ th[2:], -700, 700))
                err += float(np.sum((pred - y[va]) ** 2))
            if err < best_err:
                best, best_err = delta, err
        return float(best)

    def predict(self, p: np.ndarray, o: np.ndarray) -> np.ndarray:
        x = self._design(p, self.delta)
        return self.theta[0] + self.sign * np.exp(np.clip(self.theta[1] + x @ self.theta[2:], -700, 700))

    def gradient(self, p: np.ndarray, o: float, ot_grad: np.ndarray) -> np.ndarray:
        m = p.size
        t = self.theta[2 : 2 + m - 1]
        e = float(self.predict(p[None, :], np.zeros(1))[0] - self.theta[0])
        g = np.concatenate([t, [0.0]])
        if self.log_terms:
            g = g + self.theta[2 + m - 1 :] / (p + self.delta)
        return e * g

    def to_dict(self) -> dict[str, Any]:
        return {"theta": self.theta.tolist(), "sign": self.sign, "delta": self.delta, "ridge": self.ridge}

    @classmethod
    def from_dict(cls, log_terms: bool, d: dict[str, Any]) -> MixingLaw:
        obj = cls(log_terms, d.get("ridge", 1e-4), d.get("delta"))
        obj.theta = np.asarray(d["theta"], dtype=np.float64)
        obj.sign = float(d["sign"])
        return obj


class BoostedTrees:
    """RegMix-style gradient boosting on the weights (scikit-learn HistGradientBoosting).

    Not smooth, so no gradient: the optimiser searches sampled mixtures instead. It is
    saved as its hyperparameters plus the training rows and refitted on load
    (deterministic for a fixed random_state), never pickled.
    """

    has_gradient = False
    DEFAULTS = {"learning_rate": 0.1, "max_iter": 100, "max_leaf_nodes": 31, "min_samples_leaf": 20}

    def __init__(self, seed: int = 0, params: dict[str, Any] | None = None) -> None:
        self.seed = int(seed)
        self.params = {**self.DEFAULTS, **(params or {})}
        self.model: HistGradientBoostingRegressor | None = None
        self._train: tuple[np.ndarray, np.ndarray] | None = None

    def fit(self, p: np.ndarray, o: np.ndarray, y: np.ndarray) -> BoostedTrees:
        self.model = HistGradientBoostingRegressor(random_state=self.seed, early_stopping=False, **self.params)
        self.model.fit(p, y)
        self._train = (p.copy(), y.copy())
        return self

    def predict(self, p: np.ndarray, o: np.ndarray) -> np.ndarray:
        return self.model.predict(p)

    def gradient(self, p: np.ndarray, o: float, ot_grad: np.ndarray) -> np.ndarray:
        raise ValueError("the gbm form is piecewise constant and has no gradient")

    def to_dict(self) -> dict[str, Any]:
        p, y = self._train
        return {"seed": self.seed, "params": self.params, "train_weights": p.tolist(), "train_values": y.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BoostedTrees:
        obj = cls(d["seed"], d["params"])
        return obj.fit(np.asarray(d["train_weights"], float), np.zeros(0), np.asarray(d["train_values"], float))


OT_FORMS = ("linear_ot", "pq_ot")
FORMS = ("linear_ot", "pq_ot", "p_linear", "p_quadratic", "mixing_law", "mixing_law_log", "gbm")


def make_form(form: str, *, alpha: float = 1e-3, seed: int = 0, gbm_params: dict | None = None):
    """A fresh, unfitted stage-1 estimator for `form`."""
    if form in ("linear_ot", "pq_ot", "p_linear", "p_quadratic"):
        return FeatureRidge(form, alpha)
    if form == "mixing_law":
        return MixingLaw(log_terms=False)
    if form == "mixing_law_log":
        return MixingLaw(log_terms=True)
    if form == "gbm":
        return BoostedTrees(seed, gbm_params)
    raise ValueError(f"unknown form {form!r}; choose from {FORMS}")


def form_from_dict(form: str, d: dict[str, Any]):
    if form in ("linear_ot", "pq_ot", "p_linear", "p_quadratic"):
        return FeatureRidge.from_dict(form, d)
    if form in ("mixing_law", "mixing_law_log"):
        return MixingLaw.from_dict(form == "mixing_law_log", d)
    if form == "gbm":
        return BoostedTrees.from_dict(d)
    raise ValueError(f"unknown form {form!r}; choose from {FORMS}")


def refit_like(est, p: np.ndarray, o: np.ndarray, y: np.ndarray):
    """Refit an estimator of the same kind and settings on new rows (bootstrap replicates)."""
    if isinstance(est, FeatureRidge):
        return FeatureRidge(est.form, est.alpha).fit(p, o, y)
    if isinstance(est, MixingLaw):
        new = MixingLaw(est.log_terms, est.ridge, est.delta)
        new.sign = est.sign
        new.theta = None
        new.theta, _ = new._solve(new._design(p, new.delta), y, new.sign, start=est.theta)
        return new
    if isinstance(est, BoostedTrees):
        return BoostedTrees(est.seed, est.params).fit(p, o, y)
    raise TypeError(type(est))
