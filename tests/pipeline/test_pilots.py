"""Pilot runs: one Ray task per (pool, fraction), results independent of the number of workers."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.pipeline.test_pools import make_scored_job
from thresher.mixtures.observations import load_observations
from thresher.pipeline.pilots import OBSERVATIONS, PILOT_COLUMNS, _pool_texts, pilot_run, run_pilots
from thresher.pipeline.pools import PoolSpec, build_pools

FRACTIONS = [0.5, 1.0, 2.0]


@pytest.fixture(scope="module")
def pools(tmp_path_factory):
    root = tmp_path_factory.mktemp("pilots")
    scored, _ = make_scored_job(root, n_docs=80)
    build_pools(scored, root / "pools", PoolSpec(score="quality", edges=(0.5,), names=("low", "high")))
    return root / "pools"


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]


def test_pilot_observations_do_not_depend_on_the_number_of_workers(pools, tmp_path, ray_session):
    logs: list[str] = []
    paths = [run_pilots(pools, tmp_path / f"fit{w}", FRACTIONS, holdout=0.2, order=3, seed=0, workers=w, quiet=True,
                        log=logs.append) for w in (1, 2)]
    assert all(p.name == OBSERVATIONS for p in paths)
    one, two = read_rows(paths[0]), read_rows(paths[1])
    assert one == two and len(one) == 2 * len(FRACTIONS)
    assert [(r["pool"], float(r["fraction"])) for r in one] == [(p, f) for p in ("high", "low") for f in FRACTIONS]
    assert sum("pilot  6/6" in line for line in logs) == 2  # progress is logged as each run finishes
    # a run's result is what the same pilot gives in this process
    texts, heldout = _pool_texts(pools, 0.2, None, 0)
    local = pilot_run("high", 1.0, texts["high"], heldout, 3, 0)
    row = next(r for r in one if r["run"] == "high@1")
    assert float(row["value"]) == local["value"] and float(row["seen"]) == local["seen"]
    obs = load_observations(paths[0], PILOT_COLUMNS)  # the file is what `fit` reads
    assert len(obs.value) == len(one) and set(obs.pools) == {"high", "low"}


def test_pilot_runs_need_held_out_documents(pools, tmp_path):
    with pytest.raises(ValueError, match="held-out documents"):
        run_pilots(pools, tmp_path / "fit", FRACTIONS, holdout=0.0, order=3)
