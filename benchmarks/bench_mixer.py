"""OT mixer on real data: Fashion-MNIST class-skewed sources, and a replay of RegMix's 1M-model tables.

Part 1 (projektor's experiment, on Fashion-MNIST instead of CIFAR-10). Three sources, each
concentrated on a group of classes ({0-3}, {4-6}, {7-9}); a proxy model (logistic regression on
PCA features) is trained on mixtures drawn from the sources at pilot sizes 200, 400, 800 (and
1,600 for a shorter projection) and at 3,200, 5 seeds each. Each source reveals a few hundred
pilot samples; OT is the debiased Sinkhorn divergence between the weighted pilot samples and a
labelled validation set with a one-hot label cost whose weight is chosen on the pilot runs
only (leave-one-out error of accuracy ~ OT). Reported: corr(OT, accuracy); error on held-out
random mixtures and on a leave-region-out split against the seed noise; the size projection
(4x and 2x reach) against reusing the largest pilot's accuracy, with each form's own misfit
at the target size as a floor; whether the 90% bootstrap intervals of the projection (which refit
the size exponent) contain the truth; and the true accuracy of the chosen mixture against the best
mixture on the grid. Six sibling sweeps (the same proxy on other class groupings, concentrations,
PCA sizes and regularisation, run to 3,200) give a size-exponent prior; every projection is also
reported with it, and a leave-one-sibling-out check tests the prior on configurations it never saw.

Part 2 (RegMix replay). Fit every form on the 512 training mixtures, predict the 256 test
mixtures' Pile-CC loss, report Spearman's rho. Needs ../shared/data/regmix (skipped if absent).

Part 3. Solver timings (value and gradient) at two problem sizes.

Run: python -m benchmarks.bench_mixer [--quick]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import time
import warnings

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from benchmarks.common import peak_rss_mb, reference_data_dir, require_fashion_mnist
from thresher.mixtures.optimize import optimize_mixture
from thresher.mixtures.performance import PerformanceModel
from thresher.mixtures.size_laws import exponent_prior, fit_size_exponent, size_weights, sweep_exponent
from thresher.mixtures.transport import EmbeddingSet, MixtureOT, select_label_weight

GROUPS = ([0, 1, 2, 3], [4, 5, 6], [7, 8, 9])
CONCENTRATION = 0.9  # share of a source's samples drawn from its own class group
PCA_DIM = 32
REVEALED = 300  # pilot samples each source reveals for OT
TARGET_SIZE = 1000  # labelled validation set the OT is measured against
EVAL_SIZE = 5000
FORMS_P1 = ("linear_ot", "pq_ot", "p_linear", "p_quadratic", "mixing_law", "gbm")


# ---- data ------------------------------------------------------------------------------------
def build_sources(rng: np.random.Generator, groups: tuple[list[int], ...] | list[list[int]] = GROUPS,
                  concentration: float = CONCENTRATION, pca_dim: int = PCA_DIM):
    xtr, ytr, xte, yte = require_fashion_mnist()
    pca = PCA(pca_dim, random_state=0).fit(xtr[rng.choice(len(xtr), 10000, replace=False)])
    ftr = pca.transform(xtr)
    fte = pca.transform(xte)
    scale = ftr.std()
    ftr, fte = ftr / scale, fte / scale
    # Split the training set into three disjoint class-skewed reservoirs.
    by_class = {c: list(rng.permutation(np.flatnonzero(ytr == c))) for c in range(10)}
    per_source = 15000
    reservoirs = []
    for group in groups:
        others = [c for c in range(10) if c not in group]
        n_in = int(round(concentration * per_source))
        picks = []
        for cls, count in list(zip(group, np.full(len(group), n_in // len(group)))) + list(
            zip(others, np.full(len(others), (per_source - n_in) // len(others)))
        ):
            take = min(int(count), len(by_class[cls]))
            picks.extend(by_class[cls][:take])
            del by_class[cls][:take]
        reservoirs.append(np.array(picks))
    test_perm = rng.permutation(len(yte))
    target_idx = test_perm[:TARGET_SIZE]
    eval_idx = test_perm[TARGET_SIZE : TARGET_SIZE + EVAL_SIZE]
    return ftr, ytr, fte, yte, reservoirs, target_idx, eval_idx


def counts_for(p: np.ndarray, n: int) -> np.ndarray:
    raw = p * n
    c = np.floor(raw).astype(int)
    c[np.argsort(-(raw - c))[: n - c.sum()]] += 1
    return c


def train_accuracy(p, n, seed, data, c: float = 1.0) -> float:
    ftr, ytr, fte, yte, reservoirs, _, eval_idx = data
    rng = np.random.default_rng(seed * 1_000_003 + n)
    idx = np.concatenate([rng.choice(res, size=c, replace=False) for res, c in zip(reservoirs, counts_for(p, n)) if c])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(max_iter=200, C=c).fit(ftr[idx], ytr[idx])
    return float(np.mean(clf.predict(fte[eval_idx]) == yte[eval_idx]))


def simplex_grid(step: int) -> np.ndarray:
    return np.array([[i, j, step - i - j] for i in range(step + 1) for j in range(step + 1 - i)], float) / step


# ---- part 1 ----------------------------------------------------------------------------------
LABEL_WEIGHTS = (0.25, 1.0, 4.0, 16.0, 64.0)  # candidates; one is picked from the pilot runs
PROJECTION_FORMS = ("linear_ot", "pq_ot", "p_quadratic", "mixing_law_log")
PROJECTION_BOOT = 50


# Sibling sweeps for the size-exponent prior: the same proxy family on other data (class groups
# permuted by the seed, other concentrations, PCA sizes and regularisation), never the bench's
# own configuration, run out to the target size as earlier studies would have been.
SIBLINGS = ((0.9, 32, 1.0, 1), (0.7, 32, 1.0, 2), (0.9, 16, 1.0, 3), (0.9, 64, 1.0, 4), (0.9, 32, 0.1, 5),
            (0.8, 64, 0.1, 6))  # (concentration, PCA dim, C, data seed)
SIBLING_SIZES = (200, 400, 800, 1600, 3200)
SIBLING_SEEDS = 15


def project_observed(table: np.ndarray, sizes: tuple[int, ...], target: int,
                     prior: tuple[float, float] | None = None) -> tuple[np.ndarray, float]:
    """Each mixture's own pilot means projected with E + A N^-alpha, alpha shared (no stage-1 form)."""
    n = np.asarray(sizes, dtype=np.float64)
    a = fit_size_exponent(table, n, prior)
    return table @ size_weights(n, np.array([float(target)]), "power", a)[0], a


def _sibling_sweep(config: tuple[float, int, float, int]) -> np.ndarray:
    """(sizes, mixtures, seeds) accuracies of one sibling configuration."""
    conc, dim, c, seed = config
    rng = np.random.default_rng(seed)
    perm = rng.permutation(10)
    data = build_sources(rng, groups=[[int(perm[k]) for k in g] for g in GROUPS], concentration=conc, pca_dim=dim)
    grid = simplex_grid(5)
    return np.array([[[train_accuracy(p, n, s, data, c) for s in range(SIBLING_SEEDS)] for p in grid]
                     for n in SIBLING_SIZES])


def sibling_prior() -> tuple[float, float]:
    """(mean, sd) size-exponent prior from the sibling sweeps, and a leave-one-sibling-out check.

    The check projects each sibling's own pilots (5 seeds at 200/400/800) to 3,200 with the
    prior from the other siblings, against the mean of 5 other seeds: configurations the
    prior never saw, so it says whether the prior generalises beyond the bench's one.
    """
    from concurrent.futures import ProcessPoolExecutor

    t = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2) as pool:
        sweeps = list(pool.map(_sibling_sweep, SIBLINGS))
    sizes = np.asarray(SIBLING_SIZES, float)
    alphas = [sweep_exponent(acc.mean(axis=2).T, sizes) for acc in sweeps]
    mean, sd = exponent_prior(alphas)
    print(f"size-exponent prior from {len(SIBLINGS)} sibling sweeps (21 mixtures x {SIBLING_SEEDS} seeds at "
          f"N={','.join(map(str, SIBLING_SIZES))}): exponents {' '.join(f'{a:.2f}' for a in alphas)} -> "
          f"{mean:.3f} +- {sd:.3f}  ({time.perf_counter() - t:.0f}s)")
    pilots, big = SIBLING_SIZES[:3], SIBLING_SIZES[-1]
    ratios = []
    for i, acc in enumerate(sweeps):
        loo = exponent_prior(alphas[:i] + alphas[i + 1:])
        truth = acc[-1][:, 10:15].mean(axis=1)
        target = 2 * float(np.sqrt(np.mean(acc[-1].var(axis=1, ddof=1))))
        table = np.column_stack([acc[k][:, :5].mean(axis=1) for k in range(3)])
        ratios.append([np.mean(np.abs(project_observed(table, pilots, big, prior)[0] - truth)) / target
                       for prior in (None, loo)])
    ratios = np.array(ratios)
    print(f"leave-one-sibling-out, N={','.join(map(str, pilots))} -> {big}, error / (2x seed SD), per sibling:")
    for label, col in (("power law, no prior    ", 0), ("power law, sibling prior", 1)):
        print(f"  {label} " + " ".join(f"{r:4.2f}" for r in ratios[:, col])
              + f"   median {np.median(ratios[:, col]):.2f}, within target {np.sum(ratios[:, col] <= 1)}/{len(ratios)}")
    return mean, sd


def part_fashion(quick: bool) -> None:
    print("== Part 1: Fashion-MNIST, 3 class-skewed sources, logistic regression on PCA-32 ==")
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    size_prior = sibling_prior()
    data = build_sources(rng)
    ftr, ytr, fte, yte, reservoirs, target_idx, _ = data
    pilot_sizes = (200, 400, 800)
    near = 1600  # a fourth pilot size, only for the shorter (2x) projection
    big = 3200
    seeds = (0, 1, 2, 3, 4)
    grid = simplex_grid(5 if quick else 10)
    pools = []
    for k, res in enumerate(reservoirs):
        shown = np.random.default_rng(100 + k).choice(res, size=REVEALED, replace=False)
        pools.append(EmbeddingSet(ftr[shown], labels=ytr[shown], name=f"source{k}"))
    target = EmbeddingSet(fte[target_idx], labels=yte[target_idx], name="validation")

    acc: dict[int, np.ndarray] = {}
    t_train = time.perf_counter()
    for n in (*pilot_sizes, near, big):
        acc[n] = np.array([[train_accuracy(p, n, s, data) for s in seeds] for p in grid])
    t_train = time.perf_counter() - t_train
    print(f"trained {acc[big].size * len(acc)} proxy models ({len(grid)} mixtures x {len(seeds)} seeds x "
          f"{len(acc)} sizes) in {t_train:.0f}s")

    # The label weight of the OT cost is chosen on the pilot runs only (N = 200, 400, 800).
    t_ot = time.perf_counter()
    pilot_w = np.vstack([grid for _ in pilot_sizes])
    pilot_y = np.concatenate([acc[n].mean(axis=1) for n in pilot_sizes])
    pilot_n = np.repeat(pilot_sizes, len(grid))
    choices = {
        cost: select_label_weight(pools, target, pilot_w, pilot_y, sizes=pilot_n, candidates=cands,
                                  solver="sinkhorn", reg=0.05, label_cost=cost)
        for cost, cands in (("onehot", LABEL_WEIGHTS), ("gaussian", LABEL_WEIGHTS[1:4]))
    }
    best_cost = min(choices, key=lambda k: choices[k].scores[choices[k].label_weight])
    choice = choices[best_cost]
    ot_fn = choice.ot
    ot_grid = ot_fn.values(grid)
    t_ot = time.perf_counter() - t_ot
    n_cands = sum(len(c.scores) for c in choices.values())
    print(f"OT: {ot_fn.n_points[0]} pilot points vs {ot_fn.n_points[1]} validation points; "
          f"{n_cands} label costs x {len(grid)} mixtures in {t_ot:.1f}s")
    print("label cost, weight   pilot LOO MAE (pts)   corr at N=" + "/".join(map(str, pilot_sizes))
          + f"   (corr at N={big}, not used)")
    for cost, ch in choices.items():
        for c in ch.scores:
            o = ch.values[c][: len(grid)]  # the pilot rows are the grid, once per pilot size
            rs = [pearsonr(o, acc[n].mean(axis=1))[0] for n in pilot_sizes]
            mark = "  <- chosen" if (cost, c) == (best_cost, choice.label_weight) else ""
            print(f"{cost:>8} {c:>9g}   {ch.scores[c] * 100:8.2f}              "
                  + " ".join(f"{r:+.3f}" for r in rs) + f"        ({pearsonr(o, acc[big].mean(axis=1))[0]:+.3f}){mark}")

    print(f"\nsize   corr(OT, acc)   Spearman   seed SD (pts)   acc range (%)   [{best_cost} label cost, weight {choice.label_weight:g}]")
    noise = {}
    for n in (*pilot_sizes, near, big):
        mean = acc[n].mean(axis=1)
        noise[n] = float(np.sqrt(np.mean(acc[n].var(axis=1, ddof=1)))) * 100
        print(f"{n:>5}   {pearsonr(ot_grid, mean)[0]:+.3f}          {spearmanr(ot_grid, mean)[0]:+.3f}     {noise[n]:.2f}"
              f"            {mean.min() * 100:.1f}-{mean.max() * 100:.1f}")

    def fit_rows(form: str, rows: np.ndarray, sizes: tuple[int, ...] | list[int],
                 prior: tuple[float, float] | None = None, n_boot: int = 0) -> PerformanceModel:
        w = np.vstack([grid[rows] for _ in sizes])
        y = np.concatenate([acc[n][rows].mean(axis=1) for n in sizes])
        o = np.concatenate([ot_grid[rows] for _ in sizes])
        sz = np.concatenate([np.full(rows.sum() if rows.dtype == bool else len(rows), float(n)) for n in sizes])
        return PerformanceModel(form, ot=ot_fn, goal="max", n_boot=n_boot, size_prior=prior).fit(
            w, y, sizes=sz if len(sizes) > 1 else None, ot_values=o
        )

    # Held-out random mixtures and leave-region-out, at the largest pilot size.
    n_ref = pilot_sizes[-1]
    truth = acc[n_ref].mean(axis=1)
    split_rng = np.random.default_rng(7)
    region = grid[:, 1] >= 0.5
    print(f"\nstage-1 error at N={n_ref} (MAE, accuracy points; seed SD {noise[n_ref]:.2f}, 2x = {2 * noise[n_ref]:.2f})")
    print("form            random 50% (5 splits)   leave-region-out (train p2<0.5 -> test p2>=0.5)")
    splits = [split_rng.permutation(len(grid)) for _ in range(5)]
    for form in (*FORMS_P1, "mixing_law_log"):
        errs = []
        for perm in splits:
            tr = np.zeros(len(grid), bool)
            tr[perm[: len(grid) // 2]] = True
            model = fit_rows(form, tr, [n_ref])
            errs.append(np.mean(np.abs(model.predict(grid[~tr], ot_values=ot_grid[~tr]) - truth[~tr])))
        model = fit_rows(form, ~region, [n_ref])
        lro = np.mean(np.abs(model.predict(grid[region], ot_values=ot_grid[region]) - truth[region]))
        print(f"{form:<15} {np.mean(errs) * 100:6.2f}                  {lro * 100:6.2f}")

    # Size projection to N=big: 4x reach from 200/400/800, 2x reach from 400/800/1600.
    truth_big = acc[big].mean(axis=1)
    all_rows = np.ones(len(grid), bool)
    far, short = pilot_sizes, (400, 800, near)
    print(f"\nsize projection to N={big} (MAE, points, against the mean of {len(seeds)} seeds; per-seed SD at {big}: "
          f"{noise[big]:.2f}, target 2x = {2 * noise[big]:.2f}; SD of the {len(seeds)}-seed mean "
          f"{noise[big] / np.sqrt(len(seeds)):.2f})")
    print(f"reuse the largest pilot's accuracy      4x reach (N={far[-1]}): {np.mean(np.abs(acc[far[-1]].mean(1) - truth_big)) * 100:5.2f}"
          f"   2x reach (N={short[-1]}): {np.mean(np.abs(acc[short[-1]].mean(1) - truth_big)) * 100:5.2f}")
    for sizes, label in ((far, "4x"), (short, "2x")):
        for prior, how in ((None, "power law (no form)     "), (size_prior, "power law + prior       ")):
            proj, a = project_observed(np.column_stack([acc[n].mean(axis=1) for n in sizes]), sizes, big, prior)
            print(f"observed means, {how}{label} reach N={','.join(map(str, sizes))}: "
                  f"{np.mean(np.abs(proj - truth_big)) * 100:5.2f}  (alpha={a:.2f})")
    print(f"form             fitted at N={big} itself   log N={far[-2]},{far[-1]}   power N={','.join(map(str, far))}"
          f"   power N={','.join(map(str, short))}   with the sibling prior: N={','.join(map(str, far))}"
          f"   N={','.join(map(str, short))}")
    for form in PROJECTION_FORMS:
        floor = fit_rows(form, all_rows, [big])
        e0 = np.mean(np.abs(floor.predict(grid, ot_values=ot_grid) - truth_big)) * 100
        errs = []
        for sizes, prior in ((far[-2:], None), (far, None), (short, None), (far, size_prior), (short, size_prior)):
            model = fit_rows(form, all_rows, sizes, prior)
            errs.append(np.mean(np.abs(model.predict(grid, big, ot_values=ot_grid) - truth_big)) * 100)
        print(f"{form:<15}  {e0:6.2f}                    {errs[0]:6.2f}          {errs[1]:6.2f}"
              f"                  {errs[2]:6.2f}                            {errs[3]:6.2f}            {errs[4]:6.2f}")

    # How honest are the intervals far from the pilots? Fit on one row per seed, so the bootstrap
    # resamples seeds as well as mixtures, and every replicate refits its own size exponent.
    boot_rng = np.random.default_rng(11)
    print(f"\n90% intervals at N={big} (fitted on one row per seed, {PROJECTION_BOOT} bootstrap replicates): "
          "share of mixtures whose truth is inside, mean width (points)")
    floor = []
    for sizes in (far, short):
        # The projection's own seed noise: redraw the pilot seeds, project again (no model form).
        reps = [project_observed(np.column_stack([acc[n][:, boot_rng.integers(0, len(seeds), len(seeds))].mean(1)
                                                  for n in sizes]), sizes, big)[0] for _ in range(100)]
        floor.append(float(np.sqrt(np.mean(np.var(reps, axis=0)))) * 100)
    print(f"seed noise of the projection itself (SD over redrawn pilot seeds, no form): 4x reach {floor[0]:.2f}, "
          f"2x reach {floor[1]:.2f}")
    print("                kind=mean                kind=mixture             exponent held fixed (mean)   "
          "sibling prior, mean       sibling prior, mixture")
    print("form            4x: in width   2x: in width    4x: in width   2x: in width    4x: in width   2x: in width    "
          "4x: in width   2x: in width    4x: in width   2x: in width")
    for form in PROJECTION_FORMS:
        cells = []
        for sizes in (far, short):
            w = np.vstack([grid for _ in sizes for _ in seeds])
            y = np.concatenate([acc[n][:, k] for n in sizes for k in range(len(seeds))])
            sz = np.repeat(np.asarray(sizes, float), len(seeds) * len(grid))
            for prior in (None, size_prior):
                model = PerformanceModel(form, ot=ot_fn, goal="max", n_boot=PROJECTION_BOOT, size_prior=prior).fit(
                    w, y, sizes=sz, ot_values=np.tile(ot_grid, len(sizes) * len(seeds)))
                kinds = (("mean", True), ("mixture", True), ("mean", False)) if prior is None else (("mean", True), ("mixture", True))
                for kind, refit in kinds:
                    if not refit:  # the earlier intervals: every replicate kept the point exponent
                        model.boot_alpha_ = []
                    _, lo, hi = model.predict_interval(grid, big, ot_values=ot_grid, kind=kind)
                    cells.append(f"{np.mean((truth_big >= lo) & (truth_big <= hi)):4.2f} {np.mean(hi - lo) * 100:5.2f}")
        print(f"{form:<15} " + "   ".join(cells[i] + "  " + cells[i + 5] for i in range(5)), flush=True)

    # Choose a mixture for N=big from the pilots and train on it for real.
    print(f"\nchosen mixture at N={big} (accuracy, %, mean of seeds)")
    best_i = int(np.argmax(truth_big))
    print(f"grid best        p={np.round(grid[best_i], 2)}  {truth_big[best_i] * 100:.2f}")
    check_seeds = (10, 11, 12, 13, 14)
    gridbest_fresh = np.mean([train_accuracy(grid[best_i], big, s, data) for s in check_seeds])
    for form, sizes, prior in (("linear_ot", pilot_sizes, None), ("linear_ot", pilot_sizes[-2:], None), ("pq_ot", pilot_sizes, None),
                               ("gbm", pilot_sizes, None), ("linear_ot", pilot_sizes, size_prior)):
        model = fit_rows(form, all_rows, sizes, prior, n_boot=50)
        t = time.perf_counter()
        choice_p = optimize_mixture(model, big, starts=4)
        t = time.perf_counter() - t
        true = np.mean([train_accuracy(choice_p.weights, big, s, data) for s in check_seeds])
        print(f"{form:<9} {len(sizes)} sizes{' +prior' if prior else ''} p={np.round(choice_p.weights, 3)}  "
              f"predicted {choice_p.predicted * 100:.2f} "
              f"[{choice_p.lower * 100:.2f}, {choice_p.upper * 100:.2f}]  true {true * 100:.2f}  "
              f"(grid best on the same fresh seeds {gridbest_fresh * 100:.2f}; gap {(gridbest_fresh - true) * 100:+.2f}; {t:.1f}s)",
              flush=True)
    print(f"part 1 took {time.perf_counter() - t0:.0f}s")


# ---- part 2 ----------------------------------------------------------------------------------
def part_regmix() -> None:
    print("\n== Part 2: RegMix replay, 1M-parameter models, Pile-CC validation loss ==")
    root = reference_data_dir()
    if root is None or not (root / "regmix" / "train_mixture_1m.csv").exists():
        print("skipped: ../shared/data/regmix not found (set THRESHER_REFERENCE_DATA)")
        return
    from thresher.mixtures.mixture_observations import read_regmix

    col = "metric/the_pile_pile_cc_val_loss"
    train, test = read_regmix(root / "regmix", "train"), read_regmix(root / "regmix", "test")
    y = test.value(col)
    print("form              Spearman   Pearson   MAE      fit s   gradient")
    for form in ("p_linear", "p_quadratic", "mixing_law", "mixing_law_log", "gbm"):
        t = time.perf_counter()
        model = PerformanceModel(form, n_boot=0).fit(train, col)
        t = time.perf_counter() - t
        pred = model.predict(test.weights)
        print(f"{form:<17} {spearmanr(pred, y)[0]:.4f}     {pearsonr(pred, y)[0]:.4f}    {np.mean(np.abs(pred - y)):.4f}   "
              f"{t:5.1f}   {'yes' if model.has_gradient else 'no'}")
    model = PerformanceModel("mixing_law_log", n_boot=30).fit(train, col)
    t = time.perf_counter()
    choice = optimize_mixture(model)
    t = time.perf_counter() - t
    top = sorted(zip(train.pools, choice.weights), key=lambda kv: -kv[1])[:4]
    best_train = float(train.value(col).min())
    print(f"optimised mixing_law_log mixture ({t:.1f}s): predicted Pile-CC loss {choice.predicted:.3f} "
          f"[{choice.lower:.3f}, {choice.upper:.3f}] vs best training mixture {best_train:.3f}; top weights "
          + ", ".join(f"{k}={v:.2f}" for k, v in top))


# ---- part 3 ----------------------------------------------------------------------------------
def part_solvers() -> None:
    print("\n== Part 3: solver time for value + gradient (3 pools, PCA-32 features, labels) ==")
    rng = np.random.default_rng(3)
    ftr, ytr, fte, yte, reservoirs, target_idx, _ = build_sources(rng)
    print("points/pool  target   sinkhorn   exact    sliced(200)")
    for per_pool, tgt in ((300, 1000), (1000, 3000)):
        pools = [EmbeddingSet(ftr[r[:per_pool]], labels=ytr[r[:per_pool]]) for r in reservoirs]
        target = EmbeddingSet(fte[:tgt], labels=yte[:tgt])
        row = []
        for solver in ("sinkhorn", "exact", "sliced"):
            t = time.perf_counter()
            m = MixtureOT(pools, target, solver=solver, label_cost="onehot", max_per_pool=5000, max_target=5000)
            m.value_and_grad(np.array([0.2, 0.3, 0.5]))
            row.append(time.perf_counter() - t)
        print(f"{per_pool:>11}  {tgt:>6}   {row[0]:7.2f}s  {row[1]:6.2f}s  {row[2]:6.2f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="coarser grid (21 mixtures) for a fast smoke run")
    ap.add_argument("--part", type=int, choices=(1, 2, 3), action="append", help="run only these parts")
    args = ap.parse_args()
    parts = args.part or [1, 2, 3]
    t = time.perf_counter()
    if 1 in parts:
        part_fashion(args.quick)
    if 2 in parts:
        part_regmix()
    if 3 in parts:
        part_solvers()
    print(f"\ntotal {time.perf_counter() - t:.0f}s, peak RSS {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
