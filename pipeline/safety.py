"""Guards for names and sizes that come from input: paths stay inside their root, inflation is bounded.

Shard ids, pool names and part keys become file names under an output directory,
so a name such as `../../etc/x`, `/abs/path` or a link pointing elsewhere must be
refused rather than followed. Compressed inputs are inflated with a budget, so a
small gzip bomb cannot fill memory or disk; files that are read whole (vendor
samples, price lists, specs) are read with a size cap. An output folder must be a
folder that can be written, and must not overlap its job's input (`check_out_writable`,
`check_out_outside_input`): both are checked before any work starts.
"""
from __future__ import annotations

import fnmatch
import os
import uuid
from pathlib import Path

from thresher.metrics.errors import InputError, JobFailed

# A gzip stream inflates at most ~1032x; real jsonl text inflates 3-10x. A shard may
# inflate to `MAX_COMPRESSION_RATIO` times its size, but always to at least `MIN_INFLATE_BYTES`.
MAX_DECOMPRESSED_BYTES = 64 * 1024**3
MAX_COMPRESSION_RATIO = 200.0
MIN_INFLATE_BYTES = 256 * 1024**2
MAX_SPEC_BYTES = 16 * 1024**2


class UnsafePath(JobFailed, ValueError):
    """A name that would escape the directory it belongs to."""


class InputTooLarge(InputError):
    """A file or stream larger than the cap set for it."""


class OutDirError(InputError):
    """An output folder that cannot or must not be used (a file, unwritable, overlapping the input): exit status 2."""


GLOB_CHARS = frozenset("*?[")


def check_name(name: str, what: str = "name") -> str:
    """A single path component (pool name, source name): no separators, no `..`, nothing hidden."""
    if not isinstance(name, str) or not name or name in (".", "..") or "\x00" in name:
        raise UnsafePath(f"{what} {name!r} is not a usable file name")
    if "/" in name or "\\" in name or name.startswith((".", "_")):
        raise UnsafePath(f"{what} {name!r} must not contain '/' or '\\' nor start with '.' or '_'")
    return name


def check_relative(relative: str, what: str = "name") -> Path:
    """A relative path with no absolute start, no `..`, no empty or NUL parts."""
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise UnsafePath(f"{what} {relative!r} is not a safe relative name")
    rel = Path(relative)
    if rel.is_absolute() or relative.startswith("/") or any(p == ".." for p in rel.parts) or "//" in relative:
        raise UnsafePath(f"{what} {relative!r} is not a safe relative name (absolute, '..' or empty part)")
    return rel


def safe_join(root: str | os.PathLike, relative: str):
    """`root / relative`, refusing absolute names, `..`, and links that lead out of `root`.

    A local root gives a `Path`; a URI root (`thresher.pipeline.storage.Location`) a Location
    below it, where the name checks are the whole guard (object stores have no links).
    """
    from thresher.pipeline.storage import Location, place

    rel = check_relative(relative, "output name")
    where = place(root)
    if isinstance(where, Location):
        return where / rel.as_posix()
    base = Path(where).resolve()
    target = (base / rel).resolve()
    if target != base and base not in target.parents:
        raise UnsafePath(f"{relative!r} resolves to {target}, outside {base} (a link leads out of the output directory)")
    return base / rel


def inflate_limit(compressed_bytes: int, max_bytes: int = MAX_DECOMPRESSED_BYTES,
                  max_ratio: float = MAX_COMPRESSION_RATIO) -> int:
    """How many bytes a compressed file of this size may inflate to."""
    by_ratio = max(MIN_INFLATE_BYTES, int(max_ratio * max(0, compressed_bytes)))
    return min(int(max_bytes), by_ratio)


def read_capped(path: str | os.PathLike, max_bytes: int = MAX_SPEC_BYTES, what: str = "file") -> bytes:
    """The bytes of a file read whole, refusing one larger than `max_bytes` without reading it all.

    The read is `thresher.pipeline.storage.capped.read_limited_at` (for a local file the one capped reader every room
    uses, `thresher.metrics.files.read_limited`).
    """
    from thresher.metrics.files import FormatError
    from thresher.pipeline.storage import place
    from thresher.pipeline.storage.capped import read_limited_at

    try:
        return read_limited_at(path, max_bytes, what)
    except FormatError:
        raise InputTooLarge(f"{place(path)}: {what} is larger than the {max_bytes}-byte cap; split it or raise the "
                            f"cap") from None


def before_wildcards(pattern: str) -> str:
    """The text of a glob (a path or a URI) before its first wildcard: `s3://b/in/x*.jsonl` -> `s3://b/in/x`."""
    cut = min((i for i in (pattern.find(c) for c in GLOB_CHARS) if i >= 0), default=len(pattern))
    return pattern[:cut]


def glob_root(pattern: str) -> Path:
    """The fixed folder a glob starts from: its components before the first one holding a wildcard."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts:
        if GLOB_CHARS & set(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _within(path: Path, folder: Path) -> bool:
    """`path` is `folder` or lies below it (both resolved)."""
    return path == folder or folder in path.parents


def _glob_reaches(pattern: tuple[str, ...], folder: tuple[str, ...]) -> bool:
    """Whether glob components `pattern` can match a file below `folder` (both relative to the glob's root).

    A `**` matches any depth, so it reaches every folder below the root; otherwise each
    component must match the folder's name at its depth and the pattern must go deeper.
    """
    for i, part in enumerate(pattern):
        if "**" in part:
            return True
        if i == len(folder):
            return True  # the rest of the pattern matches names inside `folder`
        if not fnmatch.fnmatchcase(folder[i], part):
            return False
    return False  # the pattern ends at `folder` or above it: it names no file inside


def check_out_outside_input(input: str | os.PathLike, out: str | os.PathLike) -> None:
    """Refuse an output folder that overlaps the job's input, before any work starts.

    Outputs written inside the input become input: a rerun finds the shards changed and
    cannot resume, and a later job over the input reads sidecars, ledgers and job.json as
    documents. So `out` may not be or lie inside an input folder, nor be or lie under an
    input file; and the input may not lie inside `out` (`score o/sidecars --out o`). A single
    input file may have its output folder beside it. A glob (`*`, `?`, `[`) is refused when
    its fixed root lies inside `out`, or when `out` lies under the root and the pattern can
    match files inside `out` (`in/**/*.jsonl` with `in/o`); `in/*.jsonl` with `in/o` matches
    only files directly in `in`, like single files, and is allowed. Paths are resolved, so
    links and `..` do not hide an overlap. Raises OutDirError (exit status 2).
    """
    text = os.fspath(input)
    target = Path(out).resolve()
    if GLOB_CHARS & set(text):
        root = glob_root(text)
        base = root.resolve()
        if _within(base, target):
            raise OutDirError(f"the input {text} lies inside the output folder {out}; choose an output folder "
                              "that does not hold the input")
        rest = Path(text).parts[len(root.parts):]
        if _within(target, base) and (".." in rest or _glob_reaches(rest, target.relative_to(base).parts)):
            raise OutDirError(f"the output folder {out} lies inside the input {text} (the pattern would read the "
                              "job's own outputs); choose an output folder outside it")
        return
    source = Path(text).resolve()
    if _within(target, source):
        raise OutDirError(f"the output folder {out} lies inside the input {text}; outputs there become input (a "
                          "rerun cannot resume, later jobs read them as documents); choose a folder outside it")
    if _within(source, target):
        raise OutDirError(f"the input {text} lies inside the output folder {out}; choose an output folder that "
                          "does not hold the input")


def check_out_writable(out: str | os.PathLike) -> None:
    """Refuse an output folder that cannot be one, before any work starts; creates nothing.

    `out` must be a folder or not exist yet, must not lie under a file, and its nearest
    existing folder must take a new file: a probe file is created there and removed, since
    permission bits alone do not tell (root ignores them; read-only mounts and quotas
    ignore the bits). Raises OutDirError (exit status 2) naming the reason.
    """
    path = Path(out)
    here = path.absolute()
    try:
        if path.is_symlink() and not path.exists():
            raise OutDirError(f"the output folder {out} is a link that leads nowhere; remove it or choose another folder")
        if path.exists() and not path.is_dir():
            raise OutDirError(f"the output folder {out} is a file, not a folder; choose a folder")
        while not here.exists() and not here.is_symlink() and here != here.parent:
            here = here.parent
        if not here.is_dir():
            raise OutDirError(f"the output folder {out} lies under {here}, which is not a folder; choose a folder")
        _probe(here)
    except OSError as exc:  # OutDirError is no OSError: it passes through
        raise OutDirError(f"the output folder {out}: cannot write in {here} ({exc.strerror or exc}); choose a writable "
                          "folder") from None


def _probe(folder: Path) -> None:
    """Create and remove a hidden file in `folder`: the one test of writability that root and mounts respect."""
    probe = folder / f".thresher-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    os.unlink(probe)
