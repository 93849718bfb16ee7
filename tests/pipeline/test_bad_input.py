"""Broken shards: every bad row or file is quarantined with its reason, the job finishes, the ledger adds up.

One corpus holds a shard for every kind of damage named in the guarantees; a map
job runs over all of them at once, and `--strict` is checked shard by shard.
"""
from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from tests.docs import CLEAN
from thresher.pipeline.executor import MapJob, run_map_job
from thresher.pipeline.ledger import STATUSES, read_ledger
from thresher.pipeline.reader import RAW_KEEP_BYTES, MalformedInput, ReadOptions, read_part
from thresher.pipeline.registry import make_scorer
from thresher.pipeline.shards import ShardError, discover, plan_parts, shard_format

HUGE_LINE_BYTES = 50 * 1024 * 1024


def _jsonl(rows: list) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def make_broken_corpus(root: Path, huge: bool = True) -> dict[str, dict]:
    """Write one shard per kind of damage; returns shard id -> expected kept rows and malformed reasons by row."""
    root.mkdir(parents=True, exist_ok=True)
    expect: dict[str, dict] = {}

    def put(name: str, data: bytes, kept: int, bad: dict[int, str]) -> None:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        expect[name] = {"kept": kept, "bad": bad}

    full = gzip.compress(_jsonl([{"text": f"gzip row {i} " + CLEAN[:200]} for i in range(3000)]), mtime=0)
    cut = full[: len(full) // 2]
    survived = 0
    with gzip.open(io.BytesIO(cut)) as fh:  # how many whole lines survive the cut
        try:
            while fh.readline().endswith(b"\n"):
                survived += 1
        except EOFError:
            pass
    put("truncated.jsonl.gz", cut, survived, {survived: "truncated gzip stream"})
    put("bad_json.jsonl", _jsonl([{"text": CLEAN}, b'{"text": "unterminated', {"text": "ok two"}]), 2,
        {1: "invalid JSON"})
    put("bad_utf8.jsonl", _jsonl([{"text": "fine"}, b'{"text": "caf\xe9 latin-1"}', b'{"text": "\xff\xfe"}']), 1,
        {1: "invalid UTF-8", 2: "invalid UTF-8"})
    put("no_text.jsonl", _jsonl([{"body": "x"}, {"text": 7}, {"text": None}, {"text": ["a"]}, {"text": "kept"}]), 1,
        {0: "missing text field", 1: "is int, not a string", 2: "is NoneType, not a string", 3: "is list, not a string"})
    put("empty.jsonl", b"", 0, {})
    put("empty.jsonl.gz", b"", 0, {})
    put("zero_bytes.parquet", b"", 0, {0: "unreadable Parquet file"})
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"body": ["a", "b", "c"]}), sink)
    put("wrong_schema.parquet", sink.getvalue().to_pybytes(), 0,
        dict.fromkeys(range(3), "missing text column 'text'"))
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"text": pa.array([1, 2], pa.int64())}), sink)
    put("wrong_type.parquet", sink.getvalue().to_pybytes(), 0, {0: "has type int64", 1: "has type int64"})
    if huge:
        line = b'{"text": "' + b"a" * HUGE_LINE_BYTES + b'"}'
        put("huge_line.jsonl", _jsonl([line, {"text": "after the huge line"}]), 1, {0: "line longer than"})
        put("huge_no_newline.jsonl", b'{"text": "' + b"b" * HUGE_LINE_BYTES, 0, {0: "line longer than"})
    put("nul_bytes.jsonl", _jsonl([b'{"text": "a\x00b"}', b"\x00" * 64, {"text": "escaped \u0000 is text"}]), 1,
        {0: "invalid JSON", 1: "invalid JSON"})
    put("nul_tail.jsonl", _jsonl([{"text": "written before a crash"}]) + b"\x00" * 4096, 1, {1: "invalid JSON"})
    put("bom.jsonl", b"\xef\xbb\xbf" + _jsonl([{"text": "after a byte-order mark"}, b'\xef\xbb\xbf{"text": "x"}']), 1,
        {1: "invalid JSON"})
    put("bom.jsonl.gz", gzip.compress(b"\xef\xbb\xbf" + _jsonl([{"text": "bom in gzip"}]), mtime=0), 1, {})
    put("crlf.jsonl", b'{"text": "windows line ends"}\r\n\r\n{"text": "second"}\r\n', 2, {})
    # rows json parses into values no output can hold, or cannot parse without exhausting a limit
    put("lone_surrogate.jsonl", _jsonl([{"text": "ok"}, b'{"text": "bad \\ud800 half a pair"}',
                                        b'{"text": "a pair \\ud83d\\ude00 is fine"}']), 2, {1: "a lone surrogate escape"})
    put("huge_int.jsonl", _jsonl([b'{"text": "a b", "n": ' + b"9" * 5000 + b"}", {"text": "next"}]), 1,
        {0: "invalid JSON: Exceeds the limit"})
    put("deep.jsonl", _jsonl([b'{"text": "a", "d": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", {"text": "x"}]), 1,
        {0: "invalid JSON: nested too deeply"})
    # columnar text in other encodings is text; a repeated text column is ambiguous
    for name, arr in (("dictionary.parquet", pa.array(["d one", "d two"]).dictionary_encode()),
                      ("string_view.parquet", pa.array(["v one", "v two"], pa.string_view()))):
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({"text": arr}), sink)
        put(name, sink.getvalue().to_pybytes(), 2, {})
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_arrays([pa.array(["a", "b"]), pa.array(["c", "d"])], names=["text", "text"]), sink)
    put("two_text_columns.parquet", sink.getvalue().to_pybytes(), 0, dict.fromkeys(range(2), "appear more than once"))
    # other compressions are read like gzip; a cut stream keeps the rows before the cut
    rows = _jsonl([{"text": f"compressed row {i}"} for i in range(50)])
    put("rows.jsonl.bz2", bz2.compress(rows), 50, {})
    put("rows.jsonl.xz", lzma.compress(rows), 50, {})
    put("rows.jsonl.zst", pa.compress(rows, "zstd", asbytes=True), 50, {})
    put("truncated.jsonl.xz", lzma.compress(rows)[:-40], 0, {})  # rows before the cut: counted below
    with lzma.open(io.BytesIO(lzma.compress(rows)[:-40])) as fh:
        survived = 0
        try:
            while fh.readline().endswith(b"\n"):
                survived += 1
        except EOFError:
            pass
    expect["truncated.jsonl.xz"] = {"kept": survived, "bad": {survived: "truncated xz stream"}}
    # a file name that is not UTF-8: read through its real name, its id escaped
    with open(os.path.join(os.fsencode(root), b"name_\xff.jsonl"), "wb") as fh:
        fh.write(_jsonl([{"text": "under an odd name"}]))
    expect["name_\\xff.jsonl"] = {"kept": 1, "bad": {}}
    # links: a loop of two links, a link to itself, a dangling link, and a directory link back to the root
    os.symlink("loop_b.jsonl", root / "loop_a.jsonl")
    os.symlink("loop_a.jsonl", root / "loop_b.jsonl")
    os.symlink("self.jsonl", root / "self.jsonl")
    os.symlink("does_not_exist.jsonl", root / "dangling.jsonl")
    (root / "sub").mkdir()
    os.symlink("..", root / "sub" / "back_to_root")
    for name in ("loop_a.jsonl", "loop_b.jsonl", "self.jsonl", "dangling.jsonl"):
        expect[name] = {"kept": 0, "bad": {0: "unreadable file"}}
    put("sub/good.jsonl", _jsonl([{"text": CLEAN}, {"text": "short"}]), 2, {})
    return expect


def _reasons_by_id(table: pa.Table) -> dict[str, str]:
    return dict(zip(table["id"].to_pylist(), table["reason"].to_pylist()))


@pytest.fixture(scope="module")
def broken_job(tmp_path_factory, ray_session):
    root = tmp_path_factory.mktemp("broken")
    expect = make_broken_corpus(root / "in")
    stages = [make_scorer(n) for n in ("gopher_quality", "c4")]
    summary = run_map_job(MapJob(input=str(root / "in"), out_dir=root / "out", stages=stages, quiet=True,
                                 part_bytes=1 << 20))
    return root, expect, summary


def test_discovery_lists_every_broken_shard_once_and_stops_at_link_loops(tmp_path):
    expect = make_broken_corpus(tmp_path, huge=False)
    _, shards = discover(tmp_path)
    assert sorted(s[0] for s in shards) == sorted(expect)
    _, globbed = discover(str(tmp_path / "*.jsonl"))
    assert {"loop_a.jsonl", "self.jsonl", "dangling.jsonl"} <= {s[0] for s in globbed}


def test_job_finishes_and_every_bad_row_is_in_ledger_and_quarantine(broken_job):
    root, expect, summary = broken_job
    out = root / "out"
    kept = sum(e["kept"] for e in expect.values())
    bad = sum(len(e["bad"]) for e in expect.values())
    assert summary["rows_read"] == kept + bad
    assert summary["ledger"]["kept"] == kept and summary["ledger"]["malformed"] == bad
    assert sum(summary["ledger"][s] for s in STATUSES) == summary["rows_read"]
    kinds = summary["ledger"]["malformed_by_reason"]
    assert sum(kinds.values()) == bad and kinds["invalid UTF-8 at byte N"] == 2
    assert not any(ch.isdigit() for k in kinds for ch in k.lower().replace("utf-8", "").replace("utf-16", "").replace("int64", "")), kinds
    ledger = read_ledger(out)
    assert ledger.num_rows == summary["rows_read"]
    assert len(set(ledger["id"].to_pylist())) == ledger.num_rows
    quarantine = pads.dataset(out / "malformed", format="parquet").to_table()
    reasons = _reasons_by_id(quarantine)
    ledger_reasons = {i: r for i, r, s in zip(ledger["id"].to_pylist(), ledger["reason"].to_pylist(),
                                              ledger["status"].to_pylist()) if s == "malformed"}
    assert reasons == ledger_reasons
    for shard, e in expect.items():
        for row, fragment in e["bad"].items():
            doc_id = f"{shard}#{row}"
            assert doc_id in reasons, f"{doc_id} not quarantined"
            assert fragment in reasons[doc_id], f"{doc_id}: {reasons[doc_id]!r} lacks {fragment!r}"
    sidecars = pads.dataset(out / "sidecars", format="parquet").to_table()
    assert sidecars.num_rows == kept
    assert not set(sidecars["id"].to_pylist()) & set(reasons)


def test_quarantine_keeps_raw_bytes_but_caps_them(broken_job):
    root, _, _ = broken_job
    q = pads.dataset(root / "out" / "malformed", format="parquet").to_table().to_pylist()
    raw = {r["id"]: r["raw"] for r in q}
    assert raw["bad_json.jsonl#1"] == '{"text": "unterminated\n'
    assert len(raw["huge_line.jsonl#0"]) == RAW_KEEP_BYTES and raw["huge_line.jsonl#0"].startswith('{"text": "aaa')
    assert all(row["row"] >= 0 for row in q)


def test_kept_rows_are_clean_text(broken_job):
    root, _, _ = broken_job
    side = pads.dataset(root / "out" / "sidecars", format="parquet").to_table()
    ids = set(side["id"].to_pylist())
    assert {"bom.jsonl#0", "bom.jsonl.gz#0", "crlf.jsonl#0", "crlf.jsonl#2", "nul_bytes.jsonl#2",
            "huge_line.jsonl#1", "sub/good.jsonl#1"} <= ids
    # the byte-order mark is not part of the document
    for name in ("bom.jsonl", "bom.jsonl.gz"):
        (part,) = plan_parts([(name, root / "in" / name, shard_format(name))])
        text = read_part(part, ReadOptions())["text"][0].as_py()
        assert text in ("after a byte-order mark", "bom in gzip")
    crlf = read_part(plan_parts([("crlf.jsonl", root / "in" / "crlf.jsonl", "jsonl")])[0], ReadOptions())
    assert crlf["text"].to_pylist() == ["windows line ends", "second"]


BROKEN = ["truncated.jsonl.gz", "bad_json.jsonl", "bad_utf8.jsonl", "no_text.jsonl", "zero_bytes.parquet",
          "wrong_schema.parquet", "wrong_type.parquet", "huge_line.jsonl", "nul_bytes.jsonl", "nul_tail.jsonl",
          "bom.jsonl", "loop_a.jsonl", "self.jsonl", "dangling.jsonl", "lone_surrogate.jsonl", "huge_int.jsonl",
          "deep.jsonl", "two_text_columns.parquet", "truncated.jsonl.xz"]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("strict")
    return root, make_broken_corpus(root)


@pytest.mark.parametrize("shard", BROKEN)
def test_strict_stops_at_the_first_problem_naming_file_and_line(corpus_dir, shard):
    root, expect = corpus_dir
    first_bad = min(expect[shard]["bad"])
    parts = plan_parts([(shard, root / shard, shard_format(shard))])
    with pytest.raises(MalformedInput) as err:
        for part in parts:
            read_part(part, ReadOptions(strict=True))
    msg = str(err.value)
    assert msg.startswith(f"{root / shard}: line {first_bad + 1}: "), msg
    assert expect[shard]["bad"][first_bad] in msg


def test_strict_job_stops_with_file_and_line(tmp_path, ray_session):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(_jsonl([{"text": "one"}, {"text": "two"}, b"{oops", {"text": "four"}]))
    job = MapJob(input=str(tmp_path / "in"), out_dir=tmp_path / "out", stages=[make_scorer("c4")], quiet=True,
                 read=ReadOptions(strict=True))
    with pytest.raises(MalformedInput) as err:
        run_map_job(job)
    assert "a.jsonl: line 3: invalid JSON" in str(err.value)
    assert not list((tmp_path / "out").glob("_complete/*.json"))


def test_duplicate_ids_within_and_across_shards_are_malformed(tmp_path, ray_session):
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "a.jsonl").write_bytes(_jsonl([{"id": "x", "text": "first x"}, {"id": "y", "text": "y"},
                                          {"id": "x", "text": "x again in a"}]))
    (inp / "b.jsonl").write_bytes(_jsonl([{"id": "y", "text": "y again in b"}, {"id": "z", "text": "z"},
                                          {"id": "", "text": "empty id"}]))
    job = MapJob(input=str(inp), out_dir=tmp_path / "out", stages=[make_scorer("c4")], quiet=True,
                 read=ReadOptions(id_field="id"))
    summary = run_map_job(job)
    assert summary["rows_read"] == 6
    assert summary["ledger"]["kept"] == 3 and summary["ledger"]["malformed"] == 3
    ledger = read_ledger(tmp_path / "out").to_pylist()
    status = [(r["id"], r["status"]) for r in ledger]
    assert status.count(("x", "kept")) == 1 and status.count(("y", "kept")) == 1 and ("z", "kept") in status
    reasons = sorted(r["reason"] for r in ledger if r["status"] == "malformed")
    assert reasons[0].startswith("duplicate id 'x' (first at row 0)")
    assert reasons[1] == "duplicate id across parts: 'y' (first in a.jsonl)"
    assert "id field 'id' missing" in reasons[2]
    assert summary["ledger"]["malformed_by_reason"] == {  # counted by kind, without per-row details
        "duplicate id": 1, "duplicate id across parts": 1, "id field 'id' missing or not a string/number": 1}
    side = pads.dataset(tmp_path / "out" / "sidecars", format="parquet").to_table()
    assert sorted(side["id"].to_pylist()) == ["x", "y", "z"]
    q = pads.dataset(tmp_path / "out" / "malformed", format="parquet").to_table()
    assert sorted(q["id"].to_pylist()) == sorted(["x", "y", "b.jsonl#2"])
    again = run_map_job(job)  # a rerun keeps the same verdicts and bytes
    assert again["content_hash"] == summary["content_hash"] and again["ledger"] == summary["ledger"]


def test_nonexistent_input_is_a_clear_error(tmp_path):
    with pytest.raises(ShardError, match="no such file or directory"):
        run_map_job(MapJob(input=str(tmp_path / "nope"), out_dir=tmp_path / "out", stages=[make_scorer("c4")],
                           quiet=True))
    os.symlink("loop", tmp_path / "loop")
    with pytest.raises(ShardError, match="loop of links"):
        discover(tmp_path / "loop")
    with pytest.raises(ShardError, match="matches no files"):
        discover(str(tmp_path / "*.jsonl"))


def test_strict_names_the_file_and_line_of_an_id_seen_in_an_earlier_shard(tmp_path, ray_session):
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "a.jsonl").write_bytes(_jsonl([{"id": "x", "text": "x"}]))
    (inp / "b.jsonl").write_bytes(_jsonl([{"id": "w", "text": "w"}, {"id": "x", "text": "x again"}]))
    job = MapJob(input=str(inp), out_dir=tmp_path / "out", stages=[make_scorer("c4")], quiet=True,
                 read=ReadOptions(id_field="id", strict=True))
    with pytest.raises(MalformedInput, match=r"b\.jsonl: line 2: duplicate id across parts: 'x' \(first in a\.jsonl\)"):
        run_map_job(job)


@pytest.mark.parametrize("suffix", [".lz4", ".br", ".zip", ".snappy"])
def test_json_lines_in_a_compression_thresher_does_not_read_are_refused_by_name(tmp_path, suffix):
    (tmp_path / "a.jsonl").write_bytes(_jsonl([{"text": "readable"}]))
    (tmp_path / f"b.jsonl{suffix}").write_bytes(b"\x04\x22\x4d\x18 not read")
    with pytest.raises(ShardError, match=rf"b\.jsonl\{suffix}: JSON lines compressed as \{suffix}, which Thresher does not read"):
        discover(tmp_path)


def test_a_carried_integer_past_64_bits_is_kept_as_json_text(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(_jsonl([{"text": "small", "n": 1}, {"text": "huge", "n": 2**64 + 5}]))
    (part,) = plan_parts([("a.jsonl", path, "jsonl")])
    table = read_part(part, ReadOptions(carry=("n",)))
    assert table["__malformed"].null_count == 2
    assert table["n"].to_pylist() == ["1", str(2**64 + 5)]
