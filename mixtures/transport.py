"""OT distance between a weighted mixture of fixed pool samples and a target set, with its gradient.

A mixture p puts mass p_k * w_j on sample j of pool k (w sums to one within a pool). The
samples never change, so OT(p) is a deterministic, smooth (Sinkhorn) or piecewise-linear
(exact, sliced) function of p, and dOT/dp_k is the pool's weighted mean of the source dual
potential (envelope theorem). Resampling D(N, p) as projektor does would make the value
noisy and the gradient a heuristic; weighting fixed samples keeps both exact.

Solvers:
- ``"sinkhorn"`` (default): the debiased Sinkhorn divergence
  S(a, b) = OT_eps(a, b) - OT_eps(a, a)/2 - OT_eps(b, b)/2, eps = reg * mean cost.
  Exact gradient; up to ~10k points in total on a laptop.
- ``"exact"``: network-simplex EMD; gradients are subgradients; up to ~4k points per side.
- ``"sliced"``: mean 1-D W2^2 over fixed random directions; tens of thousands of points.
Pools (and the target) above ``max_per_pool`` points are replaced by weighted k-means coresets.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import ot

from thresher.mixtures import transport_solvers as solvers
from thresher.mixtures.coresets import kmeans_coreset
from thresher.mixtures.embedding_sets import EmbeddingSet, as_set, bures_wasserstein_matrix, gaussian_moments

SOLVERS = ("sinkhorn", "exact", "sliced")
LABEL_COSTS = ("gaussian", "onehot", None)


def _check_inputs(pools: Sequence[EmbeddingSet | np.ndarray] | Mapping[str, EmbeddingSet | np.ndarray],
                  target: EmbeddingSet | np.ndarray, solver: str, reg: float, label_cost: str | None,
                  max_per_pool: int, max_target: int | None) -> tuple[list[EmbeddingSet], EmbeddingSet, bool, int]:
    """The pool sets and the target, whether labels are used, and the shared dimension; errors say what clashes."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if label_cost not in LABEL_COSTS:
        raise ValueError(f"label_cost must be one of {LABEL_COSTS}, got {label_cost!r}")
    if not reg > 0:
        raise ValueError(f"reg must be positive, got {reg}")
    if max_per_pool < 1 or (max_target is not None and max_target < 1):
        raise ValueError("max_per_pool and max_target must be at least 1")
    if isinstance(pools, Mapping):
        sets = [as_set(v, str(k)) for k, v in pools.items()]
    else:
        sets = [as_set(v, f"pool{k}") for k, v in enumerate(pools)]
    if not sets:
        raise ValueError("need at least one pool")
    tgt = as_set(target, "target")
    dims = {s.x.shape[1] for s in sets} | {tgt.x.shape[1]}
    if len(dims) != 1:
        raise ValueError(f"pools and target must share one embedding dimension, got {sorted(dims)}")
    with_labels = [s.labels is not None for s in sets] + [tgt.labels is not None]
    use_labels = label_cost is not None and any(with_labels)
    if use_labels and not all(with_labels):
        missing = [s.name for s, h in zip(sets + [tgt], with_labels) if not h]
        raise ValueError(f"labels given for some sets but not for {missing}; give all or set label_cost=None")
    if use_labels and solver == "sliced" and label_cost == "gaussian":
        raise ValueError("the sliced solver supports label_cost='onehot' or None, not 'gaussian'")
    return sets, tgt, use_labels, dims.pop()


class MixtureOT:
    """OT between a mixture of pools and a target, as a function of the mixture weights p.

    Parameters
    ----------
    pools: one `EmbeddingSet` (or (n, d) array) per pool, or a mapping name -> set.
    target: the target / validation samples.
    solver: "sinkhorn" (debiased divergence, default), "exact" or "sliced".
    reg: entropic regularisation relative to the mean pool-target cost (eps = reg * mean cost).
    label_cost: with labels, "gaussian" (OTDD: Bures-Wasserstein between class-conditional
        Gaussians per pool and class) or "onehot" (label_weight * mean feature cost when
        labels differ); None ignores labels.
    label_weight: weight of the label term relative to the feature term.
    max_per_pool: pools (and the target, unless `max_target` is set) above this many points are
        summarised by weighted k-means coresets.
    debias: subtract the self-transport terms (Sinkhorn divergence); only for "sinkhorn".
    """

    def __init__(
        self,
        pools: Sequence[EmbeddingSet | np.ndarray] | Mapping[str, EmbeddingSet | np.ndarray],
        target: EmbeddingSet | np.ndarray,
        *,
        solver: str = "sinkhorn",
        reg: float = 0.05,
        label_cost: str | None = "gaussian",
        label_weight: float = 1.0,
        diagonal_cov: bool | None = None,
        max_per_pool: int = 1000,
        max_target: int | None = None,
        debias: bool = True,
        n_projections: int = 200,
        tol: float = 1e-9,
        max_iter: int = 10000,
        seed: int = 0,
    ) -> None:
        sets, tgt, use_labels, dim = _check_inputs(pools, target, solver, reg, label_cost, max_per_pool, max_target)
        self.solver = solver
        self.reg = float(reg)
        self.label_cost = label_cost if use_labels else None
        self.label_weight = float(label_weight)
        self.debias = bool(debias)
        self.tol, self.max_iter, self.seed = float(tol), int(max_iter), int(seed)
        self.pool_names = [s.name for s in sets]
        self.pool_sizes = np.array([s.size for s in sets])
        diagonal = dim > 64 if diagonal_cov is None else bool(diagonal_cov)

        # Label-group Gaussians come from the full samples, before any coreset.
        group_keys: list[tuple[int, object]] = []
        moments = []
        if self.label_cost == "gaussian":
            for k, s in enumerate(sets + [tgt]):
                for lab in np.unique(s.labels):
                    mask = s.labels == lab
                    group_keys.append((k, lab))
                    moments.append(gaussian_moments(s.x[mask], s.weights[mask], diagonal=diagonal))

        cap_t = max_per_pool if max_target is None else max_target
        reduced = [kmeans_coreset(s.x, max_per_pool, weights=s.weights, labels=s.labels, seed=seed) for s in sets]
        tx, tw, tl = kmeans_coreset(tgt.x, cap_t, weights=tgt.weights, labels=tgt.labels, seed=seed)
        self._pool_index = np.concatenate([np.full(r[0].shape[0], k) for k, r in enumerate(reduced)])
        self._w = np.concatenate([r[1] / r[1].sum() for r in reduced])
        xs = np.vstack([r[0] for r in reduced])
        self._b = tw / tw.sum()
        self.n_points = (xs.shape[0], tx.shape[0])
        self.mean_feature_cost = self._mean_feature_cost(xs, tx, len(sets))

        if self.label_cost == "onehot":
            classes = np.unique(np.concatenate([np.asarray(r[2]) for r in reduced] + [np.asarray(tl)]))
            s = np.sqrt(self.label_weight * self.mean_feature_cost / 2.0)
            xs = np.hstack([xs, s * (np.concatenate([r[2] for r in reduced])[:, None] == classes[None, :])])
            tx = np.hstack([tx, s * (np.asarray(tl)[:, None] == classes[None, :])])
        self._xs, self._xt = xs, tx

        src_groups = tgt_groups = None
        self._label_matrix = None
        if self.label_cost == "gaussian":
            lookup = {key: i for i, key in enumerate(group_keys)}
            src_groups = np.concatenate([[lookup[(k, lab)] for lab in r[2]] for k, r in enumerate(reduced)]).astype(int)
            tgt_groups = np.array([lookup[(len(sets), lab)] for lab in tl], dtype=int)
            self._label_matrix = self.label_weight * bures_wasserstein_matrix(
                np.stack([m for m, _ in moments]), np.stack([c for _, c in moments])
            )
        self._costs(xs, src_groups, tx, tgt_groups)
        self._directions = (
            solvers.random_directions(n_projections, xs.shape[1], seed) if solver == "sliced" else None
        )
        self._cache: OrderedDict[bytes, tuple[float, np.ndarray]] = OrderedDict()

    def _mean_feature_cost(self, xs: np.ndarray, tx: np.ndarray, n_sets: int) -> float:
        """Mean feature cost between the pools (uniform mixture) and the target, in closed form."""
        w, idx = self._w, self._pool_index
        xbar = np.mean([w[idx == k] @ xs[idx == k] for k in range(n_sets)], axis=0)
        msq_x = np.mean([w[idx == k] @ (xs[idx == k] ** 2).sum(1) for k in range(n_sets)])
        return float(msq_x + self._b @ (tx**2).sum(1) - 2 * xbar @ (self._b @ tx))

    def _cost(self, x1: np.ndarray, g1: np.ndarray | None, x2: np.ndarray, g2: np.ndarray | None) -> np.ndarray:
        c = ot.dist(x1, x2, metric="sqeuclidean")
        if self._label_matrix is not None:
            c += self._label_matrix[np.ix_(g1, g2)]
        return np.maximum(c, 0.0)

    def _costs(self, xs: np.ndarray, src_groups: np.ndarray | None, tx: np.ndarray, tgt_groups: np.ndarray | None) -> None:
        """Cost matrices the solver needs, the entropic scale, and the target's self-transport term."""
        self._c_st = self._c_ss = None
        if self.solver in ("sinkhorn", "exact"):
            self._c_st = self._cost(xs, src_groups, tx, tgt_groups)
        self.epsilon = self.reg * float(self._c_st.mean()) if self._c_st is not None else float("nan")
        self._ot_tt = 0.0
        if self.solver == "sinkhorn" and self.debias:
            self._c_ss = self._cost(xs, src_groups, xs, src_groups)
            np.fill_diagonal(self._c_ss, 0.0)
            c_tt = self._cost(tx, tgt_groups, tx, tgt_groups)
            np.fill_diagonal(c_tt, 0.0)
            self._ot_tt = solvers.sinkhorn_symmetric(c_tt, self._b, self.epsilon, tol=self.tol, max_iter=self.max_iter).value

    @property
    def n_pools(self) -> int:
        return len(self.pool_names)

    def _check(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64).ravel()
        if p.shape != (self.n_pools,):
            raise ValueError(f"mixture has {p.size} weights; this MixtureOT has {self.n_pools} pools {self.pool_names}")
        if not np.all(np.isfinite(p)) or (p < -1e-12).any():
            raise ValueError(f"mixture weights must be finite and nonnegative, got {p}")
        if abs(p.sum() - 1.0) > 1e-6:
            raise ValueError(f"mixture weights must sum to 1, got {p.sum():.8f}")
        return np.clip(p, 0.0, None) / np.clip(p, 0.0, None).sum()

    def _solve(self, p: np.ndarray) -> tuple[float, np.ndarray]:
        key = p.tobytes()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        a = p[self._pool_index] * self._w
        if self.solver == "sinkhorn":
            ab = solvers.sinkhorn(self._c_st, a, self._b, self.epsilon, tol=self.tol, max_iter=self.max_iter)
            value, point_grad = ab.value, ab.f
            if self.debias:
                aa = solvers.sinkhorn_symmetric(self._c_ss, a, self.epsilon, tol=self.tol, max_iter=self.max_iter)
                value = ab.value - 0.5 * aa.value - 0.5 * self._ot_tt
                point_grad = ab.f - aa.f
        elif self.solver == "exact":
            sol = solvers.exact(self._c_st, a, self._b)
            value, point_grad = sol.value, sol.f
        else:
            sol = solvers.sliced(self._xs, a, self._xt, self._b, self._directions)
            value, point_grad = sol.value, sol.f
        grad = np.bincount(self._pool_index, weights=self._w * point_grad, minlength=self.n_pools)
        grad = grad - grad.mean()
        out = (float(value), grad)
        self._cache[key] = out
        if len(self._cache) > 256:
            self._cache.popitem(last=False)
        return out

    def value(self, p: np.ndarray) -> float:
        """OT between mixture p and the target (deterministic: same p, same number)."""
        return self._solve(self._check(p))[0]

    def grad(self, p: np.ndarray) -> np.ndarray:
        """dOT/dp projected on the simplex tangent (components sum to zero).

        Potentials are defined up to a constant, so only directions d with sum(d) = 0 are
        meaningful: OT(p + h d) ~ OT(p) + h * grad(p) @ d.
        """
        return self._solve(self._check(p))[1].copy()

    def value_and_grad(self, p: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = self._solve(self._check(p))
        return value, grad.copy()

    def values(self, weights: np.ndarray) -> np.ndarray:
        """OT for each row of an (n, pools) weight matrix."""
        w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        return np.array([self.value(row) for row in w])

    def vertex_values(self) -> np.ndarray:
        """OT of each pool alone against the target."""
        return self.values(np.eye(self.n_pools))

    def config(self) -> dict:
        """Settings to rebuild an equivalent MixtureOT (saved with a performance model)."""
        return {
            "solver": self.solver,
            "reg": self.reg,
            "label_cost": self.label_cost,
            "label_weight": self.label_weight,
            "debias": self.debias,
            "seed": self.seed,
            "pool_names": list(self.pool_names),
            "n_points": list(self.n_points),
            "epsilon": self.epsilon,
        }


@dataclass
class LabelWeightChoice:
    """The label weight picked from pilot runs, each candidate's score and OT values, and its OT function."""

    label_weight: float
    scores: dict[float, float]
    ot: MixtureOT
    values: dict[float, np.ndarray]


def _loo_linear_error(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    """Mean absolute leave-one-out error of y ~ a_g + b_g x fitted within each group."""
    errs = []
    for g in np.unique(groups):
        xs, ys = x[groups == g], y[groups == g]
        n = xs.size
        if n < 4:
            raise ValueError(f"pilot size group {g} has {n} runs; need at least 4 to score a label weight")
        xc = xs - xs.mean()
        sxx = float(xc @ xc)
        if sxx <= 0:
            errs.append(np.abs(ys - ys.mean()) * n / (n - 1))
            continue
        b = float(xc @ (ys - ys.mean())) / sxx
        resid = ys - ys.mean() - b * xc
        hat = 1.0 / n + xc**2 / sxx
        errs.append(np.abs(resid / (1.0 - hat)))
    return float(np.mean(np.concatenate(errs)))


def select_label_weight(
    pools: Sequence[EmbeddingSet | np.ndarray] | Mapping[str, EmbeddingSet | np.ndarray],
    target: EmbeddingSet | np.ndarray,
    weights: np.ndarray,
    values: np.ndarray,
    *,
    sizes: np.ndarray | None = None,
    candidates: Sequence[float] = (0.25, 1.0, 4.0, 16.0, 64.0),
    **ot_options,
) -> LabelWeightChoice:
    """Pick the label weight whose OT best predicts the pilot metric (leave-one-out, linear in OT).

    How much a label mismatch should cost relative to a feature distance depends on the
    task and the model, so it is chosen on the pilot runs themselves: for each candidate,
    a line metric = a + b * OT is fitted within each pilot size and scored by its mean
    absolute leave-one-out error. Only pilot data enter; the candidate with the smallest
    error wins (ties go to the smaller weight).
    """
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    y = np.asarray(values, dtype=np.float64).ravel()
    if y.shape != (w.shape[0],) or not np.all(np.isfinite(y)):
        raise ValueError(f"need one finite metric value per pilot run: {w.shape[0]} runs, {y.size} values")
    groups = np.zeros(y.size, dtype=int) if sizes is None else np.unique(np.asarray(sizes).ravel(), return_inverse=True)[1]
    if groups.shape != y.shape:
        raise ValueError(f"need one size per pilot run: {y.size} runs, {groups.size} sizes")
    cands = sorted({float(c) for c in candidates})
    if not cands or cands[0] <= 0:
        raise ValueError(f"label weight candidates must be positive, got {list(candidates)}")
    ot_options = {"label_cost": "onehot", **ot_options}
    scores: dict[float, float] = {}
    fns: dict[float, MixtureOT] = {}
    ot_values: dict[float, np.ndarray] = {}
    for c in cands:
        fn = MixtureOT(pools, target, label_weight=c, **ot_options)
        if fn.label_cost is None:
            raise ValueError("select_label_weight needs labels on every pool and the target")
        ot_values[c] = fn.values(w / w.sum(axis=1, keepdims=True))
        scores[c] = _loo_linear_error(ot_values[c], y, groups)
        fns[c] = fn
    best = min(cands, key=lambda c: (scores[c], c))
    return LabelWeightChoice(best, scores, fns[best], ot_values)
