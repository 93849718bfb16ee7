"""The demo's corpus: text every Python installation has, grouped by package as sources.

Docstrings of the standard library (parsed with `ast`, never imported) are
written as a tree of text files, one folder per source: large packages are their
own source, the rest share one. When Debian's python3 documentation is
installed, its reStructuredText sources join as one more source, and so do
other Debian text packages (fortunes, Perl's POD manuals, the Anarchist FAQ) when
they are there. `write_demo_tree` can cap the documents for a quick run.
"""
from __future__ import annotations

import ast
import sysconfig
from pathlib import Path

SEPARATOR = "\n\x1e\n"  # record separator between docstrings in one file
SPLIT = "sep:^\x1e$"
SKIP_TOP = {"site-packages", "test", "idlelib", "lib2to3", "__pycache__"}
MIN_DOCS_FOR_OWN_SOURCE = 150
PY_DOC_GLOBS = ("/usr/share/doc/python3*/html/_sources",)


def _docstrings(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                out.append(doc.replace("\x1e", " "))
    return out


def write_stdlib_tree(dest: Path, include_python_docs: bool = True) -> dict[str, int]:
    """Write `<dest>/<source>/<module>.txt` files; return documents per source."""
    root = Path(sysconfig.get_paths()["stdlib"])
    by_top: dict[str, list[tuple[str, list[str]]]] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in SKIP_TOP or "tests" in rel.parts or rel.parts[0].startswith("."):
            continue
        docs = _docstrings(path)
        if docs:
            top = rel.parts[0].removesuffix(".py").lstrip("_") or "misc"
            by_top.setdefault(top, []).append((rel.with_suffix(".txt").as_posix().replace("/", "."), docs))
    counts: dict[str, int] = {}
    for top, files in sorted(by_top.items()):
        n = sum(len(d) for _, d in files)
        source = top if n >= MIN_DOCS_FOR_OWN_SOURCE else "stdlib-modules"
        for name, docs in files:
            target = dest / source / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(SEPARATOR.join(docs), encoding="utf-8")
        counts[source] = counts.get(source, 0) + n
    if include_python_docs:
        for pattern in PY_DOC_GLOBS:
            for src in sorted(Path("/").glob(pattern.lstrip("/"))):
                n = 0
                for f in sorted(src.rglob("*.txt")):
                    target = dest / "python-docs" / f.relative_to(src).as_posix().replace("/", ".")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    # one document per section: sections are separated by blank lines before a heading
                    text = f.read_text(encoding="utf-8", errors="replace")
                    target.write_text(text.replace("\n\n\n", SEPARATOR), encoding="utf-8")
                    n += text.count("\n\n\n") + 1
                if n:
                    counts["python-docs"] = n
                break
    return counts


# Debian text packages used when installed: source -> (glob, separator regex between documents)
DEBIAN_TEXT = {
    "fortunes": ("/usr/share/games/fortunes/*", r"(?m)^%$"),
    "perl-doc": ("/usr/share/perl/5*/pod/*.pod", r"(?m)^(?==head[12] )"),
    "anarchism": ("/usr/share/doc/anarchism/markdown/*.md.gz", r"(?m)^(?=#+ )"),
}
MAX_DEBIAN_DOCS = 2500  # per source: keeps the demo inside its time budget
MAX_DEBIAN_WORDS = 300_000


def _debian_docs(pattern: str, sep: str) -> list[tuple[str, list[str]]]:
    import gzip

    from thresher.pipeline.corpus import split_documents

    files = []
    for f in sorted(Path("/").glob(pattern.lstrip("/"))):
        if not f.is_file() or f.suffix in (".dat", ".u8") or f.is_symlink():
            continue
        try:
            if f.suffix == ".gz":
                with gzip.open(f, "rb") as fh:
                    raw = fh.read()
            else:
                raw = f.read_bytes()
            text = raw.decode("utf-8", errors="replace")
        except OSError:
            continue
        docs = [d.replace("\x1e", " ") for d in split_documents(text, "sep:" + sep, 41)]
        if docs:
            files.append((f.name, docs))
    return files


def write_demo_tree(dest: Path, max_docs: int | None = None) -> dict[str, int]:
    """The stdlib tree plus installed Debian text; with `max_docs`, each source keeps its share of that many."""
    counts = write_stdlib_tree(dest)
    for source, (pattern, sep) in DEBIAN_TEXT.items():
        left, words = MAX_DEBIAN_DOCS, MAX_DEBIAN_WORDS
        for name, docs in _debian_docs(pattern, sep):
            kept = []
            for d in docs[:left]:
                words -= len(d.split())
                if words < 0:
                    break
                kept.append(d)
            docs = kept
            left -= len(docs)
            target = dest / source / (name + ".txt")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(SEPARATOR.join(docs), encoding="utf-8")
            counts[source] = counts.get(source, 0) + len(docs)
            if left <= 0 or words < 0:
                break
    if max_docs is not None:
        total = sum(counts.values())
        for source, n in list(counts.items()):
            quota = max(10, int(max_docs * n / max(total, 1)))
            kept = 0
            for f in sorted((dest / source).glob("*.txt")):
                docs = f.read_text(encoding="utf-8").split(SEPARATOR)
                take = docs[: max(0, quota - kept)]
                kept += len(take)
                if take:
                    f.write_text(SEPARATOR.join(take), encoding="utf-8")
                else:
                    f.unlink()
            counts[source] = kept
    return counts
