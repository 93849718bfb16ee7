"""Pools from sidecars: quantile and threshold cuts, exclusions, token sums, and pools.json for planning."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thresher.jobs.planning_files import load_pools
from thresher.pipeline.pools import PoolError, PoolSpec, build_pools, read_members
from thresher.pipeline.reader import ReadOptions
from thresher.pipeline.shards import discover, plan_parts


def vouch(job_dir: Path, key: str, subdir: str) -> None:
    """The completion marker a job writes for part `key` (readers trust only outputs a marker names)."""
    from thresher.pipeline.outputs import file_sha256, marker_path

    marker = marker_path(job_dir, key)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"outputs": {subdir: file_sha256(job_dir / subdir / f"{key}.parquet")}}))


def make_scored_job(root: Path, n_docs: int = 60, n_shards: int = 2, seed: int = 0) -> tuple[Path, pa.Table]:
    """Real jsonl shards plus a hand-made score output (job.json + sidecars) with known scores and word counts."""
    rng = np.random.default_rng(seed)
    shards = root / "shards"
    shards.mkdir(parents=True)
    rows = []
    for s in range(n_shards):
        with open(shards / f"s{s}.jsonl", "w") as fh:
            for i in range(n_docs // n_shards):
                words = int(rng.integers(5, 40))
                text = " ".join(f"w{s}_{i}_{j}" for j in range(words))
                fh.write(json.dumps({"text": text, "source": f"src{s}", "n": i}) + "\n")
                rows.append({"id": f"s{s}.jsonl#{i}", "source": f"src{s}", "gopher_words": words,
                             "quality": float(rng.random()), "ok": bool(rng.random() > 0.2)})
    _, found = discover(shards)
    parts = plan_parts(found)
    scored = root / "scored"
    table = pa.Table.from_pylist(rows)
    for p in parts:
        sub = table.filter(pa.compute.starts_with(table["id"], p.shard_id + "#"))
        path = scored / "sidecars" / f"{p.key}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(sub, path)
        vouch(scored, p.key, "sidecars")
    job = {"fingerprint": {"kind": "score"}, "parts": [p.key for p in parts],
           "part_specs": [json.loads(p.to_json()) for p in parts], "read": asdict(ReadOptions(carry=("source",))),
           "input": str(shards)}
    (scored / "job.json").write_text(json.dumps(job))
    return scored, table


def test_quantile_pools_split_by_score_and_sum_tokens(tmp_path):
    scored, table = make_scored_job(tmp_path)
    spec = PoolSpec(score="quality", method="quantiles", edges=(0.5,), names=("low", "high"))
    result = build_pools(scored, tmp_path / "pools", spec)
    q = np.asarray(table["quality"].to_pylist())
    words = np.asarray(table["gopher_words"].to_pylist())
    cut = np.quantile(q, 0.5, method="lower")
    by_name = {p["name"]: p for p in result["pools"]}
    assert by_name["high"]["documents"] == int((q >= cut).sum())
    assert by_name["low"]["documents"] == int((q < cut).sum())
    assert by_name["high"]["unique"] == float(words[q >= cut].sum())
    assert by_name["low"]["score_high"] < by_name["high"]["score_low"]
    members = read_members(tmp_path / "pools")
    assert members.num_rows == len(q) and set(members["pool"].to_pylist()) == {"low", "high"}
    ids_high = set(table.filter(pa.array(q >= cut))["id"].to_pylist())
    assert set(members.filter(pa.compute.equal(members["pool"], "high"))["id"].to_pylist()) == ids_high
    # pools.json is what the planner reads
    pools, unit = load_pools(tmp_path / "pools" / "pools.json")
    assert unit == "tokens" and [p.name for p in pools] == ["low", "high"]


def test_thresholds_where_and_duplicates_exclude_documents(tmp_path):
    scored, table = make_scored_job(tmp_path)
    dedupe = tmp_path / "dedupe"
    ids = table["id"].to_pylist()
    dup_of = [ids[0] if i % 7 == 3 else None for i in range(len(ids))]
    for f in (scored / "sidecars").rglob("*.parquet"):
        key_ids = pq.read_table(f)["id"].to_pylist()
        rel = f.relative_to(scored / "sidecars")
        (dedupe / "sidecars" / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"id": key_ids, "duplicate_of": [dup_of[ids.index(i)] for i in key_ids]}),
                       dedupe / "sidecars" / rel)
        vouch(dedupe, rel.as_posix()[: -len(".parquet")], "sidecars")
    (dedupe / "job.json").write_text("{}")
    spec = PoolSpec(score="quality * 10", method="thresholds", edges=(3.0, 7.0), where="ok", unit="samples")
    result = build_pools(scored, tmp_path / "pools", spec, dedupe=dedupe)
    q = np.asarray(table["quality"].to_pylist()) * 10
    ok = np.asarray(table["ok"].to_pylist())
    dup = np.array([d is not None for d in dup_of])
    keep = ok & ~dup
    expect = [int((keep & (q < 3)).sum()), int((keep & (q >= 3) & (q < 7)).sum()), int((keep & (q >= 7)).sum())]
    assert [p["documents"] for p in result["pools"]] == expect
    assert [p["unique"] for p in result["pools"]] == [float(e) for e in expect]  # samples: unique = documents
    assert [p["name"] for p in result["pools"]] == ["below-3", "3-7", "above-7"]
    summary = json.loads((tmp_path / "pools" / "summary.json").read_text())
    assert summary["excluded"]["where"] == int((~ok).sum())
    assert summary["excluded"]["duplicate"] == int((ok & dup).sum())
    assert summary["pooled"] + sum(summary["excluded"].values()) == summary["documents"] == len(ids)


def test_bad_specs_and_inputs_name_the_problem(tmp_path):
    with pytest.raises(PoolError, match="strictly increasing"):
        PoolSpec(score="quality", edges=(0.6, 0.4))
    with pytest.raises(PoolError, match=r"\(0, 1\)"):
        PoolSpec(score="quality", edges=(1.5,))
    with pytest.raises(PoolError, match="names"):
        PoolSpec(score="quality", edges=(0.5,), names=("a",))
    with pytest.raises(PoolError, match="method"):
        PoolSpec(score="quality", method="kmeans")
    scored, _ = make_scored_job(tmp_path)
    with pytest.raises(PoolError, match="nope"):
        build_pools(scored, tmp_path / "p", PoolSpec(score="nope + 1"))
    with pytest.raises(PoolError, match="not a `thresher score` output"):
        build_pools(tmp_path, tmp_path / "p", PoolSpec(score="quality"))
    with pytest.raises(PoolError, match="no documents"):
        build_pools(scored, tmp_path / "p", PoolSpec(score="quality", method="thresholds", edges=(2.0,)))


def test_pools_json_has_one_reader_that_checks_version_limits_and_rows(tmp_path, monkeypatch):
    import dataclasses

    from thresher.pipeline import pools as mod
    from thresher.pipeline.pools import load_pools_json, write_pools_json

    doc = {"unit": "samples", "pools": [{"name": "a", "unique": 10.0, "documents": 3}, {"name": "b", "unique": 5}]}
    written = write_pools_json(doc, tmp_path / "pools.json")
    assert written["format"] == "thresher.pools/1" and not list(tmp_path.glob(".*"))
    assert load_pools_json(tmp_path) == load_pools_json(tmp_path / "pools.json") == written  # a directory or the file
    pools, unit = load_pools(tmp_path / "pools.json")
    assert unit == "samples" and [(p.name, p.unique, p.documents) for p in pools] == [("a", 10.0, 3), ("b", 5.0, None)]
    legacy = tmp_path / "hand.json"  # written by hand, as the README shows, before the format field
    legacy.write_text(json.dumps(doc))
    assert load_pools_json(legacy)["pools"][1]["name"] == "b"
    cases = [
        ({**doc, "format": "thresher.pools/2"}, r"bad\.json: pools format version '2' is not one this Thresher reads"),
        ({**doc, "format": "thresher.plan/1"}, r"bad\.json: not a pools \(format 'thresher.plan/1'"),
        ({"pools": [{"name": "a"}]}, r"bad\.json: pools\[0\]: missing 'unique'"),
        ({"pools": [{"name": "a", "unique": 1}, {"name": "a", "unique": 2}]}, r"bad\.json: pools\[1\]: duplicate pool name"),
        ({"pools": [{"name": "a", "unique": -1}]}, r"bad\.json: pools\[0\]: pool 'a': unique size must be a positive"),
        ({"pools": []}, r"bad\.json: no pools listed"),
        ({"unit": "bytes", "pools": doc["pools"]}, r"bad\.json: unit must be"),
    ]
    for bad, match in cases:
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(PoolError, match=match):
            load_pools_json(tmp_path / "bad.json")
    monkeypatch.setattr(mod, "MAX_POOLS", 1)
    with pytest.raises(PoolError, match=r"pools\.json: 2 pools, over the limit of 1"):
        load_pools_json(tmp_path)
    monkeypatch.setattr(mod, "POOLS", dataclasses.replace(mod.POOLS, max_bytes=50))
    with pytest.raises(PoolError, match=r"pools\.json: \d+ bytes is over the 50 bytes limit for pools files"):
        load_pools_json(tmp_path)
    with pytest.raises(PoolError, match=r"nowhere/pools\.json: no such pools file; pass the --out directory"):
        load_pools_json(tmp_path / "nowhere" / "pools.json")


def test_a_sidecar_no_marker_vouches_for_is_not_read(tmp_path):
    """A killed run can leave an output without its marker (on an object store nothing renames it away): pools
    read only the parts their job completed."""
    scored, table = make_scored_job(tmp_path)
    stray = pa.table({"id": ["stray#0"], "source": ["x"], "gopher_words": [7], "quality": [0.9], "ok": [True]})
    pq.write_table(stray, scored / "sidecars" / "stray.jsonl.part-00000.parquet")
    result = build_pools(scored, tmp_path / "pools", PoolSpec(score="quality", edges=(0.5,)))
    assert sum(p["documents"] for p in result["pools"]) == table.num_rows
    assert "stray#0" not in read_members(tmp_path / "pools")["id"].to_pylist()
