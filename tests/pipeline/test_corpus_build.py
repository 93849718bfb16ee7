"""`corpus build` names the files it skips, and can be told to read unknown suffixes as text."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

from thresher.jobs.cli import main
from thresher.pipeline.corpus import NO_SUFFIX, SKIP_SUFFIX, build_corpus


def _docs(out: Path) -> list[dict]:
    """Every document of every shard, in shard order: what a reader of the corpus sees."""
    rows = []
    for shard in sorted(out.rglob("*.jsonl.gz")):
        with gzip.open(shard, "rt", encoding="utf-8") as fh:
            rows.extend(json.loads(line) for line in fh)
    return rows


def _mixed_tree(root: Path) -> Path:
    src = root / "texts"
    (src / "notes").mkdir(parents=True)
    (src / "notes" / "a.txt").write_text("plain text file")
    (src / "notes" / "rows.jsonl").write_text('{"text": "json lines"}\n')
    (src / "notes" / "page.xml").write_text("<p>markup text</p>")
    (src / "notes" / "run.log").write_text("log line one")
    (src / "notes" / "LICENSE-2.0").write_text("licence text")
    (src / "notes" / "blob.bin").write_bytes(b"\x00\x01\x02binary")  # unknown suffix, and binary
    (src / "notes" / "broken.txt").write_bytes(b"\x89PNG\x00\x00")  # a known suffix, yet binary
    return src


def test_skipped_files_are_counted_by_reason_and_suffix(tmp_path):
    stats = build_corpus(_mixed_tree(tmp_path), tmp_path / "out")
    assert stats.skipped_suffixes == {".jsonl": 1, ".xml": 1, ".log": 1, ".bin": 1, NO_SUFFIX: 1}
    assert set(stats.skipped_files) == {"notes/rows.jsonl", "notes/page.xml", "notes/run.log",
                                        "notes/LICENSE-2.0", "notes/blob.bin", "notes/broken.txt"}
    assert stats.skipped_files["notes/page.xml"] == SKIP_SUFFIX
    assert stats.skipped_files["notes/broken.txt"].startswith("binary")
    assert [d["text"] for d in _docs(tmp_path / "out")] == ["plain text file"]


def test_cli_reports_skipped_files_and_lists_them(tmp_path, capsys):
    src, out = _mixed_tree(tmp_path), tmp_path / "out"
    assert main(["corpus", "build", "--from", str(src), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    text = printed.out + printed.err
    assert "skipped 6 files" in text
    assert ".xml: 1" in text and f"{NO_SUFFIX}: 1" in text and "1 binary or unreadable" in text
    listing = json.loads((out / "_skipped_files.json").read_text())
    assert listing["files"]["notes/page.xml"].startswith("suffix")
    assert listing["suffixes"][".log"] == 1 and len(listing["files"]) == 6


def test_include_suffix_reads_those_files_as_text(tmp_path, capsys):
    src, out = _mixed_tree(tmp_path), tmp_path / "out"
    assert main(["corpus", "build", "--from", str(src), "--out", str(out),
                 "--include-suffix", ".xml", "--include-suffix", "log"]) == 0
    texts = {d["path"]: d["text"] for d in _docs(out)}
    assert texts["notes/page.xml"] == "<p>markup text</p>" and texts["notes/run.log"] == "log line one"
    assert "notes/rows.jsonl" not in texts and "notes/LICENSE-2.0" not in texts
    printed = capsys.readouterr()
    assert "skipped 4 files" in printed.out + printed.err


def test_include_empty_suffix_reads_files_without_one(tmp_path, capsys):
    src, out = _mixed_tree(tmp_path), tmp_path / "out"
    assert main(["corpus", "build", "--from", str(src), "--out", str(out), "--include-suffix", ""]) == 0
    assert "notes/LICENSE-2.0" in {d["path"] for d in _docs(out)}


def test_include_all_reads_every_text_file_but_not_binary_ones(tmp_path, capsys):
    src, out = _mixed_tree(tmp_path), tmp_path / "out"
    assert main(["corpus", "build", "--from", str(src), "--out", str(out), "--include-all"]) == 0
    paths = {d["path"] for d in _docs(out)}
    assert paths == {"notes/a.txt", "notes/rows.jsonl", "notes/page.xml", "notes/run.log", "notes/LICENSE-2.0"}
    printed = capsys.readouterr()
    assert "skipped 2 files: 2 binary or unreadable" in printed.out + printed.err
    listing = json.loads((out / "_skipped_files.json").read_text())
    assert sorted(listing["files"]) == ["notes/blob.bin", "notes/broken.txt"]
    assert all(reason.startswith("binary") for reason in listing["files"].values())


def test_known_text_files_give_the_same_documents_and_no_extra_output(tmp_path, capsys):
    src, out = tmp_path / "texts", tmp_path / "out"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "a.txt").write_text("first\n\nsecond")
    (src / "docs" / "README").write_text("readme text")
    (src / "docs" / "b.md").write_text("# title")
    assert main(["corpus", "build", "--from", str(src), "--out", str(out), "--split", "blank"]) == 0
    assert _docs(out) == [
        {"text": "readme text", "source": "docs", "path": "docs/README"},
        {"text": "first", "source": "docs", "path": "docs/a.txt"},
        {"text": "second", "source": "docs", "path": "docs/a.txt"},
        {"text": "# title", "source": "docs", "path": "docs/b.md"},
    ]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["docs", "docs/docs-00000.jsonl.gz"]
    printed = capsys.readouterr()
    assert "skipped" not in printed.out + printed.err
    # the library, called as before, writes the same bytes and reports nothing skipped
    stats = build_corpus(src, tmp_path / "lib", split="blank")
    assert stats.skipped_files == {} and stats.skipped_suffixes == {}
    assert (tmp_path / "lib" / "docs" / "docs-00000.jsonl.gz").read_bytes() == (out / "docs" / "docs-00000.jsonl.gz").read_bytes()
