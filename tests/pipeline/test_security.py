"""Security: no unsafe deserialisation of user data, names that cannot leave their directory,
and bounded inflation of compressed input."""
from __future__ import annotations

import ast
import gzip
import json
import os
import tracemalloc
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thresher.pipeline.executor import MapJob, run_map_job
from thresher.pipeline.outputs import marker_path
from thresher.pipeline.reader import ReadOptions, read_part
from thresher.pipeline.registry import make_scorer
from thresher.pipeline.safety import (
    MIN_INFLATE_BYTES,
    InputTooLarge,
    UnsafePath,
    check_name,
    inflate_limit,
    read_capped,
    safe_join,
)
from thresher.pipeline.shards import discover, plan_parts

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "metrics", "mixtures", "jobs", "benchmarks")


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _kw(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def unsafe_calls(source: str) -> list[str]:
    """Calls that can run code hidden in data: eval/exec, pickle-family loads, yaml.load without a safe loader."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        last = name.rsplit(".", 1)[-1]
        bad = None
        if name in ("eval", "exec", "builtins.eval", "builtins.exec"):
            bad = name
        elif name.split(".")[0] in ("pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal", "shelve") \
                and last in ("load", "loads", "open", "Unpickler"):
            bad = name
        elif last in ("read_pickle", "unsafe_load", "full_load", "unsafe_load_all", "full_load_all"):
            bad = name
        elif name in ("yaml.load", "yaml.load_all"):
            loader = _kw(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if loader is None or "Safe" not in _dotted(loader):
                bad = f"{name} without SafeLoader"
        elif last == "load" and name.split(".")[0] in ("np", "numpy"):
            allow = _kw(node, "allow_pickle")
            if isinstance(allow, ast.Constant) and allow.value is True:
                bad = f"{name}(allow_pickle=True)"
        elif name == "torch.load":
            wo = _kw(node, "weights_only")
            if not (isinstance(wo, ast.Constant) and wo.value is True):
                bad = "torch.load without weights_only=True"
        if bad:
            found.append(f"line {node.lineno}: {bad}")
    return found


def test_the_scanner_catches_what_it_looks_for():
    bad = """
import pickle, yaml, numpy as np
pickle.loads(b)
yaml.load(s)
yaml.load(s, Loader=yaml.FullLoader)
yaml.unsafe_load(s)
eval(user_text)
np.load(p, allow_pickle=True)
"""
    good = """
import yaml, numpy as np, re
yaml.safe_load(s)
yaml.load(s, Loader=yaml.SafeLoader)
np.load(p, allow_pickle=False)
re.compile("x")
"""
    assert len(unsafe_calls(bad)) == 6
    assert unsafe_calls(good) == []


def test_no_unsafe_deserialisation_or_eval_in_the_source_tree():
    problems = []
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            for p in unsafe_calls(path.read_text(encoding="utf-8")):
                problems.append(f"{path.relative_to(REPO)}: {p}")
    assert problems == []


# ---------------------------------------------------------------- names and paths


@pytest.mark.parametrize("name", ["../x.parquet", "sidecars/../../x.parquet", "/etc/passwd", "a/\x00b", "", "a//b"])
def test_output_names_cannot_escape(tmp_path, name):
    with pytest.raises(UnsafePath):
        safe_join(tmp_path, name)


def test_links_inside_the_output_directory_cannot_lead_out(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(outside, out / "sidecars")
    with pytest.raises(UnsafePath, match="outside"):
        safe_join(out, "sidecars/part.parquet")
    assert safe_join(out, "ledger/part.parquet") == out.resolve() / "ledger" / "part.parquet"
    with pytest.raises(UnsafePath):
        marker_path(out, "../../escape")


def test_a_job_refuses_to_write_through_a_link_out_of_its_directory(tmp_path, ray_session):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text(json.dumps({"text": "some words here"}) + "\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(outside, out / "sidecars")
    with pytest.raises(UnsafePath, match="outside"):
        run_map_job(MapJob(input=str(tmp_path / "in"), out_dir=out, stages=[make_scorer("c4")], quiet=True))
    assert list(outside.iterdir()) == []
    assert not list((out / "_complete").glob("*.json")) if (out / "_complete").exists() else True


@pytest.mark.parametrize("name", ["..", ".", "a/b", "..\\x", ".hidden", "_private", "", "a\x00"])
def test_pool_and_source_names_must_be_plain_file_names(name):
    with pytest.raises(UnsafePath):
        check_name(name, "pool")
    assert check_name("top-10_pool.v2", "pool") == "top-10_pool.v2"


def test_shard_ids_stay_relative_to_the_input_root(tmp_path):
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.jsonl").write_text('{"text": "t"}\n')
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "y.jsonl").write_text('{"text": "t"}\n')
    os.symlink(tmp_path / "elsewhere", root / "linked")  # a linked directory is not walked into
    _, shards = discover(root)
    assert [s[0] for s in shards] == ["a/x.jsonl"]
    _, shards = discover(str(root / "a" / ".." / "a" / "*.jsonl"))
    assert [s[0] for s in shards] == ["x.jsonl"]
    assert all(not s[0].startswith(("/", "..")) for s in shards)


# ---------------------------------------------------------------- decompression limits


def _zero_bomb(path: Path, inflated: int, newline_every: int | None = None) -> None:
    """A gzip file of `inflated` zero bytes (optionally with newlines), a few hundred KB on disk."""
    block = bytearray(1 << 20)
    if newline_every:
        block[newline_every - 1 :: newline_every] = b"\n" * len(block[newline_every - 1 :: newline_every])
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(path, "wb") as fh:
        for _ in range(inflated >> 20):
            fh.write(comp.compress(bytes(block)))
        fh.write(comp.flush())


def test_inflate_limit_follows_size_and_ratio():
    assert inflate_limit(1000) == MIN_INFLATE_BYTES
    assert inflate_limit(10 * 2**30) == 64 * 2**30  # the absolute cap
    assert inflate_limit(2 * 2**30, max_ratio=10) == 20 * 2**30
    assert inflate_limit(10**9, max_bytes=5 * 10**9) == 5 * 10**9


def test_a_gzip_bomb_is_refused_with_bounded_memory(tmp_path):
    bomb = tmp_path / "bomb.jsonl.gz"
    _zero_bomb(bomb, 320 * 2**20)  # 320 MiB of zeros, one endless line
    assert bomb.stat().st_size < 2 * 2**20
    _, shards = discover(bomb)
    (part,) = plan_parts(shards)
    tracemalloc.start()
    try:
        table = read_part(part, ReadOptions(max_doc_bytes=2**20))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    reasons = [r for r in table["__malformed"].to_pylist() if r]
    assert len(reasons) == 1 and f"decompressed size exceeds {MIN_INFLATE_BYTES} bytes" in reasons[0]
    assert peak < 64 * 2**20, f"inflating the bomb held {peak / 2**20:.0f} MiB"


def test_a_bomb_of_many_lines_stops_at_the_budget_and_keeps_earlier_rows(tmp_path):
    path = tmp_path / "lines.jsonl.gz"
    good = b"".join(json.dumps({"text": f"row {i}"}).encode() + b"\n" for i in range(100))
    path.write_bytes(gzip.compress(good + b"0" * (8 * 2**20), mtime=0))
    _, shards = discover(path)
    (part,) = plan_parts(shards)
    t = read_part(part, ReadOptions(max_decompressed_bytes=2**20))
    ok = [x for x, r in zip(t["text"].to_pylist(), t["__malformed"].to_pylist()) if r is None]
    assert ok == [f"row {i}" for i in range(100)]
    assert "decompressed size exceeds 1048576 bytes" in t["__malformed"].to_pylist()[-1]


def test_a_parquet_file_that_inflates_past_the_budget_is_quarantined(tmp_path):
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table({"text": [f"{i:05d}" + "z" * 4096 for i in range(2000)]}), path, compression="zstd",
                   use_dictionary=False)
    assert path.stat().st_size < 200_000
    _, shards = discover(path)
    (part,) = plan_parts(shards)
    t = read_part(part, ReadOptions(max_decompressed_bytes=2**20))
    assert t.num_rows == 1 and "over the limit" in t["__malformed"][0].as_py()
    assert read_part(part, ReadOptions())["__malformed"].null_count == 2000  # within the default budget


def test_files_read_whole_have_a_size_cap(tmp_path):
    small, big = tmp_path / "prices.json", tmp_path / "huge.json"
    small.write_text('{"a": 1}')
    big.write_bytes(b" " * 5000)
    assert read_capped(small, 100) == b'{"a": 1}'
    with pytest.raises(InputTooLarge, match="huge.json: vendor file is larger than the 4096-byte cap"):
        read_capped(big, 4096, what="vendor file")
