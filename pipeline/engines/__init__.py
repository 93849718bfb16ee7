"""Engines: two schedules of the same map work, writing the same bytes.

An engine is a module with `run(work: MapWork, pending: list[Part]) -> None` that
brings every pending part to a completion marker, using the shared steps in
`engines.steps` for the stage calls and the outputs. `tasks` runs a Ray task per
part; `data` streams parts through Ray Data with actor pools for model stages.
"""
from __future__ import annotations

from collections.abc import Callable

from thresher.metrics.errors import InputError
from thresher.pipeline.engines import data, tasks
from thresher.pipeline.engines.steps import MapWork
from thresher.pipeline.parts import Part
from thresher.pipeline.stage import Stage

RUNNERS: dict[str, Callable[[MapWork, list[Part]], None]] = {"tasks": tasks.run, "data": data.run}
ENGINES = ("auto", *RUNNERS)


def choose_engine(engine: str, stages: list[Stage]) -> str:
    """`tasks` (one Ray task per part) unless a stage loads state in `setup()`: then `data`.

    A task per part costs little besides the work itself, which matters for light
    stages (heuristics, signatures) whose work per part is under a second. Ray Data
    keeps model stages in an actor pool, so a model loads once per worker, not per part.
    """
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine != "auto":
        return engine
    return "data" if any(s.has_setup for s in stages) else "tasks"
