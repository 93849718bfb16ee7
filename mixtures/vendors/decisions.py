"""Buy, skip or ask for more: read off a gain's bootstrap distribution.

- buy: the whole interval clears the threshold (min_gain);
- skip: the whole interval falls short of it (or sits on it: a sure zero is no gain);
- ask: the interval straddles it. The interval half-width shrinks roughly as 1/sqrt(rows
  revealed), so the sample that would settle the question has s * (half_width / distance)^2
  rows, distance being how far the point estimate sits from the threshold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DECISIONS = ("buy", "skip", "ask")


@dataclass(frozen=True)
class GainSummary:
    mean: float
    low: float
    high: float
    p_helps: float

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "p_helps": self.p_helps}


def summarise(point: float, samples: np.ndarray, *, threshold: float = 0.0, level: float = 0.9) -> GainSummary:
    """Point estimate, percentile interval at `level`, and P(gain > threshold) over replicates."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    s = np.asarray(samples, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return GainSummary(float(point), float("nan"), float("nan"), float("nan"))
    q = (1.0 - level) / 2.0
    return GainSummary(float(point), float(np.quantile(s, q)), float(np.quantile(s, 1.0 - q)),
                       float(np.mean(s > threshold)))


def decide(summary: GainSummary, threshold: float = 0.0) -> str:
    if summary.low > threshold:
        return "buy"
    if summary.high <= threshold:
        return "skip"
    return "ask"


def more_samples_needed(summary: GainSummary, revealed: int, *, threshold: float = 0.0,
                        limit: int | None = None) -> int | None:
    """Extra revealed rows that would likely shrink the interval off the threshold.

    None when the point estimate sits on the threshold (no sample size settles a zero gain)
    or the answer exceeds `limit` (e.g. the vendor's whole stock).
    """
    if revealed < 1:
        raise ValueError("revealed must be at least 1")
    distance = abs(summary.mean - threshold)
    half = (summary.high - summary.low) / 2.0
    if not np.isfinite(half) or half <= 0:
        return 0
    if distance <= 1e-12 * max(1.0, half):
        return None
    needed = revealed * (half / distance) ** 2
    extra = max(1, math.ceil(needed - revealed))
    if limit is not None and extra > limit:
        return None
    return extra
