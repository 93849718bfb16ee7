"""A multi-source corpus of real text from Debian packages, for benchmarks.

Sources differ in register and quality: technical documentation (Python, Perl),
long-form essays, dictionaries, quotes, HTML handbooks. Install them with
    apt-get install python3.11-doc perl-doc anarchism fortunes fortunes-mario \
        dict-jargon dict-devil dict-foldoc dict-gcide wordnet-base debian-handbook
The corpus is built once into a cache folder as jsonl.gz shards (one folder per
source, each row {"text", "source", "path"}); missing packages are skipped.
"""
from __future__ import annotations

import glob
import gzip
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from thresher.pipeline.corpus import _read_text

DEFAULT_CACHE = Path(os.environ.get("THRESHER_BENCH_DATA", "bench-data"))
VERSION = "v1"


def _split(pattern: str) -> Callable[[str], list[str]]:
    rx = re.compile(pattern, re.MULTILINE)
    return lambda text: [d.strip() for d in rx.split(text) if d.strip()]


def _html_files(pattern: str) -> list[str]:
    return sorted(glob.glob(pattern, recursive=True))


# source name -> (file glob(s), splitter)
SOURCES: dict[str, tuple[tuple[str, ...], Callable[[str], list[str]]]] = {
    "python-docs": (("/usr/share/doc/python3*/html/_sources/**/*.txt",), _split(r"\n\s*\n\s*\n")),
    "perl-doc": (("/usr/share/perl/5*/pod/*.pod",), _split(r"^(?==head[12] )")),
    "anarchism": (("/usr/share/doc/anarchism/markdown/*.md.gz",), _split(r"^(?=#+ )")),
    "fortunes": (("/usr/share/games/fortunes/*",), _split(r"^%$")),
    "fortunes-pt": (("/usr/share/games/fortunes/mario.*",), _split(r"^%$")),
    "jargon": (("/usr/share/dictd/jargon.dict.dz",), _split(r"\n\n(?=\S)")),
    "devil": (("/usr/share/dictd/devil.dict.dz",), _split(r"\n\n(?=[A-Z])")),
    "foldoc": (("/usr/share/dictd/foldoc.dict.dz",), _split(r"\n\n(?=\S)")),
    "gcide": (("/usr/share/dictd/gcide.dict.dz",), _split(r"\n\n(?=\S)")),
    "wordnet": (("/usr/share/wordnet/data.*",), _split(r"\n")),
    "debian-handbook": (("/usr/share/doc/debian-handbook/html/en-US/*.html",), lambda t: [t] if t.strip() else []),
}
MAX_DOCS_PER_SOURCE = 20_000


def _is_fortune_data(path: str) -> bool:
    return not path.endswith((".dat", ".u8")) and os.path.isfile(path) and not os.path.islink(path)


def iter_source(name: str) -> Iterator[dict]:
    patterns, split = SOURCES[name]
    n = 0
    for pattern in patterns:
        files = sorted(glob.glob(pattern, recursive=True))
        if name.startswith("fortunes"):
            files = [p for p in files if _is_fortune_data(p) and ("mario." in p) == (name == "fortunes-pt")]
        for f in files:
            text = _read_text(Path(f), 512 * 1024 * 1024)
            if text is None:
                continue
            for doc in split(text):
                yield {"text": doc, "source": name, "path": f}
                n += 1
                if n >= MAX_DOCS_PER_SOURCE:
                    return


def build(cache: Path = DEFAULT_CACHE, docs_per_shard: int = 5000) -> Path:
    """Build (once) and return the corpus folder."""
    root = cache / f"debian-text-{VERSION}"
    done = root / "_built.json"
    if done.exists():
        return root
    counts = {}
    for name in SOURCES:
        buf: list[str] = []
        index = 0
        count = 0
        for row in iter_source(name):
            buf.append(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
            if len(buf) >= docs_per_shard:
                _write(root / name / f"{name}-{index:05d}.jsonl.gz", buf)
                buf, index = [], index + 1
        if buf:
            _write(root / name / f"{name}-{index:05d}.jsonl.gz", buf)
        if count:
            counts[name] = count
    if not counts:
        raise SystemExit("no Debian text packages found; see the install line in benchmarks/text_corpus.py")
    root.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(counts, indent=2))
    return root


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        fh.write("".join(lines).encode("utf-8"))


def load_texts(root: Path, limit: int | None = None) -> tuple[list[str], list[str]]:
    """All (text, source) pairs of the corpus, interleaved across sources, in a fixed order."""
    per_source: dict[str, list[str]] = {}
    for shard in sorted(root.rglob("*.jsonl.gz")):
        with gzip.open(shard, "rt", encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                per_source.setdefault(row["source"], []).append(row["text"])
    texts, sources = [], []
    iters = {s: iter(v) for s, v in sorted(per_source.items())}
    while iters:
        for s in list(iters):
            try:
                texts.append(next(iters[s]))
                sources.append(s)
            except StopIteration:
                del iters[s]
    if limit:
        texts, sources = texts[:limit], sources[:limit]
    return texts, sources


if __name__ == "__main__":
    root = build()
    print(root, json.loads((root / "_built.json").read_text()))
