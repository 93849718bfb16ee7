"""Discovering shards and reading every format, with stable ids and quarantine."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thresher.pipeline.reader import MalformedInput, ReadOptions, read_part
from thresher.pipeline.shards import ShardError, discover, iter_documents, plan_parts


def write_jsonl(path: Path, rows: list, gz: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()
    path.write_bytes(gzip.compress(data) if gz else data)


def read_all(path, **opts) -> pa.Table:
    _, shards = discover(path)
    parts = plan_parts(shards, part_bytes=opts.pop("part_bytes", 1 << 26), part_rows=opts.pop("part_rows", 1 << 20))
    return pa.concat_tables([read_part(p, ReadOptions(**opts)) for p in parts])


def test_discovery_sorts_and_ids_are_relative(tmp_path):
    write_jsonl(tmp_path / "b" / "x.jsonl", [{"text": "b"}])
    write_jsonl(tmp_path / "a.jsonl.gz", [{"text": "a"}], gz=True)
    (tmp_path / "notes.md").write_text("ignored")
    root, shards = discover(tmp_path)
    assert [s[0] for s in shards] == ["a.jsonl.gz", "b/x.jsonl"]
    assert [s[2] for s in shards] == ["jsonl.gz", "jsonl"]
    _, globbed = discover(str(tmp_path / "**" / "*.jsonl"))
    assert [s[0] for s in globbed] == ["b/x.jsonl"]


def test_missing_path_and_empty_dir_are_clear_errors(tmp_path):
    with pytest.raises(ShardError, match="no such file"):
        discover(tmp_path / "nope")
    with pytest.raises(ShardError, match="no shards found"):
        discover(tmp_path)


def test_jsonl_gz_and_parquet_read_the_same_documents(tmp_path):
    rows = [{"text": f"doc {i}", "source": "s"} for i in range(5)]
    write_jsonl(tmp_path / "j" / "d.jsonl", rows)
    write_jsonl(tmp_path / "g" / "d.jsonl.gz", rows, gz=True)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet")
    for sub in ("j", "g"):
        t = read_all(tmp_path / sub, carry=("source",))
        assert t["text"].to_pylist() == [r["text"] for r in rows]
        assert t["source"].to_pylist() == ["s"] * 5
    t = read_all(tmp_path / "p.parquet")
    assert t["id"].to_pylist() == [f"p.parquet#{i}" for i in range(5)]


def test_hugging_face_saved_dataset_dict(tmp_path):
    datasets = pytest.importorskip("datasets")
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["a b", "c d"], "label": [0, 1]}),
        "test": datasets.Dataset.from_dict({"text": ["e f"], "label": [1]}),
    })
    dd.save_to_disk(str(tmp_path / "hf"))
    t = read_all(tmp_path / "hf", keep_fields=True)
    assert sorted(t["text"].to_pylist()) == ["a b", "c d", "e f"]
    assert all(i.split("#")[0].endswith(".arrow") for i in t["id"].to_pylist())
    assert sorted(t["label"].to_pylist()) == [0, 1, 1]


def test_sub_shards_keep_global_row_numbers(tmp_path):
    rows = [{"text": f"document number {i} " + "x" * (i % 7)} for i in range(300)]
    write_jsonl(tmp_path / "big.jsonl", rows)
    whole = read_all(tmp_path)
    _, shards = discover(tmp_path)
    parts = plan_parts(shards, part_bytes=1000)
    assert len(parts) > 5 and all(p.count == len(parts) for p in parts)
    pieces = pa.concat_tables([read_part(p, ReadOptions()) for p in parts])
    assert pieces["id"].to_pylist() == whole["id"].to_pylist() == [f"big.jsonl#{i}" for i in range(300)]
    write_jsonl(tmp_path / "g" / "big.jsonl.gz", rows, gz=True)
    _, gz_shards = discover(tmp_path / "g")
    gz_parts = plan_parts(gz_shards, part_bytes=100, part_rows=70)
    assert len(gz_parts) == 5
    assert pa.concat_tables([read_part(p, ReadOptions()) for p in gz_parts])["text"].to_pylist() == whole["text"].to_pylist()


def test_parquet_row_groups_become_parts(tmp_path):
    table = pa.table({"text": [f"t{i}" for i in range(1000)]})
    pq.write_table(table, tmp_path / "x.parquet", row_group_size=100)
    _, shards = discover(tmp_path)
    parts = plan_parts(shards, part_bytes=1)
    assert len(parts) == 10
    ids = pa.concat_tables([read_part(p, ReadOptions()) for p in parts])["id"].to_pylist()
    assert ids == [f"x.parquet#{i}" for i in range(1000)]


def test_bad_rows_are_quarantined_with_reasons(tmp_path):
    lines = [json.dumps({"text": "fine"}), "{not json", json.dumps({"body": "x"}), json.dumps({"text": 3}),
             json.dumps([1, 2]), "", json.dumps({"text": "also fine"})]
    path = tmp_path / "d.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b'{"text": "\xff\xfe"}\n')
    t = read_all(path)
    reasons = t["__malformed"].to_pylist()
    assert t.num_rows == 7  # the blank line is not a row
    assert reasons[0] is None and reasons[5] is None
    assert reasons[1].startswith("invalid JSON")
    assert reasons[2] == "missing text field 'text'"
    assert "is int, not a string" in reasons[3]
    assert "not a JSON object" in reasons[4]
    assert reasons[6].startswith("invalid UTF-8")
    assert t["id"].to_pylist()[6] == "d.jsonl#7"  # ids count lines, so they do not move when a line is bad


def test_strict_mode_names_file_and_line(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", [{"text": "ok"}, "{broken"])
    with pytest.raises(MalformedInput, match=r"d\.jsonl: line 2: invalid JSON"):
        read_all(tmp_path, strict=True)


def test_truncated_gzip_keeps_what_was_read(tmp_path):
    data = gzip.compress(b"".join(json.dumps({"text": f"t{i}"}).encode() + b"\n" for i in range(2000)))
    (tmp_path / "t.jsonl.gz").write_bytes(data[: len(data) // 2])
    t = read_all(tmp_path)
    bad = [r for r in t["__malformed"].to_pylist() if r]
    assert len(bad) == 1 and bad[0].startswith("truncated gzip stream")
    assert t.num_rows - 1 > 0


def test_duplicate_ids_in_input_are_malformed(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}, {"id": "a", "text": "z"}])
    t = read_all(tmp_path, id_field="id")
    assert t["id"].to_pylist() == ["a", "b", "a"]
    assert t["__malformed"].to_pylist()[2].startswith("duplicate id 'a'")
    assert t["text"].to_pylist()[2] is None


def test_iter_documents_skips_bad_rows(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "k": 1}, "bad", {"text": "b", "k": 2}])
    batches = list(iter_documents(tmp_path, batch_rows=1))
    assert [b["text"][0].as_py() for b in batches] == ["a", "b"]
    assert batches[1]["k"][0].as_py() == 2


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "parquet"])
def test_reading_chosen_rows_gives_those_rows_of_a_full_read(tmp_path, fmt):
    rows = [{"text": f"doc {i}", "id": f"d{i}"} for i in range(40)]
    path = tmp_path / f"s.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        write_jsonl(path, rows, gz=fmt.endswith("gz"))
        lines = path.read_bytes() if fmt == "jsonl" else None
        if lines is not None:  # a blank line and a broken row shift nothing: rows count lines
            text = lines.decode().splitlines()
            text[5], text[9] = "", "{broken"
            path.write_text("\n".join(text) + "\n")
    _, shards = discover(path)
    part = plan_parts(shards)[0]
    whole = read_part(part, ReadOptions(id_field="id"))
    wanted = [3, 9, 17, 18, 39, 55]  # a malformed row and a row past the end too
    some = read_part(part, ReadOptions(id_field="id"), rows=wanted)
    expected = whole.filter(pa.compute.is_in(whole["__row"], value_set=pa.array(wanted)))
    assert some.equals(expected)
    assert some["__row"].to_pylist() == [r for r in wanted if r < 40 and not (fmt == "jsonl" and r == 5)]
