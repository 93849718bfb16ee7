"""Pilot runs: the proxy trained on owned data alone and with growing slices of a vendor sample.

A pilot with k novel vendor rows next to a subsample of m owned rows stands for a purchase of
k * (owned / m) novel rows next to all owned rows (the vendor's share of the training set is
what matters). Slices are nested prefixes of a random order of the sample, one order per
repeat; repeat r of every vendor uses the same owned subsample and seed as baseline run r,
so gains are paired differences and most proxy noise cancels.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thresher.mixtures.observation_files import read_table
from thresher.mixtures.vendors.proxies import Proxy, concat, size, take


@dataclass
class PilotRuns:
    """Per-run, per-validation-row scores of the baseline and of each slice level.

    levels: novel vendor rows each level stands for (purchase-equivalent), increasing.
    base_num, base_den: (R0, n). num, den: one (R_l, n) array per level.
    paired: run r of every level pairs with baseline run r (R_l == R0).
    sign: +1 when a higher metric is better, -1 for losses.
    """

    levels: np.ndarray
    base_num: np.ndarray
    base_den: np.ndarray
    num: list[np.ndarray]
    den: list[np.ndarray]
    paired: bool
    sign: float = 1.0
    metric: str = "metric"

    def __post_init__(self) -> None:
        self.levels = np.asarray(self.levels, dtype=np.float64)
        if self.levels.ndim != 1 or self.levels.size == 0 or (self.levels <= 0).any():
            raise ValueError("pilot levels must be a non-empty list of positive quantities")
        if len(self.num) != self.levels.size or len(self.den) != self.levels.size:
            raise ValueError("one run matrix per pilot level is needed")
        n = self.base_num.shape[1]
        for a in self.num + self.den:
            if a.ndim != 2 or a.shape[1] != n or a.shape[0] == 0:
                raise ValueError("every level needs at least one run scored on the same validation rows")
        if self.paired and any(a.shape[0] != self.base_num.shape[0] for a in self.num):
            raise ValueError("paired runs need as many runs per level as baseline runs")

    def base_metric(self) -> float:
        return float(np.mean(self.base_num.sum(1) / self.base_den.sum(1)))

    def level_gains(self) -> np.ndarray:
        """Mean gain (sign-adjusted) at each level over the runs, all validation rows weighted 1."""
        base = self.base_num.sum(1) / self.base_den.sum(1)
        out = []
        for num, den in zip(self.num, self.den):
            m = num.sum(1) / den.sum(1)
            out.append(np.mean(m - base) if self.paired else m.mean() - base.mean())
        return self.sign * np.array(out)


def run_pilots(
    proxy: Proxy,
    owned: Any,
    vendor_novel: Any,
    *,
    fractions: Sequence[float] = (0.25, 0.5, 1.0),
    repeats: int = 4,
    max_train: int = 5000,
    seed: int = 0,
    baseline: tuple[np.ndarray, np.ndarray] | None = None,
) -> PilotRuns:
    """Train the proxy on owned (sub)samples with and without nested slices of the novel vendor rows.

    `baseline` reuses the owned-only runs of an earlier call with the same owned data, seed and
    repeats (they do not depend on the vendor).
    """
    fr = np.unique(np.asarray(fractions, dtype=np.float64))
    if fr.size == 0 or (fr <= 0).any() or (fr > 1).any():
        raise ValueError(f"pilot fractions must lie in (0, 1], got {list(fractions)}")
    if repeats < 1 or max_train < 2:
        raise ValueError("repeats must be >= 1 and max_train >= 2")
    n_own, s = size(owned), size(vendor_novel)
    if n_own == 0:
        raise ValueError("owned data is empty")
    if s == 0:
        raise ValueError("no novel vendor rows to pilot")
    m = min(n_own, max_train)
    scale = n_own / m
    ks = np.unique(np.maximum(1, np.round(fr * s).astype(int)))
    rng = np.random.default_rng(seed)
    owned_idx = [np.arange(n_own) if m == n_own else np.sort(np.random.default_rng(seed + 7919 * r).choice(n_own, m, replace=False))
                 for r in range(repeats)]
    if baseline is None:
        baseline = baseline_runs(proxy, owned, repeats=repeats, max_train=max_train, seed=seed)
    base_num, base_den = baseline
    num = [np.empty((repeats, base_num.shape[1])) for _ in ks]
    den = [np.empty((repeats, base_num.shape[1])) for _ in ks]
    for r in range(repeats):
        order = rng.permutation(s)
        own_r = take(owned, owned_idx[r])
        for li, k in enumerate(ks):
            train = concat(own_r, take(vendor_novel, order[:k]))
            num[li][r], den[li][r] = proxy.score(train, seed + r)
    return PilotRuns(ks * scale, base_num, base_den, num, den, paired=True, sign=1.0, metric=proxy.metric)


def baseline_runs(proxy: Proxy, owned: Any, *, repeats: int = 4, max_train: int = 5000,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Owned-only runs, shared by every vendor (same subsamples and seeds as `run_pilots`)."""
    n_own = size(owned)
    m = min(n_own, max_train)
    rows_num, rows_den = [], []
    for r in range(repeats):
        idx = np.arange(n_own) if m == n_own else np.sort(np.random.default_rng(seed + 7919 * r).choice(n_own, m, replace=False))
        nu, de = proxy.score(take(owned, idx), seed + r)
        rows_num.append(nu)
        rows_den.append(de)
    return np.vstack(rows_num), np.vstack(rows_den)


PILOT_COLUMNS = ("vendor", "quantity", "metric")


def read_pilot_csv(path: str | Path, *, goal: str = "max") -> dict[str, PilotRuns]:
    """The user's own pilot runs: one row per training run.

    Columns: `vendor` (empty or "none" for owned-only baseline runs), `quantity` (vendor rows
    added; 0 for baselines), `metric`. Other columns are ignored. goal "max" (accuracy) or "min"
    (loss). The table is read like any observation table (CSV or Parquet, within its limits);
    bad rows raise ValueError naming the line.
    """
    if goal not in ("min", "max"):
        raise ValueError(f"goal must be 'min' or 'max', got {goal!r}")
    path = Path(path)
    table = read_table(path)
    missing = [c for c in PILOT_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: missing columns {missing} (need {list(PILOT_COLUMNS)})")
    base: list[float] = []
    runs: dict[str, dict[float, list[float]]] = {}
    cells = zip(*(table.column(c).to_pylist() for c in PILOT_COLUMNS))
    for line, (vendor, quantity, metric) in enumerate(cells, start=2):
        vendor = "" if vendor is None else str(vendor).strip()
        try:
            q = float(quantity)
            value = float(metric)
        except (TypeError, ValueError):
            raise ValueError(f"{path}, line {line}: quantity and metric must be numbers") from None
        if not (np.isfinite(q) and np.isfinite(value)) or q < 0:
            raise ValueError(f"{path}, line {line}: quantity must be >= 0 and metric finite")
        if vendor.lower() in ("", "none") or q == 0:
            base.append(value)
        else:
            runs.setdefault(vendor, {}).setdefault(q, []).append(value)
    if not base:
        raise ValueError(f"{path}: no baseline runs (rows with quantity 0 or an empty vendor)")
    out: dict[str, PilotRuns] = {}
    b = np.array(base)[:, None]
    for vendor, by_q in runs.items():
        qs = sorted(by_q)
        out[vendor] = PilotRuns(
            np.array(qs), b, np.ones_like(b),
            [np.array(by_q[q])[:, None] for q in qs], [np.ones((len(by_q[q]), 1)) for q in qs],
            paired=False, sign=1.0 if goal == "max" else -1.0, metric="metric",
        )
    return out
