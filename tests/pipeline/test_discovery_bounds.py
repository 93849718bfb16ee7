"""Hostile inputs to discovery and part planning: directory links, links out of the root, huge lines, gzip of newlines.

Each test bounds what the planner does (which files it lists, how much it reads at
once, how much it inflates, how many parts it makes) rather than how long it
takes: the test machine is shared, so no assertion here is about time.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import zlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thresher.jobs.cli import main
from thresher.pipeline import shards
from thresher.pipeline.parts import ShardError
from thresher.pipeline.reader import ReadOptions, read_part
from thresher.pipeline.shards import discover, plan_parts

SECRET = b"root:x:0:0:SECRET-OUTSIDE-THE-ROOT:/root:/bin/bash"


def _jsonl(texts: list[str]) -> bytes:
    return b"".join(json.dumps({"text": t}).encode() + b"\n" for t in texts)


def _ids(found: list[tuple[str, Path, str]]) -> list[str]:
    return [s[0] for s in found]


# ---------------------------------------------------------------- directory links under a glob


def _linked_tree(tmp_path: Path) -> Path:
    """in/a.jsonl, in/sub/b.jsonl, a link in/sub/back -> .. and a link in/linked -> a folder outside."""
    inp = tmp_path / "in"
    (inp / "sub").mkdir(parents=True)
    (inp / "a.jsonl").write_bytes(_jsonl(["first file, first line", "first file, second line"]))
    (inp / "sub" / "b.jsonl").write_bytes(_jsonl(["second file"]))
    os.symlink("..", inp / "sub" / "back")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "y.jsonl").write_bytes(_jsonl(["not under the root"]))
    os.symlink(tmp_path / "elsewhere", inp / "linked")
    return inp


def test_a_glob_never_walks_a_directory_link_and_lists_each_file_once(tmp_path):
    inp = _linked_tree(tmp_path)
    for pattern, expect in [("**/*.jsonl", ["a.jsonl", "sub/b.jsonl"]),
                            ("**/**/*.jsonl", ["a.jsonl", "sub/b.jsonl"]),
                            ("*/*.jsonl", ["sub/b.jsonl"]),
                            ("*/*/*.jsonl", []),
                            ("sub/*/*.jsonl", []),
                            ("*/../*.jsonl", ["a.jsonl"]),
                            ("s?b/[ab].jsonl", ["sub/b.jsonl"])]:
        if not expect:
            with pytest.raises(ShardError, match="matches no files"):
                discover(str(inp / pattern))
            continue
        root, found = discover(str(inp / pattern))
        assert root == inp and _ids(found) == expect, pattern
    # what a glob finds is what the directory walk finds
    assert _ids(discover(inp)[1]) == ["a.jsonl", "sub/b.jsonl"]


def test_a_glob_keeps_hidden_names_out_unless_asked_and_still_lists_broken_links(tmp_path):
    inp = tmp_path / "in"
    (inp / ".hidden").mkdir(parents=True)
    (inp / ".hidden" / "h.jsonl").write_bytes(_jsonl(["hidden"]))
    (inp / ".dot.jsonl").write_bytes(_jsonl(["dot"]))
    (inp / "_under.jsonl").write_bytes(_jsonl(["underscore"]))
    os.symlink("nowhere.jsonl", inp / "dangling.jsonl")
    os.symlink("loop.jsonl", inp / "loop.jsonl")
    assert _ids(discover(str(inp / "**" / "*.jsonl"))[1]) == ["_under.jsonl", "dangling.jsonl", "loop.jsonl"]
    assert _ids(discover(str(inp / ".*" / "*.jsonl"))[1]) == [".hidden/h.jsonl"]
    assert _ids(discover(str(inp / ".*.jsonl"))[1]) == [".dot.jsonl"]


def test_scoring_a_glob_over_a_parent_link_reads_every_file_once(tmp_path, ray_session):
    inp = _linked_tree(tmp_path)
    out = tmp_path / "out"
    assert main(["score", str(inp / "**" / "*.jsonl"), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_read"] == 3


# ---------------------------------------------------------------- file links that leave the root


def _outside_link_tree(tmp_path: Path) -> Path:
    """in/good.jsonl, in/inner.jsonl -> good.jsonl (inside), in/sub/passwd.jsonl -> a file outside the root."""
    inp = tmp_path / "in"
    (inp / "sub").mkdir(parents=True)
    (inp / "good.jsonl").write_bytes(_jsonl(["a good document"]))
    os.symlink("good.jsonl", inp / "inner.jsonl")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_bytes(SECRET + b"\n")
    os.symlink(tmp_path / "etc" / "passwd", inp / "sub" / "passwd.jsonl")
    return inp


def _output_texts(out: Path) -> list[bytes]:
    """Every output file's bytes, and every string in every Parquet output (compressed pages hide raw bytes)."""
    blobs: list[bytes] = []
    for p in sorted(out.rglob("*")) if out.exists() else []:
        if not p.is_file():
            continue
        blobs.append(p.read_bytes())
        if p.suffix == ".parquet":
            table = pq.read_table(p)
            for col in table.columns:
                if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                    blobs.extend(v.encode() for v in col.to_pylist() if v is not None)
    return blobs


@pytest.mark.parametrize("as_glob", [False, True])
def test_a_file_link_out_of_the_input_root_is_refused_naming_link_and_target(tmp_path, as_glob):
    inp = _outside_link_tree(tmp_path)
    target = os.path.realpath(tmp_path / "etc" / "passwd")
    with pytest.raises(ShardError, match="outside the input root") as err:
        discover(str(inp / "**" / "*.jsonl") if as_glob else inp)
    message = str(err.value)
    assert "passwd.jsonl" in message and target in message and "\n" not in message


def test_a_file_link_inside_the_root_is_followed_and_a_named_file_is_read_where_it_leads(tmp_path):
    inp = _outside_link_tree(tmp_path)
    os.remove(inp / "sub" / "passwd.jsonl")
    assert _ids(discover(inp)[1]) == ["good.jsonl", "inner.jsonl"]
    # a link named as the input itself is what the user asked for, wherever it leads
    os.symlink(tmp_path / "etc" / "passwd", tmp_path / "named.jsonl")
    root, found = discover(tmp_path / "named.jsonl")
    assert root == tmp_path and _ids(found) == ["named.jsonl"]


def test_a_link_into_a_linked_folder_outside_the_root_is_refused(tmp_path):
    # a Hugging Face state.json may name files through a folder link: the resolved target decides
    inp = tmp_path / "in"
    inp.mkdir()
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_bytes(SECRET + b"\n")
    os.symlink(tmp_path / "etc", inp / "etc")
    os.symlink("etc/passwd", inp / "via_folder.jsonl")
    with pytest.raises(ShardError, match="outside the input root"):
        discover(inp)


def test_scoring_a_tree_with_a_link_out_of_the_root_writes_no_byte_of_the_target(tmp_path, ray_session, capsys):
    inp = _outside_link_tree(tmp_path)
    for args in ([str(inp)], [str(inp / "**" / "*.jsonl")]):
        out = tmp_path / "out"
        assert main(["score", *args, "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "outside the input root" in err and len(err.strip().splitlines()) == 1
        assert not any(b"SECRET-OUTSIDE-THE-ROOT" in blob for blob in _output_texts(out))


# ---------------------------------------------------------------- bounded reads when cutting jsonl


class _ReadRecorder:
    """A binary file whose every read is checked: no unbounded read, none above `limit` bytes."""

    def __init__(self, fh: Any, limit: int, sizes: list[int]) -> None:
        self.fh, self.limit, self.sizes = fh, limit, sizes

    def _checked(self, size: int | None) -> None:
        if size is None or size < 0 or size > self.limit:
            raise AssertionError(f"a read of {size} bytes (the limit is {self.limit})")

    def read(self, size: int | None = -1) -> bytes:
        self._checked(size)
        data = self.fh.read(size)
        self.sizes.append(len(data))
        return data

    def readline(self, size: int | None = -1) -> bytes:
        self._checked(size)
        data = self.fh.readline(size)
        self.sizes.append(len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fh, name)

    def __enter__(self) -> _ReadRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()


def _record_reads(monkeypatch: pytest.MonkeyPatch, limit: int) -> list[int]:
    sizes: list[int] = []
    real_open = open

    def recording_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        return _ReadRecorder(real_open(path, mode, *args, **kwargs), limit, sizes)

    from thresher.pipeline.storage import location  # every file is opened through its Location

    monkeypatch.setattr(location, "open", recording_open, raising=False)
    return sizes


def test_a_sparse_2_gib_line_is_cut_with_bounded_reads(tmp_path, monkeypatch):
    path = tmp_path / "sparse.jsonl"
    with open(path, "wb") as fh:  # 2 GiB of NUL bytes without a newline: no disk used
        fh.truncate(2 * 1024**3)
        fh.seek(0, io.SEEK_END)
        fh.write(b'\n{"text": "after the hole"}\n{"text": "again"}\n')
    sizes = _record_reads(monkeypatch, limit=4 << 20)
    parts = plan_parts([("sparse.jsonl", path, "jsonl")])
    assert sum(sizes) >= 2 * 1024**3 and max(sizes) <= 4 << 20
    hole_end = 2 * 1024**3 + 1
    assert [(p.byte_start, p.byte_stop, p.start) for p in parts] == [(0, hole_end, 0),
                                                                     (hole_end, path.stat().st_size, 1)]


def _reference_cuts(data: bytes, cut_every: int) -> list[tuple[int, int]]:
    """The cut points as they were first defined: read up to the target, then finish that line."""
    cuts, line_no, pos, target = [(0, 0)], 0, 0, cut_every
    fh = io.BytesIO(data)
    while target < len(data):
        chunk = fh.read(target - pos)
        line_no += chunk.count(b"\n")
        pos += len(chunk)
        rest = fh.readline()
        if not rest:
            break
        pos += len(rest)
        line_no += rest.endswith(b"\n")
        if pos >= len(data):
            break
        cuts.append((pos, line_no))
        target = pos + cut_every
    return cuts


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 20])
def test_cut_points_of_ordinary_files_are_unchanged_by_bounded_reads(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(shards, "_READ_CHUNK", chunk)
    lines = [b"x" * (n * 7 % 23) for n in range(60)] + [b"y" * 200, b"", b"\r", b"z" * 5]
    for tail in (b"", b"\n", b"no newline at the end"):
        data = b"\n".join(lines) + b"\n" + tail
        path = tmp_path / "f.jsonl"
        path.write_bytes(data)
        for cut_every in (1, 2, 5, 17, 64, 199, 200, 201, len(data) - 1, len(data), len(data) + 5):
            assert shards._count_lines_at(path, cut_every) == _reference_cuts(data, cut_every), (tail, cut_every)


# ---------------------------------------------------------------- gzip: bounded inflation and part counts


def _gzip_of(path: Path, block: bytes, copies: int) -> None:
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(path, "wb") as fh:
        for _ in range(copies):
            fh.write(comp.compress(block))
        fh.write(comp.flush())


def _count_inflation(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes the planner inflates, through a wrapper on `gzip.open` as `shards` sees it."""
    inflated: list[int] = []
    real_open = gzip.open

    class Counting:
        def __init__(self, fh: Any) -> None:
            self.fh = fh

        def read(self, size: int = -1) -> bytes:
            data = self.fh.read(size)
            inflated.append(len(data))
            return data

        def __getattr__(self, name: str) -> Any:
            return getattr(self.fh, name)

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

    monkeypatch.setattr(gzip, "open", lambda *a, **k: Counting(real_open(*a, **k)))
    return inflated


def test_a_gzip_of_newlines_is_one_part_planned_in_one_bounded_pass(tmp_path, monkeypatch):
    path = tmp_path / "newlines.jsonl.gz"
    _gzip_of(path, b"\n" * (1 << 20), 32)  # 32 MiB of blank lines in ~32 KB
    inflated = _count_inflation(monkeypatch)
    parts = plan_parts([("newlines.jsonl.gz", path, "jsonl.gz")], part_bytes=1, part_rows=1000)
    assert len(parts) == 1 and parts[0].start == 0 and parts[0].stop is None
    assert sum(inflated) <= 32 << 20 and max(inflated) <= 4 << 20


def test_a_gzip_bomb_of_newlines_is_planned_within_its_inflation_budget(tmp_path, monkeypatch):
    path = tmp_path / "bomb.jsonl.gz"
    _gzip_of(path, b"\n" * (1 << 20), 300)  # 300 MiB of newlines, over the 256 MiB minimum budget
    inflated = _count_inflation(monkeypatch)
    parts = plan_parts([("bomb.jsonl.gz", path, "jsonl.gz")], part_bytes=1, part_rows=1000)
    budget = shards.inflate_limit(path.stat().st_size)
    assert len(parts) == 1 and sum(inflated) <= budget + (4 << 20)


def test_a_gzip_of_many_short_documents_is_cut_into_at_most_the_capped_parts(tmp_path, monkeypatch):
    path = tmp_path / "docs.jsonl.gz"
    texts = [f"document {i}" for i in range(40_000)]
    path.write_bytes(gzip.compress(_jsonl(texts) + b"\n\n\r\n", mtime=0))
    lines = 40_003
    inflated = _count_inflation(monkeypatch)
    parts = plan_parts([("docs.jsonl.gz", path, "jsonl.gz")], part_bytes=1, part_rows=100)
    monkeypatch.undo()
    cap = shards.MAX_GZIP_PARTS
    assert 1 < len(parts) <= cap and sum(inflated) <= len(gzip.decompress(path.read_bytes()))
    assert parts[0].start == 0 and parts[-1].stop is None
    assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
    # each part inflates the stream from its start up to its stop: all of them together, under cap / 2 + 1 passes
    work = sum(p.stop if p.stop is not None else lines for p in parts)
    assert work <= (cap / 2 + 1) * lines
    # ids do not depend on the cut
    whole = read_part(plan_parts([("docs.jsonl.gz", path, "jsonl.gz")])[0], ReadOptions())
    cut = pa.concat_tables([read_part(p, ReadOptions()) for p in parts])
    assert cut["id"].to_pylist() == whole["id"].to_pylist() == [f"docs.jsonl.gz#{i}" for i in range(40_000)]
    assert cut["text"].to_pylist() == texts


def test_a_small_gzip_is_cut_exactly_as_before(tmp_path):
    path = tmp_path / "small.jsonl.gz"
    path.write_bytes(gzip.compress(_jsonl([str(i) for i in range(10)]), mtime=0))
    parts = plan_parts([("small.jsonl.gz", path, "jsonl.gz")], part_bytes=1, part_rows=3)
    assert [(p.index, p.count, p.start, p.stop) for p in parts] == [(0, 4, 0, 3), (1, 4, 3, 6), (2, 4, 6, 9),
                                                                    (3, 4, 9, None)]


def test_a_gzip_that_is_mostly_blank_lines_is_cut_by_its_documents(tmp_path):
    path = tmp_path / "sparse_docs.jsonl.gz"
    body = b"".join(json.dumps({"text": str(i)}).encode() + b"\n" + b"\n" * 99 + b"  \t\n" for i in range(50))
    path.write_bytes(gzip.compress(body, mtime=0))
    parts = plan_parts([("sparse_docs.jsonl.gz", path, "jsonl.gz")], part_bytes=1, part_rows=10)
    assert len(parts) == 5  # 50 documents in parts of 10, not 5,050 lines in parts of 10
    cut = pa.concat_tables([read_part(p, ReadOptions()) for p in parts])
    assert cut["text"].to_pylist() == [str(i) for i in range(50)]
