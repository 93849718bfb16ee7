"""MinHash dedupe on Ray: brute-force equality, distributed components, determinism, resume, ledger."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pytest

from tests.conftest import tree_bytes
from thresher.pipeline.dedupe import DedupeJob, run_dedupe
from thresher.pipeline.dedupe.components import local_components, ls_dir, write_both_ways
from thresher.pipeline.dedupe.groups import labels_task
from thresher.pipeline.dedupe.job import _components, _Phases
from thresher.pipeline.dedupe.phases import bin_name, read_bin
from thresher.pipeline.dedupe.shingles import shingle_sets
from thresher.pipeline.ledger import STATUSES, read_ledger
from thresher.pipeline.manifest import JobConflict

pytestmark = pytest.mark.usefixtures("ray_session")

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _vocab(rng: random.Random, n: int = 2000) -> list[str]:
    return ["".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 9))) for _ in range(n)]


def make_families(root: Path, n_shards: int = 5, seed: int = 0) -> list[str]:
    """Families of near-duplicates at edit counts that straddle Jaccard 0.8, one family in every shard."""
    rng = random.Random(seed)
    vocab = _vocab(rng)
    docs: list[str] = []
    for _family in range(14):
        base = [rng.choice(vocab) for _ in range(rng.randint(60, 120))]
        docs.append(" ".join(base))
        for edits in rng.sample([0, 1, 2, 3, 4, 6, 8, 12], 3):
            w = list(base)
            for p in rng.sample(range(len(w)), edits):
                w[p] = rng.choice(vocab)
            docs.append(" ".join(w))
    for _ in range(20):  # unrelated documents
        docs.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(5, 90))))
    rng.shuffle(docs)
    spread = " ".join(rng.choice(vocab) for _ in range(80))  # a family with a member in every shard
    root.mkdir(parents=True, exist_ok=True)
    for s in range(n_shards):
        rows = docs[s::n_shards]
        w = spread.split()
        w[s * 3] = "edited"
        rows = rows + [" ".join(w)]
        with open(root / f"shard{s}.jsonl", "w") as fh:
            for i, d in enumerate(rows):
                fh.write(json.dumps({"text": d, "quality": (i * 37 % 11) / 10}) + "\n")
            if s == 2:
                fh.write("not json at all\n")
    return docs


def read_input(root: Path) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    for path in sorted(root.glob("*.jsonl")):
        for row, line in enumerate(path.read_text().splitlines()):
            try:
                texts.append(json.loads(line)["text"])
                ids.append(f"{path.name}#{row}")
            except json.JSONDecodeError:
                pass
    return ids, texts


def brute_force_groups(texts: list[str], threshold: float, ngram: int = 5) -> list[set[int]]:
    sets = [set(s.tolist()) for s in shingle_sets(texts, ngram)]
    u, v = [], []
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            if sets[i] and sets[j] and len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= threshold:
                u.append(i)
                v.append(j)
    nodes, labels = local_components(np.array(u, np.int64), np.array(v, np.int64))
    groups: dict[int, set[int]] = {}
    for n, lab in zip(nodes.tolist(), labels.tolist()):
        groups.setdefault(lab, set()).add(n)
    return sorted(groups.values(), key=min)


def result_groups(out: Path, ids: list[str]) -> list[set[int]]:
    side = pads.dataset(out / "sidecars", format="parquet").to_table().to_pylist()
    index = {d: i for i, d in enumerate(ids)}
    groups: dict[str, set[int]] = {}
    for row in side:
        if row["duplicate_of"] is not None:
            groups.setdefault(row["duplicate_of"], {index[row["duplicate_of"]]}).add(index[row["id"]])
    return sorted(groups.values(), key=min)


def job(inp: Path, out: Path, **kw) -> DedupeJob:
    kw.setdefault("num_perm", 256)
    kw.setdefault("bands", 64)  # 64 x 4: a pair at Jaccard 0.8 is a candidate with probability 1 - 1e-14
    kw.setdefault("rows", 4)
    return DedupeJob(input=str(inp), out_dir=out, method="minhash", threshold=0.8, part_bytes=4096, **kw)


@pytest.fixture(scope="module")
def families(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("families") / "in"
    make_families(root)
    return root


@pytest.fixture(scope="module")
def fresh(families, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("fresh") / "out"
    return out, run_dedupe(job(families, out, workers=2))


def test_groups_equal_brute_force_jaccard_components(families, fresh):
    out, summary = fresh
    ids, texts = read_input(families)
    expected = brute_force_groups(texts, 0.8)
    assert len(expected) >= 10 and any(len(g) >= 3 for g in expected)
    assert result_groups(out, ids) == expected
    # every member points at the first member in input order (no --keep-by)
    side = pads.dataset(out / "sidecars", format="parquet").to_table().to_pylist()
    index = {d: i for i, d in enumerate(ids)}
    for row in side:
        if row["duplicate_of"] is not None:
            group = next(g for g in expected if index[row["id"]] in g)
            assert index[row["duplicate_of"]] == min(group)
            assert row["dup_group"] == len(group)
    # LSH proposed pairs below the threshold that verification rejected
    assert summary["stats"]["candidate_pairs"] > summary["stats"]["verified_pairs"]
    hist = summary["stats"]["group_sizes"]
    assert sum(int(k) * v for k, v in hist.items()) == len(texts)
    assert {int(k): v for k, v in hist.items() if k != "1"} == {s: sum(1 for g in expected if len(g) == s)
                                                              for s in {len(g) for g in expected}}


def test_a_group_spanning_every_shard_is_one_group(families, fresh):
    out, _ = fresh
    side = pads.dataset(out / "sidecars", format="parquet").to_table().to_pylist()
    edited = {r["id"]: r for r in side if r["id"].split("#")[0] in {f"shard{s}.jsonl" for s in range(5)}}
    spread_ids = []
    for s in range(5):
        lines = (families / f"shard{s}.jsonl").read_text().splitlines()
        row = next(i for i, line in enumerate(lines) if line.startswith("{") and "edited" in json.loads(line)["text"])
        spread_ids.append(f"shard{s}.jsonl#{row}")
    rows = [edited[i] for i in spread_ids]
    assert rows[0]["duplicate_of"] is None and rows[0]["dup_group"] == 5
    assert all(r["duplicate_of"] == spread_ids[0] and r["dup_group"] == 5 for r in rows[1:])


def test_ledger_accounts_for_every_row_and_marks_duplicates(families, fresh):
    out, summary = fresh
    ids, texts = read_input(families)
    led = read_ledger(out).to_pylist()
    assert len(led) == len(texts) + 1 == summary["rows_read"]
    assert sum(summary["ledger"][s] for s in STATUSES) == summary["rows_read"]
    side = {r["id"]: r for r in pads.dataset(out / "sidecars", format="parquet").to_table().to_pylist()}
    for row in led:
        if row["status"] == "malformed":
            assert row["id"] not in side
            continue
        expect = side[row["id"]]["duplicate_of"]
        assert (row["status"] == "duplicate") == (expect is not None)
        assert row["duplicate_of"] == expect
    assert summary["ledger"]["duplicate"] == sum(1 for r in side.values() if r["duplicate_of"])


def test_same_bytes_with_other_workers_bins_and_batches(families, fresh, tmp_path):
    out, summary = fresh
    other = run_dedupe(job(families, tmp_path / "other", workers=1, bins=7, batch_rows=5))
    assert tree_bytes(out) == tree_bytes(tmp_path / "other")
    assert other["ledger"] == summary["ledger"]


def test_signature_phase_resumes_after_a_crash(families, fresh, tmp_path):
    out, _ = fresh
    with pytest.raises(RuntimeError, match="no completion marker"):
        run_dedupe(job(families, tmp_path / "resumed", workers=2, stop_after_parts=2))
    assert len(list((tmp_path / "resumed" / "signatures" / "_complete").rglob("*.json"))) == 2
    summary = run_dedupe(job(families, tmp_path / "resumed", workers=2))
    assert summary["stats"]["signature"]["parts_skipped_as_complete"] == 2
    assert tree_bytes(out) == tree_bytes(tmp_path / "resumed")


def test_global_phases_resume_without_redoing_finished_ones(families, fresh, tmp_path):
    out, _ = fresh
    with pytest.raises(RuntimeError, match="stopped after phase verify"):
        run_dedupe(job(families, tmp_path / "r", workers=2, stop_after_phase="verify"))
    bands_markers = sorted((tmp_path / "r" / "_work" / "bands" / "_complete").glob("*.json"))
    before = {p.name: p.stat().st_mtime_ns for p in bands_markers}
    summary = run_dedupe(job(families, tmp_path / "r", workers=2))
    assert {p.name: p.stat().st_mtime_ns for p in bands_markers} == before
    assert summary["stats"]["signature"]["parts_skipped_as_complete"] == summary["stats"]["signature"]["parts"]
    assert tree_bytes(out) == tree_bytes(tmp_path / "r")


def test_damaged_outputs_are_redone_and_a_changed_setting_is_refused(families, fresh, tmp_path):
    out, _ = fresh
    again = tmp_path / "again"
    shutil.copytree(out, again)
    sidecars = sorted((again / "sidecars").glob("*.parquet"))
    sidecars[1].write_bytes(sidecars[1].read_bytes()[:-50])  # truncated behind the job's back
    sorted((again / "ledger").glob("*.parquet"))[2].unlink()
    with pytest.raises(JobConflict, match=r"different dedupe job \(sample was 50000, now 10\)"):
        run_dedupe(job(families, again, workers=2, sample=10))
    run_dedupe(job(families, again, workers=1, batch_rows=7))  # how it runs may change, what it writes may not
    assert tree_bytes(again) == tree_bytes(out)


def test_keep_by_chooses_the_highest_score(families, tmp_path):
    summary = run_dedupe(job(families, tmp_path / "kb", workers=2, keep_by="quality"))
    side = pads.dataset(tmp_path / "kb" / "sidecars", format="parquet").to_table().to_pylist()
    assert summary["ledger"]["duplicate"] > 0
    quality = {}
    for path in sorted(families.glob("*.jsonl")):
        for row, line in enumerate(path.read_text().splitlines()):
            if line.startswith("{"):
                quality[f"{path.name}#{row}"] = json.loads(line)["quality"]
    members: dict[str, list[str]] = {}
    for r in side:
        if r["duplicate_of"]:
            members.setdefault(r["duplicate_of"], [r["duplicate_of"]]).append(r["id"])
    for rep, ms in members.items():
        best = max(quality[m] for m in ms)
        assert quality[rep] == best


@pytest.mark.parametrize("shape", ["path", "random"])
def test_distributed_components_equal_scipy(tmp_path, shape):
    rng = np.random.default_rng(3)
    if shape == "path":  # the worst case for label propagation: a long chain scattered over bins
        nodes = rng.permutation(400).astype(np.int64) * 1000
        u, v = nodes[:-1], nodes[1:]
    else:
        u = rng.integers(0, 3000, 1500).astype(np.int64)
        v = rng.integers(0, 3000, 1500).astype(np.int64)
        keep = u != v
        u, v = u[keep], v[keep]
    n_bins = 5
    work = tmp_path / "work"
    write_both_ways(u, v, ls_dir(work / "cc", 1), "input", n_bins)
    ctx = {"work": str(work), "bins": n_bins, "keep_by": None}
    ph = _Phases(DedupeJob(input="-", out_dir=tmp_path), work, ctx, workers=2)
    bins = [bin_name(k) for k in range(n_bins)]
    rounds = _components(ph, bins)
    for k in bins:
        labels_task(k, ctx, rounds)
    got = {}
    for k in bins:
        t = read_bin(work / "grouped", k)
        if t is not None:
            got.update(zip(t["uid"].to_pylist(), t["label"].to_pylist()))
    nodes, labels = local_components(u, v)
    assert got == dict(zip(nodes.tolist(), labels.tolist()))
    assert rounds - 1 < 20
