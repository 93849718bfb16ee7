"""Turning a tree of text files into jsonl.gz shards labelled by source.

Each immediate sub-folder of the root is a source; files are read recursively
(gzip transparently), cut into documents (whole file, blank-line blocks, or a
separator line such as fortune's `%`), and written in a deterministic order.

Files are never dropped in silence: every one not read lands in `CorpusStats.skipped_files`
with its reason, and those skipped for their suffix are also counted by suffix, so a caller
can tell the user what to `include_suffixes` (or `include_all`) to read them.
"""
from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from thresher.pipeline.outputs import safe_join, write_gzip_atomic
from thresher.pipeline.storage import place

TEXT_SUFFIXES = {"", ".dz", ".txt", ".rst", ".md", ".text", ".pod", ".html", ".htm", ".tex", ".dict", ".gz", ".py", ".json", ".csv"}
SAMPLE_BYTES = 8192
NO_SUFFIX = "(no suffix)"  # how `LICENSE-2.0` or `README` is counted: `.0` names a version, not a format
# Reasons in `CorpusStats.skipped_files`; a read failure's reason starts with "binary", "unreadable" or "larger".
SKIP_SUFFIX = "suffix not read as text"
SKIP_LINK = "a link or special file, not followed"


@dataclass(frozen=True)
class CorpusStats:
    sources: dict[str, int]
    documents: int
    shards: int
    skipped_files: dict[str, str]  # path relative to the root -> why it was not read
    skipped_suffixes: dict[str, int] = field(default_factory=dict)  # suffix label -> files skipped for it


def suffix_label(path: Path) -> str:
    """The suffix a file is counted and included under: lower-case, or NO_SUFFIX.

    A "suffix" without a letter (`LICENSE-2.0`, `notes.2024`) or with odd characters
    (`Dr. Who`) is part of the name, not a format, so such files count as having none.
    """
    s = path.suffix.lower()
    body = s[1:]
    if body and any(c.isalpha() for c in body) and all(c.isalnum() or c in "_+-" for c in body):
        return s
    return NO_SUFFIX


def normalize_suffixes(suffixes: Iterable[str]) -> set[str]:
    """User-given suffixes as labels: `xml`, `.XML` -> `.xml`; `""` or NO_SUFFIX -> NO_SUFFIX."""
    out = set()
    for s in suffixes:
        s = s.strip().lower()
        if s in ("", ".", NO_SUFFIX):
            out.add(NO_SUFFIX)
        else:
            out.add(s if s.startswith(".") else "." + s)
    return out


def _is_text_suffix(path: Path, include: set[str], include_all: bool) -> bool:
    """Known text suffixes as always, plus what the caller asked for (by label or by the literal suffix)."""
    suffix = path.suffix.lower()
    return suffix in TEXT_SUFFIXES or include_all or suffix in include or suffix_label(path) in include


def _read_or_reason(path: Path, max_bytes: int) -> tuple[str | None, str]:
    """The file's text, or None and why not: the reason goes to the user, so it names the cause."""
    opener = gzip.open if path.suffix in (".gz", ".dz") else open  # dictd .dz files are gzip
    try:
        with opener(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except (OSError, EOFError) as exc:
        return None, f"unreadable: {type(exc).__name__}: {exc}"
    if len(raw) > max_bytes:
        return None, f"larger than the size limit of {max_bytes} bytes"
    if b"\x00" in raw[:SAMPLE_BYTES]:
        return None, f"binary: NUL bytes in the first {SAMPLE_BYTES} bytes"
    try:
        return raw.decode("utf-8"), ""
    except UnicodeDecodeError:
        return raw.decode("latin-1"), ""


def _read_text(path: Path, max_bytes: int) -> str | None:
    return _read_or_reason(path, max_bytes)[0]


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


def _all_files(root: Path) -> Iterator[Path]:
    """Every non-directory entry below `root` in walk order, links and special files included."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def _files(root: Path) -> Iterator[Path]:
    for path in _all_files(root):
        if path.is_file() and not path.is_symlink() and path.suffix.lower() in TEXT_SUFFIXES:
            yield path


def build_corpus(
    src: str | os.PathLike,
    out: str | os.PathLike,
    split: str = "file",
    min_chars: int = 1,
    docs_per_shard: int = 20_000,
    max_file_bytes: int = 256 * 1024 * 1024,
    include_suffixes: Iterable[str] = (),
    include_all: bool = False,
) -> CorpusStats:
    """Shards from a tree of text files; see the module doc.

    `include_suffixes` (e.g. `[".xml", ""]`, "" for files without one) and `include_all`
    read files of other suffixes as text too; a binary file (NUL bytes) is skipped either way.
    """
    include = normalize_suffixes(include_suffixes)
    root, dest = Path(src), place(out)  # text files on this machine; the shards may go to a store
    if not root.is_dir():
        raise FileNotFoundError(f"{src}: not a directory")
    split_documents("", split, min_chars)  # validate the split mode before reading anything
    sources: dict[str, int] = {}
    skipped: dict[str, str] = {}
    skipped_suffixes: dict[str, int] = {}
    shards = 0
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    for entry in entries:
        source = entry.stem if entry.is_file() else entry.name
        files = [entry] if entry.is_file() else list(_all_files(entry))
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
            rel = f.relative_to(root).as_posix()
            if f is not entry:  # a file named at the top is a source of its own, read whatever its suffix
                if f.is_symlink() or not f.is_file():
                    skipped[rel] = SKIP_LINK
                    continue
                if not _is_text_suffix(f, include, include_all):
                    skipped[rel] = SKIP_SUFFIX
                    label = suffix_label(f)
                    skipped_suffixes[label] = skipped_suffixes.get(label, 0) + 1
                    continue
            text, reason = _read_or_reason(f, max_file_bytes)
            if text is None:
                skipped[rel] = reason
                continue
            for doc in split_documents(text, split, min_chars):
                buffer.append(json.dumps({"text": doc, "source": source, "path": rel}, ensure_ascii=False) + "\n")
                count += 1
                if len(buffer) >= docs_per_shard:
                    flush()
        flush()
        if count:
            sources[source] = count
    return CorpusStats(sources=sources, documents=sum(sources.values()), shards=shards, skipped_files=skipped,
                       skipped_suffixes=skipped_suffixes)


def skipped_summary(stats: CorpusStats) -> str:
    """One line for the user, e.g. `skipped 4 files: 3 with suffixes not read as text (.xml: 2, .log: 1), 1 binary
    or unreadable`; "" when nothing was skipped, so the normal case prints what it always did."""
    if not stats.skipped_files:
        return ""
    n_suffix = sum(1 for r in stats.skipped_files.values() if r == SKIP_SUFFIX)
    n_link = sum(1 for r in stats.skipped_files.values() if r == SKIP_LINK)
    n_read = len(stats.skipped_files) - n_suffix - n_link
    parts = []
    if n_suffix:
        by = sorted(stats.skipped_suffixes.items(), key=lambda kv: (-kv[1], kv[0]))
        parts.append(f"{n_suffix} with suffixes not read as text ({', '.join(f'{k}: {v}' for k, v in by)})")
    if n_read:
        parts.append(f"{n_read} binary or unreadable (or over the size limit)")
    if n_link:
        parts.append(f"{n_link} links or special files")
    n = len(stats.skipped_files)
    return f"skipped {n} file{'s' if n != 1 else ''}: " + ", ".join(parts)
