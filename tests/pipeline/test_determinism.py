"""Determinism: the same input and seed give the same bytes, across reruns, worker counts and processes."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import tree_bytes
from tests.docs import CLEAN
from tests.pipeline.test_bad_input import make_broken_corpus
from thresher.pipeline.dedupe import DedupeJob, run_dedupe
from thresher.pipeline.executor import MapJob, run_map_job
from thresher.pipeline.registry import make_scorer

REPO = Path(__file__).resolve().parents[2]


def digest(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("det") / "in"
    make_broken_corpus(root, huge=False)
    extra = root / "dups"
    extra.mkdir()
    lines = []
    for i in range(120):  # exact copies spread over two shards, so groups cross parts
        lines.append(json.dumps({"text": CLEAN if i % 3 == 0 else f"document {i % 40} of a small family"}))
    (extra / "a.jsonl").write_text("\n".join(lines[:60]) + "\n")
    (extra / "b.jsonl").write_text("\n".join(lines[60:]) + "\n")
    return root


def score(inp: Path, out: Path, **kw) -> dict:
    stages = [make_scorer(n) for n in ("gopher_quality", "gopher_repetition", "c4")]
    return run_map_job(MapJob(input=str(inp), out_dir=out, stages=stages, quiet=True, part_bytes=32768, **kw))


def test_scores_of_a_broken_corpus_are_identical_across_workers_batches_and_reruns(corpus, tmp_path, ray_session):
    a = score(corpus, tmp_path / "w1", workers=1, batch_rows=4096)
    b = score(corpus, tmp_path / "w2", workers=2, batch_rows=13)
    files_a = tree_bytes(tmp_path / "w1")
    assert any(k.startswith("malformed/") for k in files_a) and any(k.startswith("sidecars/") for k in files_a)
    assert digest(files_a) == digest(tree_bytes(tmp_path / "w2"))
    assert a["content_hash"] == b["content_hash"]
    again = score(corpus, tmp_path / "w1")  # a rerun over a finished job changes nothing
    assert again["parts_skipped_as_complete"] == again["parts"]
    assert digest(tree_bytes(tmp_path / "w1")) == digest(files_a)


def test_exact_dedupe_is_identical_across_worker_counts_and_bins(corpus, tmp_path, ray_session):
    def run(out: Path, workers: int, bins: int | None) -> tuple[dict, str]:
        s = run_dedupe(DedupeJob(input=str(corpus), out_dir=out, method="exact", workers=workers, bins=bins, quiet=True))
        return s, digest(tree_bytes(out, ("sidecars", "ledger")))

    s1, d1 = run(tmp_path / "one", 1, None)
    s2, d2 = run(tmp_path / "two", 2, 5)
    assert s1["ledger"]["duplicate"] > 0 and s1["ledger"]["malformed"] > 0
    assert s1["ledger"] == s2["ledger"] and s1["groups"] == s2["groups"]
    assert d1 == d2


PLAN_SCRIPT = """
import hashlib, json, sys
sys.path.insert(0, {repo!r})
from thresher.mixtures import plan
from thresher.mixtures.planning import Pool
from tests.mixtures.test_planning import NAMES, goyal_fit
fitted = goyal_fit(bootstrap=True)
pools = [Pool(n, 12.8e6 * (1 + i)) for i, n in enumerate(NAMES)]
p = plan(fitted, pools, 640e6, seed=3, n_runner_ups=3, max_epochs=8)
print(hashlib.sha256(json.dumps(p.to_dict()).encode()).hexdigest())
"""


def test_plans_are_identical_across_runs_and_processes():
    script = PLAN_SCRIPT.format(repo=str(REPO))
    hashes = set()
    for seed in ("0", "1", "4242"):  # a different string-hash seed must not change the plan
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=REPO,
                             timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        hashes.add(out.stdout.strip())
    assert len(hashes) == 1 and len(hashes.pop()) == 64
