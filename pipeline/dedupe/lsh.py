"""Choosing LSH bands x rows for a Jaccard threshold.

A pair with Jaccard s shares at least one band with probability
1 - (1 - s**r)**b. Integrating that curve below the threshold gives the expected
false-positive mass, and its complement above gives the false-negative mass; the
(b, r) with b*r <= num_perm minimising their weighted sum is chosen. When exact
verification removes false positives later, recall is worth more than candidate
precision, so the weights tilt towards false negatives.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_GRID = 2001


@dataclass(frozen=True)
class LSHParams:
    bands: int
    rows: int
    false_positive: float
    false_negative: float

    def candidate_probability(self, s: float | np.ndarray) -> np.ndarray:
        """P(a pair with Jaccard s becomes a candidate)."""
        return 1.0 - (1.0 - np.asarray(s, float) ** self.rows) ** self.bands


def _integrals(threshold: float, bands: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo = np.linspace(0.0, threshold, _GRID)
    hi = np.linspace(threshold, 1.0, _GRID)
    p_lo = 1.0 - (1.0 - lo[None, :] ** rows[:, None]) ** bands[:, None]
    p_hi = 1.0 - (1.0 - hi[None, :] ** rows[:, None]) ** bands[:, None]
    fp = np.trapezoid(p_lo, lo, axis=1)
    fn = np.trapezoid(1.0 - p_hi, hi, axis=1)
    return fp, fn


def choose_bands(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> LSHParams:
    """(bands, rows) minimising fp_weight*FP + fn_weight*FN; ties go to fewer permutations used."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    if int(num_perm) != num_perm or num_perm < 2:
        raise ValueError(f"num_perm must be an integer >= 2, got {num_perm}")
    if fp_weight < 0 or fn_weight < 0 or fp_weight + fn_weight == 0:
        raise ValueError(f"weights must be non-negative and not both zero, got {fp_weight}, {fn_weight}")
    pairs = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]
    bands = np.array([p[0] for p in pairs], float)
    rows = np.array([p[1] for p in pairs], float)
    fp, fn = _integrals(float(threshold), bands, rows)
    cost = fp_weight * fp + fn_weight * fn
    order = np.lexsort((bands * rows, np.round(cost, 12)))
    i = int(order[0])
    return LSHParams(int(bands[i]), int(rows[i]), float(fp[i]), float(fn[i]))
