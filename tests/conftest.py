"""Shared fixtures: one local Ray per test session (start-up costs seconds)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs property tests on a fixed sequence of examples (HYPOTHESIS_PROFILE=ci in .ci/run), so a
# run is reproducible; locally they explore new examples each time and replay saved failures.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

os.environ.setdefault("RAY_DEDUP_LOGS", "1")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
# Tests share 2 cores with Ray's workers: spinning BLAS/OpenMP thread pools on top of them
# make scikit-learn and numpy fits orders of magnitude slower, so each process gets one thread.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


@pytest.fixture(scope="session")
def ray_session():
    import ray

    from thresher.pipeline.cluster import ensure_ray

    if not ray.is_initialized():
        # workers import test modules too (stages defined in tests), so they get the repository on their path
        repo = str(Path(__file__).resolve().parent.parent)
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": repo}})
    ensure_ray(quiet=True)
    yield ray
    ray.shutdown()


def tree_bytes(root: Path, subdirs: tuple[str, ...] = ("sidecars", "ledger", "malformed", "shards")) -> dict[str, bytes]:
    """Every output file's bytes, keyed by relative path, for identical-output checks."""
    out = {}
    for sub in subdirs:
        base = root / sub
        if base.is_dir():
            for p in sorted(base.rglob("*.parquet")):
                out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out
