"""plan.json and frontier.json: the one reader and the one writer of each.

A plan is data (ARCHITECTURE.md): `thresher.mixtures.planning` chooses it and hands over a
dict, `thresher.jobs` writes it here, and `materialize` reads it back here. The writer stamps
the format tag; the reader checks the tag, the size limit and the fields materialize relies
on, once. Plans written before the tag existed (no "format" field) still read.

    {"format": "thresher.plan/1", "budget": 6.4e8, "unit": "tokens",
     "pools": [{"name": "high", "weight": 0.7, "seen": 4.5e8, "epochs": 1.3, ...}, ...],
     "predicted": {...}, "law": {...}, ...}

A frontier holds one plan per budget (each stamped as a plan) and the nested unions' values.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from thresher.metrics.errors import InputError
from thresher.metrics.files import JsonFormat, MiB
from thresher.pipeline.outputs import load_format, write_text_atomic
from thresher.pipeline.storage import place

PLAN = JsonFormat("thresher.plan", 1, "plan", max_bytes=64 * MiB, legacy=True)
FRONTIER = JsonFormat("thresher.frontier", 1, "frontier", max_bytes=256 * MiB)
MAX_PLAN_POOLS = 100_000  # pool rows a plan may list
UNITS = ("tokens", "samples")


class PlanError(InputError):
    """A plan file is not a plan, or does not fit the pools it is materialized over; the message names the file."""


def _dump(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=1) + "\n"


def stamped_plan(plan: Mapping[str, Any]) -> dict[str, Any]:
    """A plan dict as its file holds it: the format tag first."""
    return {**PLAN.stamp(), **{k: v for k, v in plan.items() if k != "format"}}


def write_plan(plan: Mapping[str, Any], path: str | Path) -> Path:
    """Write plan.json atomically (the dict `Plan.to_dict()` gives)."""
    path = place(path)
    write_text_atomic(_dump(stamped_plan(plan)), path)
    return path


def write_frontier(frontier: Mapping[str, Any], path: str | Path) -> Path:
    """Write frontier.json atomically (the dict `Frontier.to_dict()` gives)."""
    path = place(path)
    doc = {**FRONTIER.stamp(), **{k: v for k, v in frontier.items() if k != "format"}}
    doc["plans"] = [stamped_plan(p) for p in frontier.get("plans", [])]
    write_text_atomic(_dump(doc), path)
    return path


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_plan(plan: Any, source: str) -> dict[str, Any]:
    """The fields materialize relies on: a positive budget, and pool rows with a name and a weight."""
    plan = dict(PLAN.check(plan, source))
    if not isinstance(plan.get("pools"), list) or "budget" not in plan:
        raise PlanError(f"{source}: not a plan (expected \"budget\" and a \"pools\" list, as `thresher plan` writes)")
    if not (_number(plan["budget"]) and plan["budget"] > 0):
        raise PlanError(f"{source}: budget must be a positive number, got {plan['budget']!r}")
    if plan.get("unit", "tokens") not in UNITS:
        raise PlanError(f"{source}: unit must be one of {', '.join(UNITS)}, got {plan['unit']!r}")
    if len(plan["pools"]) > MAX_PLAN_POOLS:
        raise PlanError(f"{source}: {len(plan['pools'])} pool rows, over the limit of {MAX_PLAN_POOLS}")
    for i, row in enumerate(plan["pools"]):
        if not isinstance(row, Mapping):
            raise PlanError(f"{source}: pools[{i}] is not an object with a name and a weight")
        for key in ("name", "weight"):
            if key not in row:
                raise PlanError(f"{source}: pools[{i}] has no {key!r}")
        if not isinstance(row["name"], str) or not row["name"]:
            raise PlanError(f"{source}: pools[{i}]: name must be a non-empty string, got {row['name']!r}")
        for key in ("weight", "seen", "epochs"):
            if key in row and not (_number(row[key]) and row[key] >= 0):
                raise PlanError(f"{source}: pools[{i}]: {key} must be a number >= 0, got {row[key]!r}")
    return plan


def read_plan(path: str | Path) -> dict[str, Any]:
    """Read and check plan.json (size limit, format version, fields)."""
    try:
        doc = load_format(PLAN, path, missing="write one with `thresher plan` or `thresher run`")
    except InputError as exc:
        raise PlanError(str(exc)) from None
    return check_plan(doc, str(path))


def read_frontier(path: str | Path) -> dict[str, Any]:
    """Read and check frontier.json; every plan in it is checked as a plan."""
    doc = dict(load_format(FRONTIER, path, missing="write one with `thresher frontier` or `thresher run`"))
    if not isinstance(doc.get("budgets"), list) or not isinstance(doc.get("plans"), list):
        raise PlanError(f"{path}: not a frontier (expected \"budgets\" and \"plans\" lists)")
    doc["plans"] = [check_plan(p, f"{path}: plans[{i}]") for i, p in enumerate(doc["plans"])]
    return doc
