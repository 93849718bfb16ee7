"""Whole files within a size limit, local or remote, refused with the same errors either way."""
from __future__ import annotations

import os

from thresher.pipeline.storage.location import Location
from thresher.pipeline.storage.resolve import place


def read_limited_at(path: str | os.PathLike | Location, max_bytes: int, what: str, missing: str = "") -> bytes:
    """A whole file of at most `max_bytes`, local or remote, refused with the same errors as a local one.

    Local files go through `thresher.metrics.files.read_limited` (the one capped reader);
    an object is looked up, refused when too large or absent, then read.
    """
    from thresher.metrics.files import check_limited, no_such_file, read_limited, too_large

    where = place(path)
    if not isinstance(where, Location):
        return read_limited(where, max_bytes, what, missing)
    try:
        size = where.stat().size  # one lookup: there and a file, and how large
    except FileNotFoundError:
        raise no_such_file(where.uri, what, missing) from None
    if size > max_bytes:
        raise too_large(where.uri, size, max_bytes, what)
    return check_limited(where.read_bytes(max_bytes), where.uri, max_bytes, what)
