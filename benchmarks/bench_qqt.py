"""A real quality-quantity tradeoff at small scale: Fashion-MNIST pools cut by a quality score.

Run: python -m benchmarks.bench_qqt [--noise 0.3] [--seeds 2] [--hidden 64]

Setup (a few minutes on 2 cores):
  * Fashion-MNIST (Debian `dataset-fashion-mnist`), 50 PCA features. Training samples are
    corrupted unevenly, as a stand-in for the uneven quality of a web crawl: a latent corruption
    c ~ U(0, 1) per sample replaces its label at random with probability min(1, `--noise` x c) and adds
    pixel noise of std 0.5 c. The test set stays clean.
  * Quality score: an unsupervised proxy that never sees labels (minus the image's high-frequency
    energy), so it tracks c imperfectly, as a quality classifier tracks web text quality.
    Pools: top 0-10%, 10-20%, 20-30%, 30-40% of the score within each given label (about 6000
    samples each).
  * Model: a one-hidden-layer MLP trained by minibatch SGD with a constant learning rate, so the
    checkpoint at n samples seen is the run for budget n. Data is repeated (epochs) as needed.
    Value = error on the clean 10k test set.
  * Runs: every pool alone and the nested unions (top-1..top-4, sampled uniformly), `--seeds` seeds.
  * Fit the laws on the single-pool runs only, predict the unions' curves, and the budget where the
    best nested union flips. Predicted against measured, whatever comes out.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

from benchmarks.common import require_fashion_mnist
from thresher.mixtures.fitting import FittedLaw, fit
from thresher.mixtures.observations import Observations
from thresher.mixtures.planning import Pool, union_values

POOL_NAMES = ("top10", "top20", "top30", "top40")


def prepare(noise: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Corrupt the training set unevenly, score it without labels, and project to 50 PCA features.

    Each training sample gets a latent corruption c ~ U(0, 1): its label is replaced at random with
    probability min(1, `noise` * c) and its pixels get Gaussian noise of std 0.5 c. The quality score is
    an unsupervised proxy (minus the mean absolute Laplacian, i.e. high-frequency energy), so it
    tracks c imperfectly, as a quality classifier tracks the quality of web text.
    """
    from sklearn.decomposition import PCA

    xtr, ytr, xte, yte = require_fashion_mnist()
    rng = np.random.default_rng(seed)
    c = rng.random(len(xtr))
    y = ytr.copy()
    flip = rng.random(len(y)) < np.minimum(noise * c, 1.0)
    y[flip] = rng.integers(0, 10, flip.sum())
    xc = np.clip(xtr + rng.standard_normal(xtr.shape).astype(np.float32) * (0.5 * c[:, None]).astype(np.float32), 0, 1)
    img = xc.reshape(-1, 28, 28)
    lap = 4 * img[:, 1:-1, 1:-1] - img[:, :-2, 1:-1] - img[:, 2:, 1:-1] - img[:, 1:-1, :-2] - img[:, 1:-1, 2:]
    quality = -np.abs(lap).mean(axis=(1, 2))
    pca = PCA(n_components=50, random_state=seed).fit(xc[rng.choice(len(xc), 20000, replace=False)])
    ftr, fte = pca.transform(xc).astype(np.float32), pca.transform(xte).astype(np.float32)
    scale = ftr.std(axis=0) + 1e-6
    return ftr / scale, y, fte / scale, yte, quality, c


def cut_pools(quality: np.ndarray, label: np.ndarray) -> list[np.ndarray]:
    """Top 0-10%, 10-20%, 20-30%, 30-40% by quality, cut within each (given) label so pools stay
    class-balanced: a smoothness proxy alone would favour smooth classes (bags, trousers)."""
    pools: list[list[np.ndarray]] = [[], [], [], []]
    for cls in np.unique(label):
        idx = np.flatnonzero(label == cls)
        idx = idx[np.argsort(-quality[idx], kind="stable")]
        step = len(idx) / 10
        for k in range(4):
            pools[k].append(idx[int(round(k * step)) : int(round((k + 1) * step))])
    out = [np.concatenate(p) for p in pools]
    size = min(len(p) for p in out)
    return [p[:size] for p in out]


def train_curve(x: np.ndarray, y: np.ndarray, xte: np.ndarray, yte: np.ndarray, budgets: np.ndarray, hidden: int,
                seed: int, lr: float = 0.02, batch: int = 64, ema: float = 0.995) -> np.ndarray:
    """Test error at each budget (samples seen) of an MLP trained by SGD on (x, y), repeating as needed.

    Evaluation uses an exponential moving average of the weights: the constant learning rate keeps
    the raw iterate noisy, and the average is what a checkpoint at that budget would ship.
    """
    rng = np.random.default_rng(seed)
    d = x.shape[1]
    w1 = (rng.standard_normal((d, hidden)) * np.sqrt(2 / d)).astype(np.float32)
    b1 = np.zeros(hidden, np.float32)
    w2 = (rng.standard_normal((hidden, 10)) * np.sqrt(1 / hidden)).astype(np.float32)
    b2 = np.zeros(10, np.float32)
    vel = [np.zeros_like(p) for p in (w1, b1, w2, b2)]
    avg = [p.copy() for p in (w1, b1, w2, b2)]
    errs = []
    seen, order, pos, step = 0, rng.permutation(len(x)), 0, 0
    targets = np.sort(budgets)
    for target in targets:
        while seen < target:
            take = min(batch, int(target - seen))
            if pos + take > len(order):  # next epoch over the pool
                order, pos = rng.permutation(len(x)), 0
                take = min(take, len(order))
            idx = order[pos : pos + take]
            pos += take
            xb, yb = x[idx], y[idx]
            h = np.maximum(xb @ w1 + b1, 0)
            logits = h @ w2 + b2
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(yb)), yb] -= 1
            g2 = p / len(yb)
            gh = (g2 @ w2.T) * (h > 0)
            grads = (xb.T @ gh, gh.sum(0), h.T @ g2, g2.sum(0))
            for v, g, prm in zip(vel, grads, (w1, b1, w2, b2)):
                v *= 0.9
                v += g + 1e-5 * prm
                prm -= lr * v
            step += 1
            decay = min(ema, (1 + step) / (10 + step))  # short memory early: no warm-up lag
            for a, prm in zip(avg, (w1, b1, w2, b2)):
                a *= decay
                a += (1 - decay) * prm
            seen += take
        a1, c1, a2, c2 = avg
        pred = (np.maximum(xte @ a1 + c1, 0) @ a2 + c2).argmax(axis=1)
        errs.append(float(np.mean(pred != yte)))
    return np.array(errs)


def observations(rows: list[tuple[str, np.ndarray, float, np.ndarray, int]], pool_size: float) -> Observations:
    """rows: (run id, weights over pools, seen, errors at budgets) flattened into the table."""
    run, w, seen, val = [], [], [], []
    for rid, weights, budgets, errs in rows:
        for b, e in zip(budgets, errs):
            run.append(rid)
            w.append(weights)
            seen.append(b)
            val.append(max(e, 1e-4))
    n = len(run)
    return Observations.from_arrays(seen=seen, value=val, unique=np.full((n, 4), pool_size), weights=np.array(w),
                                    pools=POOL_NAMES, run=run, params=np.full(n, 1.0), unit="samples")


def best_union(values: dict[str, np.ndarray]) -> list[str]:
    labels = list(values)
    return [labels[i] for i in np.argmin(np.array([values[k] for k in labels]), axis=0)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--noise", type=float, default=1.5,
                    help="label-replacement probability per unit corruption (capped at 1)")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--max-epochs", type=float, default=40.0, help="largest budget, in epochs of one pool")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    x, y, xte, yte, quality, corruption = prepare(args.noise, seed=0)
    pools = cut_pools(quality, y)
    size = len(pools[0])
    clean = [float(np.mean(y[p] == require_fashion_mnist()[1][p])) for p in pools]
    mean_c = [float(corruption[p].mean()) for p in pools]
    budgets = np.unique(np.round(np.geomspace(size * 0.25, size * args.max_epochs, 16)))
    print("# Quality-quantity tradeoff on Fashion-MNIST pools")
    print(f"pools of {size} samples; clean-label share per pool: "
          + ", ".join(f"{n} {c:.0%}" for n, c in zip(POOL_NAMES, clean))
          + "; mean corruption: " + ", ".join(f"{m:.2f}" for m in mean_c))
    print(f"budgets (samples seen): {', '.join(f'{b:g}' for b in budgets)}\n")

    single_rows, union_rows = [], []
    measured_single = {}
    measured_union: dict[str, np.ndarray] = {}
    for i, name in enumerate(POOL_NAMES):
        curves = []
        for s in range(args.seeds):
            e = train_curve(x[pools[i]], y[pools[i]], xte, yte, budgets, args.hidden, seed=100 * s + i)
            single_rows.append((f"{name}/s{s}", np.eye(4)[i], budgets, e))
            curves.append(e)
        measured_single[name] = np.mean(curves, axis=0)
    for k in range(1, 5):
        idx = np.concatenate(pools[:k])
        label = "+".join(POOL_NAMES[:k])
        curves = []
        for s in range(args.seeds):
            e = train_curve(x[idx], y[idx], xte, yte, budgets, args.hidden, seed=1000 + 100 * s + k)
            w = np.zeros(4)
            w[:k] = 1.0 / k
            union_rows.append((f"{label}/s{s}", w, budgets, e))
            curves.append(e)
        measured_union[label] = np.mean(curves, axis=0)
    print(f"training: {time.perf_counter() - t0:.0f} s for {len(single_rows) + len(union_rows)} runs\n")

    train = observations(single_rows, size)
    test = observations([r for r in union_rows if "+" in r[0]], size)
    print("## Measured test error (mean over seeds)")
    print("| budget | " + " | ".join(POOL_NAMES) + " | " + " | ".join(k for k in measured_union if "+" in k) + " |")
    print("|---|" + "---|" * (4 + 3))
    for j, b in enumerate(budgets):
        cells = [f"{measured_single[n][j]:.4f}" for n in POOL_NAMES] + \
                [f"{v[j]:.4f}" for k, v in measured_union.items() if "+" in k]
        print(f"| {b:g} | " + " | ".join(cells) + " |")

    pool_objs = [Pool(n, float(size)) for n in POOL_NAMES]
    measured_best = best_union(measured_union)
    print("\n## Fit on single-pool runs, predict the unions")
    print("| law | in-sample MAPE (single pools) | held-out MAPE (unions) | predicted best union per budget |")
    print("|---|---|---|---|")
    fits: dict[str, FittedLaw] = {}
    for label, law, opts in (("goyal, tau x pool count", "goyal", {"tau_scaling": "by_pool_count"}),
                             ("goyal, per-pool tau", "goyal", {"tau_scaling": "per_pool"}),
                             ("muennighoff", "muennighoff", {}),
                             ("overfit (saturating)", "overfit", {})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            f = fit(train, law, law_options=opts, max_starts=32)
        fits[label] = f
        pred = f.predict(test)
        held = float(np.mean(np.abs(pred - test.value) / test.value))
        uv = union_values(f, pool_objs, budgets, params=1.0, order=POOL_NAMES)
        pb = best_union(uv)
        print(f"| {label} | {f.metrics['mape']:.2%} | {held:.2%} | {summarise(pb, budgets)} |")
    print(f"| measured | | | {summarise(measured_best, budgets)} |")

    print("\n## Where the best nested union flips")
    m_flip = flips(measured_best, budgets)
    print(f"measured: {m_flip or 'no flip within the budgets'}")
    for label, f in fits.items():
        uv = union_values(f, pool_objs, budgets, params=1.0, order=POOL_NAMES)
        print(f"{label}: {flips(best_union(uv), budgets) or 'no flip within the budgets'}")
    g = fits["goyal, per-pool tau"]
    print("\nfitted pool utilities (goyal, per-pool tau): " + ", ".join(
        f"{n}: b={g.params[f'b[{n}]']:.3f}, tau={g.params[f'tau[{n}]']:.2f}" for n in POOL_NAMES))
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


def summarise(best: list[str], budgets: np.ndarray) -> str:
    parts, start = [], 0
    for j in range(1, len(best) + 1):
        if j == len(best) or best[j] != best[start]:
            parts.append(f"{best[start]} ({budgets[start]:g}-{budgets[j - 1]:g})")
            start = j
    return "; ".join(parts)


def flips(best: list[str], budgets: np.ndarray) -> str:
    return "; ".join(f"{best[j - 1]} -> {best[j]} between {budgets[j - 1]:g} and {budgets[j]:g}"
                     for j in range(1, len(best)) if best[j] != best[j - 1])


if __name__ == "__main__":
    sys.exit(main())
