"""Runs of empty lines cost a buffer scan, not a Python step per line, and never move a row across a part cut."""
from __future__ import annotations

import gzip
import json

import pyarrow as pa

from thresher.pipeline import line_streams
from thresher.pipeline.reader import ReadOptions, read_part
from thresher.pipeline.shards import plan_parts, shard_format


def _rows(table: pa.Table) -> list[tuple[int, str]]:
    good = table.filter(pa.compute.is_null(table["__malformed"]))
    return list(zip(good["__row"].to_pylist(), good["text"].to_pylist()))


def _count_line_reads(monkeypatch) -> list[int]:
    calls = [0]
    original = line_streams.Lines._read

    def counting(self, size):
        calls[0] += 1
        return original(self, size)

    monkeypatch.setattr(line_streams.Lines, "_read", counting)
    return calls


def test_a_gzip_of_newlines_is_skipped_a_buffer_at_a_time(tmp_path, monkeypatch) -> None:
    path = tmp_path / "blank.jsonl.gz"
    path.write_bytes(gzip.compress(json.dumps({"text": "first"}).encode() + b"\n" + b"\n" * 3_000_000
                                   + json.dumps({"text": "after the newlines"}).encode() + b"\n", mtime=0))
    calls = _count_line_reads(monkeypatch)
    (part,) = plan_parts([("blank.jsonl.gz", path, shard_format(path.name))])
    table = read_part(part, ReadOptions())
    assert _rows(table) == [(0, "first"), (3_000_001, "after the newlines")]
    assert calls[0] < 10, f"{calls[0]} line reads for two documents"


def test_blank_runs_across_part_cuts_give_each_row_to_one_part(tmp_path) -> None:
    path = tmp_path / "gaps.jsonl"
    lines: list[bytes] = []
    for i in range(40):
        lines.append(json.dumps({"text": f"doc {i}"}).encode() + b"\n")
        lines.append(b"\n" * (i * 97 % 500))
    path.write_bytes(b"".join(lines))
    whole = read_part(plan_parts([("gaps.jsonl", path, "jsonl")], part_bytes=1 << 30)[0], ReadOptions())
    for part_bytes in (64, 257, 1000, 4096):
        parts = plan_parts([("gaps.jsonl", path, "jsonl")], part_bytes=part_bytes)
        assert len(parts) > 1
        rows = [r for p in parts for r in _rows(read_part(p, ReadOptions()))]
        assert rows == _rows(whole), part_bytes
    assert [t for _, t in _rows(whole)] == [f"doc {i}" for i in range(40)]
