"""Turning a tree of text files into jsonl.gz shards labelled by source.

Each immediate sub-folder of the root is a source; files are read recursively
(gzip transparently), cut into documents (whole file, blank-line blocks, or a
separator line such as fortune's `%`), and written in a deterministic order.
"""
from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from thresher.pipeline.outputs import safe_join, write_gzip_atomic

TEXT_SUFFIXES = {"", ".dz", ".txt", ".rst", ".md", ".text", ".pod", ".html", ".htm", ".tex", ".dict", ".gz", ".py", ".json", ".csv"}
SAMPLE_BYTES = 8192


@dataclass(frozen=True)
class CorpusStats:
    sources: dict[str, int]
    documents: int
    shards: int
    skipped_files: dict[str, str]


def _read_text(path: Path, max_bytes: int) -> str | None:
    opener = gzip.open if path.suffix in (".gz", ".dz") else open  # dictd .dz files are gzip
    try:
        with opener(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except (OSError, EOFError):
        return None
    if len(raw) > max_bytes or b"\x00" in raw[:SAMPLE_BYTES]:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def split_documents(text: str, split: str, min_chars: int) -> list[str]:
    if split == "file":
        docs = [text]
    elif split == "blank":
        docs = re.split(r"\n\s*\n", text)
    elif split.startswith("sep:"):
        docs = re.split(split[4:], text, flags=re.MULTILINE)
    else:
        raise ValueError(f"unknown split {split!r}; use file, blank or sep:REGEX")
    return [d.strip() for d in docs if len(d.strip()) >= min_chars]


def _files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink() and path.suffix.lower() in TEXT_SUFFIXES:
                yield path


def build_corpus(
    src: str | os.PathLike,
    out: str | os.PathLike,
    split: str = "file",
    min_chars: int = 1,
    docs_per_shard: int = 20_000,
    max_file_bytes: int = 256 * 1024 * 1024,
) -> CorpusStats:
    root, dest = Path(src), Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"{src}: not a directory")
    split_documents("", split, min_chars)  # validate the split mode before reading anything
    sources: dict[str, int] = {}
    skipped: dict[str, str] = {}
    shards = 0
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    for entry in entries:
        source = entry.stem if entry.is_file() else entry.name
        files = [entry] if entry.is_file() else list(_files(entry))
        buffer: list[str] = []
        count, index = 0, 0

        def flush(buffer: list[str] = buffer, source: str = source) -> None:  # this entry's, bound now
            nonlocal index, shards
            if not buffer:
                return
            path = safe_join(dest, f"{source}/{source}-{index:05d}.jsonl.gz")
            write_gzip_atomic("".join(buffer).encode("utf-8"), path)
            buffer.clear()
            index += 1
            shards += 1

        for f in files:
            text = _read_text(f, max_file_bytes)
            rel = f.relative_to(root).as_posix()
            if text is None:
                skipped[rel] = "binary, unreadable or larger than the size limit"
                continue
            for doc in split_documents(text, split, min_chars):
                buffer.append(json.dumps({"text": doc, "source": source, "path": rel}, ensure_ascii=False) + "\n")
                count += 1
                if len(buffer) >= docs_per_shard:
                    flush()
        flush()
        if count:
            sources[source] = count
    return CorpusStats(sources=sources, documents=sum(sources.values()), shards=shards, skipped_files=skipped)
