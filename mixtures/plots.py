"""Figures for fits and plans, drawn with matplotlib's Agg canvas (no display, no pyplot state)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np

from thresher.mixtures.fitted_law import FittedLaw
from thresher.mixtures.planning import Frontier, Plan, Pool


def _figure(width: float, height: float, ncols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _save(fig, path: str | Path | IO[bytes]) -> Path | IO[bytes]:
    """Save as PNG to a path, or to a binary file object (the caller uploads its bytes: a figure for a URI)."""
    if hasattr(path, "write"):
        fig.savefig(path, dpi=120, format="png")
        return path
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_frontier(fr: Frontier, path: str | Path, title: str | None = None) -> Path:
    """Predicted value against budget: every nested union, and the best plan with its interval."""
    fig, (ax,) = _figure(7, 4.5)
    for label, values in fr.unions.items():
        ax.plot(fr.budgets, values, marker=".", lw=1, alpha=0.7, label=label)
    best = np.array([p.predicted for p in fr.plans])
    ax.plot(fr.budgets, best, color="black", lw=2, marker="o", label="best plan")
    lows = [p.interval[0] if p.interval else np.nan for p in fr.plans]
    highs = [p.interval[1] if p.interval else np.nan for p in fr.plans]
    if np.isfinite(lows).any():
        ax.fill_between(fr.budgets, lows, highs, color="black", alpha=0.12, label="plan interval")
    for flip in fr.flips():
        ax.axvline(flip["budget"], color="grey", ls=":", lw=1)
    unit = fr.plans[0].unit if fr.plans else "seen"
    ax.set_xscale("log")
    ax.set_xlabel(f"budget ({unit} seen)")
    ax.set_ylabel("predicted value")
    ax.set_title(title or "Curation frontier: best plan per budget")
    ax.legend(fontsize=7)
    return _save(fig, path)


def draw_utility_decay(ax, ax2, fitted: FittedLaw, pools: Sequence[Pool], max_epochs: float, params: float | None = None,
                       sizes: dict[str, float] | None = None,
                       observed: dict[str, tuple[Sequence[float], Sequence[float]]] | None = None) -> None:
    """Each pool alone on `ax` (value against epochs, with observed runs as dots) and, on `ax2`,
    the gain each further whole epoch buys. `sizes` overrides a pool's unique size (pilots that
    trained on part of a pool); `observed` maps a pool to (epochs, values) of its runs."""
    epochs = np.linspace(0.05, max_epochs, 400)
    whole = np.arange(1, int(max_epochs) + 1, dtype=np.float64)
    for i, pool in enumerate(pools):
        if pool.name not in fitted.pools:
            raise ValueError(f"pool {pool.name!r} is not in the fit (fitted pools: {list(fitted.pools)})")
        j = fitted.pools.index(pool.name)
        size = (sizes or {}).get(pool.name, pool.unique)
        w = np.zeros((1, len(fitted.pools)))
        w[0, j] = 1.0
        unique = np.ones((1, len(fitted.pools)))
        unique[0, j] = size

        def value(ep: np.ndarray, w: np.ndarray = w, unique: np.ndarray = unique, size: float = size) -> np.ndarray:
            return fitted.predict_arrays(np.repeat(w, len(ep), 0), np.repeat(unique, len(ep), 0), ep * size, params)

        color = f"C{i}"
        ax.plot(epochs, value(epochs), color=color, label=pool.name)
        if observed and pool.name in observed:
            ax.scatter(*observed[pool.name], color=color, s=18, zorder=3)
        at = value(whole)
        ax2.plot(whole[1:], -np.diff(at), marker="o", ms=3, color=color, label=pool.name)  # epoch 2 on: repeats only
    ax.set_xlabel("epochs over the pool")
    ax.legend(fontsize=7)
    ax2.axhline(0, color="grey", lw=0.8)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("improvement bought by this epoch")


def plot_utility_decay(fitted: FittedLaw, pools: Sequence[Pool], path: str | Path, params: float | None = None,
                       max_epochs: float = 20.0) -> Path:
    """Each pool alone: predicted value against epochs, and the gain each further epoch buys."""
    fig, (ax, ax2) = _figure(10, 4, ncols=2)
    draw_utility_decay(ax, ax2, fitted, pools, max_epochs, params)
    ax.set_ylabel("predicted value")
    ax.set_title("Each pool alone")
    ax2.set_title("Utility decay with repetition (negative: the epoch hurts)")
    return _save(fig, path)


def plot_plan(p: Plan, path: str | Path) -> Path:
    """Weights and epochs per pool of a plan, with its predicted value."""
    rows = p.pool_rows()
    fig, (ax, ax2) = _figure(9, 0.5 + 0.5 * max(len(rows), 2), ncols=2)
    names = [r["name"] for r in rows]
    ax.barh(names, [r["weight"] for r in rows], color="tab:blue")
    ax.set_xlabel("weight")
    ax.set_xlim(0, 1)
    ax2.barh(names, [r["epochs"] for r in rows], color="tab:orange")
    ax2.set_xlabel("epochs")
    ival = f" [{p.interval[0]:.4g}, {p.interval[1]:.4g}]" if p.interval else ""
    fig.suptitle(f"Plan for {p.budget:.3g} {p.unit}: predicted {p.predicted:.4g}{ival} ({p.label})", fontsize=9)
    return _save(fig, path)
