"""Finding shards: the files under a path, a directory or a glob (local or on an object store), with ids and formats.

A shard's id is its path relative to the input root, so ids (and doc ids built on
them) are the same wherever the input is mounted. Discovery never walks through a
directory link, refuses a file link that leaves the input root, and names a file it
cannot read rather than skipping it.
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from thresher.pipeline.parts import ShardError
from thresher.pipeline.safety import GLOB_CHARS, before_wildcards, glob_root
from thresher.pipeline.storage import Entry, Location, Stat, at, is_remote

FORMATS = ("jsonl", "jsonl.gz", "jsonl.bz2", "jsonl.xz", "jsonl.zst", "parquet", "arrow")
_JSONL = (".jsonl", ".json", ".ndjson")
# compressed JSON lines the reader streams: suffix -> format
_COMPRESSED = {".gz": "jsonl.gz", ".bz2": "jsonl.bz2", ".xz": "jsonl.xz", ".lzma": "jsonl.xz", ".zst": "jsonl.zst",
               ".zstd": "jsonl.zst"}
# compressions we do not read: refused by name, never skipped in silence
_UNREAD = (".lz4", ".br", ".snappy", ".sz", ".lzo", ".z", ".zip", ".7z", ".rar", ".tar", ".tgz")


def shard_format(path: str) -> str | None:
    """The format of a shard from its name, None for a file that is not a shard.

    A JSON-lines file compressed in a way the reader cannot stream is an error naming
    it: skipping it would lose its rows without a word.
    """
    name = path.lower()
    stem, dot, ext = name.rpartition(".")
    if dot and stem.endswith(_JSONL):
        suffix = "." + ext
        if suffix in _COMPRESSED:
            return _COMPRESSED[suffix]
        if suffix in _UNREAD:
            raise ShardError(f"{path}: JSON lines compressed as {suffix}, which Thresher does not read; "
                             f"recompress it as .gz, .bz2, .xz or .zst")
    if name.endswith(_JSONL):
        return "jsonl"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith(".arrow"):
        return "arrow"
    return None


def printable_shard_id(relative: str) -> str:
    """A shard id that is valid UTF-8: a file name's undecodable bytes become \\xNN escapes.

    The file is still read through its real name; only ids, part keys and output
    names use the escaped form, so one odd name cannot break a job's outputs.
    """
    try:
        relative.encode("utf-8")
        return relative
    except UnicodeEncodeError:
        return os.fsencode(relative).decode("utf-8", errors="backslashreplace")


def _is_dir(entry: os.DirEntry, follow: bool) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow)
    except OSError:  # unreadable entry: not a directory to walk into
        return False


def _name_matches(name: str, pattern: str) -> bool:
    """One path component against one glob component, as `glob` does: wildcards skip hidden names."""
    if name.startswith(".") and not pattern.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, pattern)


def _real_subdirs(top: Path) -> list[Path]:
    """`top` and every directory below it that is not hidden, reached without going through a link."""
    found = [top]
    for dirpath, dirnames, _ in os.walk(top, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not os.path.islink(os.path.join(dirpath, d)))
        found.extend(Path(dirpath) / d for d in dirnames)
    return found


def _matches_in(directory: Path, pattern: str, last: bool) -> list[Path]:
    """Entries of `directory` matching one glob component: files (links to files, broken links) for the
    last component, real directories (never links to them) for the others."""
    if not GLOB_CHARS & set(pattern):
        p = directory / pattern
        if last:
            return [p] if os.path.lexists(p) and not p.is_dir() else []
        return [p] if pattern in (".", "..") or (p.is_dir() and not p.is_symlink()) else []
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:  # missing or unreadable directory: nothing matches there
        return []
    return [directory / e.name for e in entries
            if _name_matches(e.name, pattern) and (not _is_dir(e, True) if last else _is_dir(e, False))]


def _glob_files(root: Path, pattern: str) -> list[Path]:
    """Files matching a glob below its fixed `root`, each once, never descending through a directory link.

    `glob.glob` follows directory links, so one link to a parent lists every file once
    per level until the system's link limit (40) and two make it exponential; this walks
    real directories only, as the directory walk does. Links to files and broken links
    still match, so the reader can report them.
    """
    components = Path(pattern).parts[len(root.parts):]
    dirs = [root]
    found: dict[Path, None] = {}
    for i, component in enumerate(components):
        last = i == len(components) - 1
        if component == "**":
            dirs = list(dict.fromkeys(d for top in dirs for d in _real_subdirs(top)))
            if last:
                found.update(dict.fromkeys(p for d in dirs for p in _matches_in(d, "*", True)))
            continue
        matched = [p for d in dirs for p in _matches_in(d, component, last)]
        if last:
            found.update(dict.fromkeys(matched))
        dirs = list(dict.fromkeys(matched))
    return list(found)


def _check_link_inside(path: Path, real_root: str) -> None:
    """Refuse a shard whose real file lies outside the input root.

    A link to a file is followed only to a target inside the root: a tree handed to
    a job may hold `x.jsonl -> /etc/passwd`, and whatever the reader reads ends in the
    outputs (bad lines in the quarantine), so the job stops before reading anything.
    """
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise ShardError(f"{path}: links to {real}, outside the input root {real_root}; links are followed only "
                         f"inside the root (copy the file in, or name that file itself as the input)")


def _hf_arrow_files(root: Path | Location) -> list | None:
    """Arrow files of a Hugging Face `Dataset`/`DatasetDict` saved with `save_to_disk`, else None."""
    if (root / "dataset_dict.json").is_file():
        splits = json.loads((root / "dataset_dict.json").read_text())["splits"]
        files: list[Path] = []
        for split in splits:
            sub = _hf_arrow_files(root / split)
            if sub is None:
                raise ShardError(f"{root}: split {split!r} listed in dataset_dict.json has no saved dataset")
            files.extend(sub)
        return files
    state = root / "state.json"
    if state.is_file() and (root / "dataset_info.json").is_file():
        names = [f["filename"] for f in json.loads(state.read_text()).get("_data_files", [])]
        return [root / n for n in names]
    return None


@dataclass(frozen=True)
class Listing:
    """What discovery found: the root, the shards, and (for a remote input) each shard's listed size and time."""

    root: Path | Location
    shards: list[tuple[str, Path | Location, str]]
    stats: dict[str, Stat] | None = None


def _glob_regex(pattern: str) -> re.Pattern:
    """A glob below its root as a regex over `a/b/c` paths: `**` any depth, `*` and `?` within one name."""
    out = []
    parts = pattern.split("/")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append("(?:[^/]+/)*" if not last else "(?:[^/]+/)*[^/]+")
            continue
        piece = fnmatch.translate(part)[4:-3]  # strip fnmatch's `(?s:` ... `)\Z`
        piece = piece.replace(".*", "[^/]*").replace("(?!/)", "")
        if not part.startswith("."):
            piece = "(?!\\.)" + piece  # like glob: wildcards skip hidden names
        out.append(piece + ("" if last else "/"))
    return re.compile("".join(out) + "\\Z", re.S)


def _discover_remote(text: str) -> Listing:
    """Shards under an object-store prefix, object or glob, from one recursive listing (no per-object requests)."""
    loc = at(text)
    if not loc.bucket_exists():  # a listing of a missing bucket is merely empty: say what is wrong
        raise ShardError(f"{text}: the bucket does not exist (create it, or check the name)")
    if GLOB_CHARS & set(loc.path):
        fixed = before_wildcards(loc.path)
        root_path = fixed.rsplit("/", 1)[0] if "/" in fixed else fixed
        root = Location(loc.protocol, root_path, loc.options)
        pattern = _glob_regex(loc.path[len(root_path):].lstrip("/"))
        entries = [e for e in root.files() if pattern.match(e.relative)]
        if not entries:
            raise ShardError(f"{text}: the pattern matches no files")
    else:
        entries = []
        if loc.is_file():
            st = loc.stat()
            root = loc.parent
            entries = [Entry(loc, loc.name, st.size, st.mtime_ns)]
        else:
            root = loc
            listed = {e.relative: e for e in loc.files()}  # the one listing: it also tells a saved HF dataset
            hf = _hf_arrow_files(loc) if "dataset_dict.json" in listed or "state.json" in listed else None
            if hf is not None:
                entries = [listed.get(f.relative_to(loc)) or Entry(f, f.relative_to(loc), 0, None) for f in hf]
            else:
                entries = [e for e in listed.values() if not any(c.startswith((".", "_")) for c in e.relative.split("/"))]
            if not entries and not loc.is_dir():
                raise ShardError(f"{text}: no such object or prefix")
    shards, stats = [], {}
    for e in entries:
        fmt = shard_format(e.relative)
        if fmt is None:
            continue
        shards.append((e.relative, e.location, fmt))
        stats[e.relative] = Stat(e.size, e.mtime_ns)
    if not shards:
        raise ShardError(f"{text}: no shards found (looked for {', '.join('*.' + x for x in FORMATS)})")
    shards.sort(key=lambda s: s[0])
    return Listing(root, shards, stats)


def discover_listing(input_path: str | os.PathLike) -> Listing:
    """`discover`, keeping what a remote listing says about each shard (size, time) for the job manifest."""
    if is_remote(input_path):
        return _discover_remote(os.fspath(input_path))
    root, shards = discover(input_path)
    return Listing(root, shards)


def discover(input_path: str | os.PathLike) -> tuple[Path, list[tuple[str, Path, str]]]:
    """Find shards under a file, directory or glob: returns (root, [(shard id, path, format)]).

    A URI (`s3://bucket/prefix/`, `s3://bucket/**/*.jsonl.gz`) is listed once, recursively;
    its shards are `Location`s, their ids the keys below the prefix.

    Shards are sorted by id so every run sees the same order, and each path is listed
    once. Links to directories are never walked through, by a glob or a directory walk
    (no loops, no file seen again under a longer name). A link to a file is followed only
    if its target lies inside the input root (it is then a shard of its own, named by the
    link); one that leads out is a ShardError naming link and target for
    the whole job, raised before anything is read, so no byte of the outside file can
    reach an output. An input that is itself one file is read wherever it leads: the user
    named it. Broken links (dangling, loops) stay shards the reader reports as unreadable.
    """
    if is_remote(input_path):
        found = _discover_remote(os.fspath(input_path))
        return found.root, found.shards
    text = str(input_path)
    named = False  # the input is one file, named by the user: followed wherever it leads
    if GLOB_CHARS & set(text):
        root = glob_root(text)
        files = _glob_files(root, text)
        if not files:
            raise ShardError(f"{text}: the pattern matches no files")
    else:
        path = Path(text)
        if not path.exists():
            if path.is_symlink():
                raise ShardError(f"{text}: a symbolic link that leads nowhere (dangling, or a loop of links)")
            raise ShardError(f"{text}: no such file or directory")
        if path.is_file():
            root, files, named = path.parent, [path], True
        else:
            root = path
            hf = _hf_arrow_files(path)
            if hf is not None:
                files = hf
            else:
                files = []
                for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
                    dirnames.sort()
                    dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
                    files.extend(Path(dirpath) / f for f in filenames if not f.startswith((".", "_")))
    shards = []
    seen: set[str] = set()
    real_root = os.path.realpath(root)
    for f in files:
        fmt = shard_format(str(f))
        if fmt is None:
            continue
        shard_id = Path(os.path.relpath(f, root)).as_posix()
        if shard_id.startswith(("../", "/")):
            raise ShardError(f"{f}: resolves outside the input root {root}")
        if shard_id in seen:  # one file, listed once
            continue
        seen.add(shard_id)
        if not named:
            _check_link_inside(f, real_root)
        shards.append((printable_shard_id(shard_id), f, fmt))
    if not shards:
        raise ShardError(f"{text}: no shards found (looked for {', '.join('*.' + x for x in FORMATS)})")
    shards.sort(key=lambda s: s[0])
    return root, shards


