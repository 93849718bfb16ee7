"""Vendor price schedules: per document, per token or per sample, flat or tiered.

A tiered schedule charges each unit at the rate of the tier it falls in (like tax brackets),
so the cost of q units is a nondecreasing, piecewise-linear function of q. The purchase
optimiser relies on that monotonicity to keep every plan inside the budget.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PRICE_UNITS = ("document", "token", "sample")


@dataclass(frozen=True)
class PriceTier:
    """Units up to `upto` (cumulative; None = no limit) cost `amount` each."""

    upto: float | None
    amount: float


@dataclass(frozen=True)
class PriceSchedule:
    """Money charged for q units of a vendor's data.

    unit: what the price counts. "document" and "sample" count rows; "token" counts tokens,
        converted from rows with `tokens_per_row` (measured on the revealed sample).
    tiers: marginal prices; the last tier must be open-ended (upto=None).
    """

    unit: str
    tiers: tuple[PriceTier, ...]
    tokens_per_row: float = 1.0
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        what = f"vendor {self.name!r} price" if self.name else "price"
        if self.unit not in PRICE_UNITS:
            raise ValueError(f"{what}: unit must be one of {PRICE_UNITS}, got {self.unit!r}")
        if not self.tiers:
            raise ValueError(f"{what}: needs at least one tier")
        last = 0.0
        for i, t in enumerate(self.tiers):
            if not (np.isfinite(t.amount) and t.amount >= 0):
                raise ValueError(f"{what}: tier {i} amount must be a finite number >= 0, got {t.amount!r}")
            if t.upto is None:
                if i != len(self.tiers) - 1:
                    raise ValueError(f"{what}: only the last tier may be open-ended (upto: null)")
            elif not (np.isfinite(t.upto) and t.upto > last):
                raise ValueError(f"{what}: tier {i} 'upto' must increase, got {t.upto!r} after {last}")
            else:
                last = float(t.upto)
        if self.tiers[-1].upto is not None:
            raise ValueError(f"{what}: the last tier must be open-ended (upto: null)")
        if not (np.isfinite(self.tokens_per_row) and self.tokens_per_row > 0):
            raise ValueError(f"{what}: tokens_per_row must be positive, got {self.tokens_per_row!r}")

    @classmethod
    def flat(cls, amount: float, unit: str = "sample", tokens_per_row: float = 1.0, name: str = "") -> PriceSchedule:
        return cls(unit, (PriceTier(None, float(amount)),), tokens_per_row, name)

    @classmethod
    def from_tiers(cls, tiers: Sequence[tuple[float | None, float]], unit: str = "sample",
                   tokens_per_row: float = 1.0, name: str = "") -> PriceSchedule:
        return cls(unit, tuple(PriceTier(None if u is None else float(u), float(a)) for u, a in tiers),
                   tokens_per_row, name)

    def with_tokens_per_row(self, tokens_per_row: float) -> PriceSchedule:
        return PriceSchedule(self.unit, self.tiers, float(tokens_per_row), self.name)

    def units(self, rows: np.ndarray | float) -> np.ndarray:
        """Billed units for a number of rows."""
        rows = np.asarray(rows, dtype=np.float64)
        return rows * self.tokens_per_row if self.unit == "token" else rows

    def cost(self, rows: np.ndarray | float) -> np.ndarray | float:
        """Money for buying `rows` rows (vectorised; nondecreasing in rows)."""
        u = self.units(rows)
        total = np.zeros_like(u)
        lower = 0.0
        for t in self.tiers:
            upper = np.inf if t.upto is None else t.upto
            total = total + t.amount * np.clip(u - lower, 0.0, upper - lower)
            lower = upper
        return float(total) if total.ndim == 0 else total

    def marginal(self, rows: float) -> float:
        """Price of the next row at `rows` already bought."""
        u = float(self.units(rows))
        per = self.tokens_per_row if self.unit == "token" else 1.0
        for t in self.tiers:
            if t.upto is None or u < t.upto:
                return t.amount * per
        return self.tiers[-1].amount * per

    def max_rows(self, money: float) -> float:
        """Most rows affordable with `money` (inverse of `cost`)."""
        if money <= 0:
            return 0.0
        lower, spent = 0.0, 0.0
        for t in self.tiers:
            width = np.inf if t.upto is None else t.upto - lower
            tier_cost = t.amount * width
            if spent + tier_cost >= money or t.upto is None:
                units = lower + (np.inf if t.amount == 0 else (money - spent) / t.amount)
                break
            spent += tier_cost
            lower = t.upto
        return float(units / self.tokens_per_row) if self.unit == "token" else float(units)

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "tiers": [{"upto": t.upto, "amount": t.amount} for t in self.tiers],
            "tokens_per_row": self.tokens_per_row,
        }
