"""Guards for names and sizes that come from input: paths stay inside their root, inflation is bounded.

Shard ids, pool names and part keys become file names under an output directory,
so a name such as `../../etc/x`, `/abs/path` or a link pointing elsewhere must be
refused rather than followed. Compressed inputs are inflated with a budget, so a
small gzip bomb cannot fill memory or disk; files that are read whole (vendor
samples, price lists, specs) are read with a size cap.
"""
from __future__ import annotations

import os
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


def safe_join(root: str | os.PathLike, relative: str) -> Path:
    """`root / relative`, refusing absolute names, `..`, and links that lead out of `root`."""
    rel = check_relative(relative, "output name")
    base = Path(root).resolve()
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

    The read is `thresher.metrics.files.read_limited`, the one capped reader every room uses.
    """
    from thresher.metrics.files import FormatError, read_limited

    try:
        return read_limited(path, max_bytes, what)
    except FormatError:
        raise InputTooLarge(f"{Path(path)}: {what} is larger than the {max_bytes}-byte cap; split it or raise the "
                            f"cap") from None
