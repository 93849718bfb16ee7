"""pools.json, plan.json and frontier.json between their files and the planning objects.

The files are read and written only by `thresher.pipeline.pools` (pools.json) and
`thresher.pipeline.plans` (plan.json, frontier.json), which stamp and check each format's
version and limits; `thresher.mixtures.planning` takes pools already read and gives plans as
dicts. `pipeline/` and `mixtures/` never import each other, so the front door converts here.
"""
from __future__ import annotations

from pathlib import Path

from thresher.jobs.cli import UsageError
from thresher.mixtures.planning import Frontier, Plan, Pool, pools_from_dict
from thresher.pipeline.plans import write_frontier, write_plan
from thresher.pipeline.pools import load_pools_json
from thresher.pipeline.storage import Location, place

POOLS_FILE = "pools.json"
_HOW = "pass the --out directory of `thresher pools`, or its pools.json"


def pools_file(path: str | Path) -> Path | Location:
    """The pools.json that `--pools PATH` means: PATH itself, or PATH/pools.json for a `thresher pools` folder.

    plan and frontier took only the file and materialize only the folder; both forms now
    work in each, and a missing one is one line naming the path (a UsageError), not a
    traceback from deep in a reader.
    """
    given = place(path)
    if given.is_dir():
        if not (given / POOLS_FILE).is_file():
            raise UsageError(f"--pools {path}: the folder holds no {POOLS_FILE}; {_HOW}")
        return given / POOLS_FILE
    if not given.is_file():
        raise UsageError(f"--pools {path}: no such file or folder; {_HOW}")
    return given


def pools_folder(path: str | Path) -> Path | Location:
    """The `thresher pools` output folder that `--pools PATH` means, given it or its pools.json.

    materialize reads members/ next to pools.json, so a pools file under another name
    (a hand-written one for `thresher plan`) cannot stand for the folder.
    """
    file = pools_file(path)
    if file.name != POOLS_FILE:
        raise UsageError(f"--pools {path}: materialize needs the --out directory of `thresher pools` (pools.json "
                         "and members/) or the pools.json in it")
    return file.parent


def load_pools(path: str | Path) -> tuple[list[Pool], str]:
    """(pools, unit) from pools.json, or from a `thresher pools` output directory."""
    return pools_from_dict(load_pools_json(pools_file(path)))


def save_plan(plan: Plan, path: str | Path) -> Path:
    return write_plan(plan.to_dict(), path)


def save_frontier(frontier: Frontier, path: str | Path) -> Path:
    return write_frontier(frontier.to_dict(), path)
