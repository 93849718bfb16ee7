"""pools.json, plan.json and frontier.json between their files and the planning objects.

The files are read and written only by `thresher.pipeline.pools` (pools.json) and
`thresher.pipeline.plans` (plan.json, frontier.json), which stamp and check each format's
version and limits; `thresher.mixtures.planning` takes pools already read and gives plans as
dicts. `pipeline/` and `mixtures/` never import each other, so the front door converts here.
"""
from __future__ import annotations

from pathlib import Path

from thresher.mixtures.planning import Frontier, Plan, Pool, pools_from_dict
from thresher.pipeline.plans import write_frontier, write_plan
from thresher.pipeline.pools import load_pools_json


def load_pools(path: str | Path) -> tuple[list[Pool], str]:
    """(pools, unit) from pools.json, or from a `thresher pools` output directory."""
    return pools_from_dict(load_pools_json(path))


def save_plan(plan: Plan, path: str | Path) -> Path:
    return write_plan(plan.to_dict(), path)


def save_frontier(frontier: Frontier, path: str | Path) -> Path:
    return write_frontier(frontier.to_dict(), path)
