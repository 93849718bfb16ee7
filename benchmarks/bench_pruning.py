"""Data pruning on Fashion-MNIST: the central experiment of Sorscher et al. (2022), "Beyond neural scaling laws".

Keep a fraction of the training set chosen by a pruning metric, train a small
model on it, and compare test error against keeping a random subset:

* random subset;
* self-supervised prototypes (unsupervised PCA embedding, k-means, cosine
  distance to the nearest centroid), keeping the easy or the hard end, each with
  and without cluster balancing;
* EL2N (short MLP ensemble, labels needed), keeping the hard end.

The paper predicts a crossover: keep easy examples when little data is kept,
hard ones when much is kept. Run:

    python -m benchmarks.bench_pruning --out results/

It prints the test-error table (mean ± std over seeds) and writes
`pruning_curves.png` and `pruning_results.json` to --out.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from benchmarks.common import require_fashion_mnist
from thresher.metrics.difficulty import el2n_scores
from thresher.metrics.prototypes import fit_prototypes, select

FRACTIONS = (0.02, 0.05, 0.10, 0.20, 0.50, 0.80, 1.00)
STRATEGIES = ("random", "ssp-easy", "ssp-hard", "ssp-easy-balanced", "ssp-hard-balanced", "el2n-hard")


def features(xtr: np.ndarray, xte: np.ndarray, n_components: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA fitted on the training pixels: (standardised train, standardised test, unwhitened train embedding).

    The model gets standardised components; prototypes use the unwhitened
    projection, because whitening inflates the low-variance (mostly noise)
    directions and makes cosine distances to centroids far less informative.
    """
    pca = PCA(n_components=n_components, random_state=seed, svd_solver="randomized").fit(xtr)
    ftr, fte = pca.transform(xtr), pca.transform(xte)
    mu, sd = ftr.mean(0), ftr.std(0) + 1e-8
    return (ftr - mu) / sd, (fte - mu) / sd, ftr


def train_and_test(model: str, x: np.ndarray, y: np.ndarray, xte: np.ndarray, yte: np.ndarray, seed: int) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if model == "logreg":
            clf = LogisticRegression(C=1.0, max_iter=300, random_state=seed)
        else:
            # Fixed epoch budget per example seen (the paper's "compute" counting), early stopping off.
            clf = MLPClassifier(hidden_layer_sizes=(256,), alpha=1e-3, batch_size=min(128, len(y)), learning_rate_init=1e-3,
                                max_iter=60, n_iter_no_change=60, tol=0.0, random_state=seed)
        clf.fit(x, y)
    return float(np.mean(clf.predict(xte) != yte))


def kept_indices(strategy: str, fraction: float, n: int, rng: np.random.Generator, ssp, el2n: np.ndarray) -> np.ndarray:
    if fraction >= 1.0:
        return np.arange(n)
    if strategy == "random":
        return np.sort(rng.choice(n, max(1, int(round(fraction * n))), replace=False))
    if strategy.startswith("ssp-"):
        keep = "easy" if "easy" in strategy else "hard"
        return select(ssp.distance, fraction, keep, ssp.cluster if strategy.endswith("balanced") else None)
    if strategy == "el2n-hard":
        return select(el2n, fraction, "hard")
    raise ValueError(strategy)


def run(args: argparse.Namespace) -> dict:
    xtr, ytr, xte, yte = require_fashion_mnist()
    if args.train_rows:
        sub = np.random.default_rng(12345).choice(len(ytr), args.train_rows, replace=False)
        xtr, ytr = xtr[sub], ytr[sub]
    results: dict[str, dict[str, list[float]]] = {s: {str(f): [] for f in args.fractions} for s in STRATEGIES}
    timing: dict[str, float] = {}
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        ftr, fte, emb = features(xtr, xte, args.pca, seed)
        ssp = fit_prototypes(emb, args.clusters, seed=seed)
        timing["ssp_s"] = timing.get("ssp_s", 0.0) + time.perf_counter() - t0
        t1 = time.perf_counter()
        el2n = el2n_scores(ftr, ytr, n_models=args.el2n_models, epochs=args.el2n_epochs, hidden=(128,), seed=seed)
        timing["el2n_s"] = timing.get("el2n_s", 0.0) + time.perf_counter() - t1
        rng = np.random.default_rng(seed)
        full_error = None
        for fraction in args.fractions:
            for strategy in STRATEGIES:
                if fraction >= 1.0 and full_error is not None:
                    results[strategy][str(fraction)].append(full_error)  # all strategies keep everything
                    continue
                idx = kept_indices(strategy, fraction, len(ytr), rng, ssp, el2n)
                err = train_and_test(args.model, ftr[idx], ytr[idx], fte, yte, seed)
                results[strategy][str(fraction)].append(err)
                if fraction >= 1.0:
                    full_error = err
        if not args.quiet:
            print(f"seed {seed} done in {time.perf_counter() - t0:.0f}s", flush=True)
    return {"results": results, "timing": timing, "n_train": int(len(ytr)), "config": {
        "model": args.model, "pca": args.pca, "clusters": args.clusters, "seeds": args.seeds,
        "el2n_models": args.el2n_models, "el2n_epochs": args.el2n_epochs, "fractions": list(args.fractions)}}


def summarise(out: dict) -> list[str]:
    res, fracs = out["results"], out["config"]["fractions"]
    lines = []
    head = f"{'kept':>6} " + " ".join(f"{s:>18}" for s in STRATEGIES)
    lines.append(f"test error (mean ± std over {out['config']['seeds']} seeds), {out['config']['model']} on PCA-{out['config']['pca']}, "
                 f"n_train={out['n_train']}, k={out['config']['clusters']}")
    lines.append(head)
    for f in fracs:
        cells = []
        for s in STRATEGIES:
            v = np.asarray(res[s][str(f)])
            cells.append(f"{v.mean():.4f} ± {v.std(ddof=1) if v.size > 1 else 0:.4f}".rjust(18))
        lines.append(f"{f * 100:>5.0f}% " + " ".join(cells))
    lines.append("")
    # The paper's shape: easy beats hard when little is kept, hard beats easy when much is kept.
    for f in fracs:
        if f >= 1.0:
            continue
        m = {s: float(np.mean(res[s][str(f)])) for s in STRATEGIES}
        pairs = [("unbalanced", "ssp-easy", "ssp-hard"), ("balanced", "ssp-easy-balanced", "ssp-hard-balanced")]
        verdict = ", ".join(f"{name}: {'easy' if m[e] < m[h] else 'hard'} wins ({m[e]:.4f} vs {m[h]:.4f})" for name, e, h in pairs)
        best = min((s for s in STRATEGIES if s != "random"), key=lambda s: m[s])
        r = np.asarray(res["random"][str(f)])
        b = np.asarray(res[best][str(f)])
        noise = np.sqrt(r.var(ddof=1) / r.size + b.var(ddof=1) / b.size) if r.size > 1 else 0.0
        diff = m[best] - m["random"]
        cmp = "beats" if diff < -2 * noise else "matches" if abs(diff) <= 2 * noise else "loses to"
        lines.append(f"{f * 100:>5.0f}% kept: {verdict}; best metric {best} {cmp} random "
                     f"({diff:+.4f}, 2·se {2 * noise:.4f})")
    return lines


def plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res, fracs = out["results"], out["config"]["fractions"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"random": "k-", "ssp-easy": "b--", "ssp-hard": "r--", "ssp-easy-balanced": "b-", "ssp-hard-balanced": "r-",
              "el2n-hard": "g-."}
    for s in STRATEGIES:
        v = np.array([res[s][str(f)] for f in fracs])
        ax.errorbar(np.array(fracs) * 100, v.mean(1), yerr=v.std(1, ddof=1) if v.shape[1] > 1 else None, fmt=styles[s], marker="o",
                    ms=3, capsize=2, label=s)
    ax.set_xscale("log")
    ax.set_yscale("log")  # EL2N-hard at small fractions is near chance; keep the other curves readable
    ax.set_xlabel("training data kept (%)")
    ax.set_ylabel("test error")
    ax.set_title(f"Fashion-MNIST pruning ({out['config']['model']} on PCA-{out['config']['pca']}, {out['config']['seeds']} seeds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("."), help="directory for pruning_curves.png and pruning_results.json")
    p.add_argument("--model", choices=("logreg", "mlp"), default="logreg")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--pca", type=int, default=64, help="PCA components: model input and SSP embedding")
    p.add_argument("--clusters", type=int, default=100, help="k-means clusters for prototypes (paper: within 10x of the class count)")
    p.add_argument("--el2n-models", type=int, default=4)
    p.add_argument("--el2n-epochs", type=int, default=2)
    p.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS))
    p.add_argument("--train-rows", type=int, default=None, help="subsample the training set first (smoke runs)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    out = run(args)
    out["timing"]["total_s"] = time.perf_counter() - t0
    for line in summarise(out):
        print(line)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pruning_results.json").write_text(json.dumps(out, indent=1))
    plot(out, args.out / "pruning_curves.png")
    print(f"total {out['timing']['total_s']:.0f}s (prototypes {out['timing']['ssp_s']:.0f}s, EL2N {out['timing']['el2n_s']:.0f}s)")
    print(args.out / "pruning_curves.png")
    print(args.out / "pruning_results.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
