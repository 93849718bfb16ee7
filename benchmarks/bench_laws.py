"""Held-out error of every utility law on real data-constrained training runs, and fit cost.

Run: python -m benchmarks.bench_laws [--max-starts 16] [--skip-timing]

Tasks (reference data in ../shared/data; MAPE = mean absolute percentage error of the loss):
  (a) loss curves: fit on the runs of <= 4 epochs, predict the final loss of the 7-, 14- and
      44-epoch runs (12 runs, three model sizes at fixed compute);
  (b) loss curves: leave one model size out (fit on two sizes, predict the third's final losses);
  (c) final losses: 5-fold cross-validation by configuration over all 296 rows, rising-loss rows
      included (seeds of one configuration stay in one fold).
The published law's *in-sample* error (8.2% on the 182-row subset, 10.7% on all 296 rows) is
the bar to beat. Timing: one fit on 296 rows with the full start grid, and 200 bootstrap refits.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

from benchmarks.common import reference_data_dir
from thresher.mixtures.fitting import FittedLaw, _start_grid, fit, run_bootstrap
from thresher.mixtures.laws import LawData, get_law
from thresher.mixtures.laws.muennighoff import PUBLISHED
from thresher.mixtures.observations import Observations, load_observations

LAWS: list[tuple[str, str, dict]] = [
    ("goyal", "goyal", {}),
    ("muennighoff", "muennighoff", {}),
    ("overfit (saturating)", "overfit", {"penalty": "saturating"}),
    ("overfit (power)", "overfit", {"penalty": "power"}),
]
CURVES_DROP_EARLY = 0.1  # skip warm-up checkpoints (before 10% of a run), as Hitchhiker recommends


def mape(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - y) / y))


def published_predict(obs: Observations) -> np.ndarray:
    pool = obs.pools[0]
    params = {k: PUBLISHED[k] for k in ("E", "A", "B", "alpha", "R_N")}
    params[f"R_D[{pool}]"] = PUBLISHED["R_D"]
    return get_law("muennighoff").predict(params, LawData.from_observations(obs, obs.pools), obs.pools)


def planned_epochs(obs: Observations) -> np.ndarray:
    return np.array([float(r.rsplit("/", 1)[1]) for r in obs.run.astype(str)])


def fit_quiet(obs: Observations, law: str, options: dict, **kw) -> FittedLaw:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fit(obs, law, law_options=options, **kw)


def task_a(curves: Observations, max_starts: int) -> tuple[dict[str, tuple[float, np.ndarray]], np.ndarray, np.ndarray]:
    ep = planned_epochs(curves)
    train, test = curves.subset(ep <= 4), curves.subset((ep > 4) & curves.final)
    pub = published_predict(test)
    out = {"muennighoff (published constants)": (mape(pub, test.value), np.abs(pub - test.value) / test.value)}
    for label, law, opts in LAWS:
        f = fit_quiet(train, law, opts, max_starts=max_starts, drop_early_frac=CURVES_DROP_EARLY)
        pred = f.predict(test)
        out[label] = (mape(pred, test.value), np.abs(pred - test.value) / test.value)
    return out, planned_epochs(test), test.params


def task_b(curves: Observations, max_starts: int) -> tuple[dict[str, list[float]], np.ndarray]:
    sizes = np.unique(curves.params)
    out: dict[str, list[float]] = {"muennighoff (published constants)": []}
    for label, _, _ in LAWS:
        out[label] = []
    for n in sizes:
        train, test = curves.subset(curves.params != n), curves.subset((curves.params == n) & curves.final)
        out["muennighoff (published constants)"].append(mape(published_predict(test), test.value))
        for label, law, opts in LAWS:
            f = fit_quiet(train, law, opts, max_starts=max_starts, drop_early_frac=CURVES_DROP_EARLY)
            out[label].append(mape(f.predict(test), test.value))
    return out, sizes


def config_folds(obs: Observations, k: int = 5, seed: int = 1) -> np.ndarray:
    key = np.char.add(np.char.add(obs.params.astype(str), "/" + obs.seen.astype(str)), "/" + obs.unique[:, 0].astype(str))
    _, cfg = np.unique(key, return_inverse=True)
    perm = np.random.default_rng(seed).permutation(cfg.max() + 1)
    return perm[cfg] % k


def task_c(final: Observations, max_starts: int) -> tuple[dict[str, tuple[float, float, float]], int]:
    folds = config_folds(final)
    rising = rising_rows(final)
    out = {}
    pub = published_predict(final)
    ape = np.abs(pub - final.value) / final.value
    out["muennighoff (published constants)"] = (float(ape.mean()), float(np.median(ape)), float(ape[rising].mean()))
    for label, law, opts in LAWS:
        pred = np.empty(len(final))
        for k in range(5):
            test = folds == k
            f = fit_quiet(final.subset(~test), law, opts, max_starts=max_starts)
            pred[test] = f.predict(final.subset(test))
        ape = np.abs(pred - final.value) / final.value
        out[label] = (float(ape.mean()), float(np.median(ape)), float(ape[rising].mean()))
    return out, int(rising.sum())


def rising_rows(obs: Observations) -> np.ndarray:
    """Rows whose loss is above that of a run with the same model and unique data but fewer tokens."""
    out = np.zeros(len(obs), bool)
    key = np.char.add(obs.params.astype(str), "/" + obs.unique[:, 0].astype(str))
    for k in np.unique(key):
        idx = np.flatnonzero(key == k)
        idx = idx[np.argsort(obs.seen[idx], kind="stable")]
        best = np.inf
        for i in idx:
            if obs.value[i] > best * 1.01:
                out[i] = True
            best = min(best, obs.value[i])
    return out


def timing(final: Observations, n_boot: int) -> None:
    print("\n## Fit cost on the 296 final-loss rows (wall clock, this machine)")
    print("Grid points are screened in one batched evaluation; L-BFGS-B runs from the best of them.")
    print("| law | grid points | L-BFGS-B starts | wall s | CPU s | share at best |")
    print("|---|---|---|---|---|---|")
    best = None
    for label, law, opts in LAWS:
        specs = get_law(law, **opts).param_specs(final.pools, final)
        n_grid = len(_start_grid(specs, np.ones(len(specs), bool), "full"))
        for starts in sorted({min(n_grid, 64), n_grid} if n_grid <= 400 else {64}):
            t0, c0 = time.perf_counter(), time.process_time()
            f = fit_quiet(final, law, opts, max_starts=starts)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            print(f"| {label} | {n_grid} | {f.n_starts} | {dt:.2f} | {dc:.2f} | {f.share_at_best:.0%} |")
            if label == "overfit (saturating)":
                best = f
    t0, c0 = time.perf_counter(), time.process_time()
    boot = run_bootstrap(best, final, n_boot=n_boot, seed=0)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    print(f"\n{n_boot} bootstrap refits (runs resampled, overfit (saturating)): {dt:.1f} s wall, {dc:.1f} s CPU")
    for name in ("E", "alpha", "C", "gamma", "R_O"):
        lo, hi = boot.interval(name)
        print(f"  {name:>6} = {best.params[name]:.4g}  90% interval [{lo:.4g}, {hi:.4g}]")


def load_note() -> str:
    try:
        import os

        return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    except OSError:
        return "load unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-starts", type=int, default=16, help="L-BFGS-B starts per fit in the held-out tasks")
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--skip-timing", action="store_true")
    args = ap.parse_args(argv)
    root = reference_data_dir()
    if root is None or not (root / "datablations_final_losses.csv").exists():
        sys.exit("reference data (../shared/data) not found; set THRESHER_REFERENCE_DATA")
    final = load_observations(root / "datablations_final_losses.csv", "datablations-final")
    subset = load_observations(root / "datablations_final_losses.csv", "datablations-final", where={"in_paper_fit_subset": 1})
    curves = load_observations(root / "datablations_loss_curves_c4.csv", "datablations-curves")
    print("# Utility laws on datablations runs: held-out MAPE")
    print(f"Bar: published constants, in-sample: subset {mape(published_predict(subset), subset.value):.2%}, "
          f"all rows {mape(published_predict(final), final.value):.2%}\n")

    t0 = time.perf_counter()
    res_a, ep, size = task_a(curves, args.max_starts)
    print("## (a) fit on runs <= 4 epochs, predict final loss of 7/14/44-epoch runs (12 runs)")
    print("| law | MAPE | 7 ep | 14 ep | 44 ep |")
    print("|---|---|---|---|---|")
    for label, (m, ape) in res_a.items():
        cells = [f"{ape[ep == e].mean():.2%}" for e in (7, 14, 44)]
        print(f"| {label} | {m:.2%} | " + " | ".join(cells) + " |")
    print(f"({time.perf_counter() - t0:.0f} s)\n")

    t0 = time.perf_counter()
    res_b, sizes = task_b(curves, args.max_starts)
    print("## (b) leave one model size out, predict its final losses (8 runs each)")
    print("| law | mean | " + " | ".join(f"{s / 1e9:.1f}B held out" for s in sizes) + " |")
    print("|---|---|" + "---|" * len(sizes))
    for label, vals in res_b.items():
        print(f"| {label} | {np.mean(vals):.2%} | " + " | ".join(f"{v:.2%}" for v in vals) + " |")
    print(f"({time.perf_counter() - t0:.0f} s)\n")

    t0 = time.perf_counter()
    res_c, n_rising = task_c(final, args.max_starts)
    print(f"## (c) 5-fold CV by configuration, all 296 rows ({n_rising} rows with loss above an earlier point)")
    print("| law | MAPE | median APE | MAPE on rising rows |")
    print("|---|---|---|---|")
    for label, (m, med, r) in res_c.items():
        note = " (in-sample)" if "published" in label else ""
        print(f"| {label}{note} | {m:.2%} | {med:.2%} | {r:.2%} |")
    print(f"({time.perf_counter() - t0:.0f} s)")

    if not args.skip_timing:
        print(f"\n(timing taken with {load_note()})")
        timing(final, args.boot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
