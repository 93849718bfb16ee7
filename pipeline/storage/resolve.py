"""From a user's path or URI to a `Location`, with the process's storage options (set once per command)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from thresher.pipeline.storage.backends import ALIASES, NATIVE
from thresher.pipeline.storage.location import Location
from thresher.pipeline.storage.options import StorageOptionError, check_options

_DEFAULTS: dict[str, Any] = {}


def configure(options: dict[str, Any] | None) -> dict[str, Any]:
    """Make `options` this process's storage options (the CLI does this once per command)."""
    checked = check_options(options)
    _DEFAULTS.clear()
    _DEFAULTS.update(checked)
    return checked


def current_options() -> dict[str, Any]:
    return dict(_DEFAULTS)


def split_uri(text: str) -> tuple[str | None, str]:
    """(protocol, rest) of `proto://rest`; (None, text) for a local path (`file://` included)."""
    head, sep, rest = text.partition("://")
    if not sep or "/" in head or not head or not head.replace("+", "").replace("-", "").isalnum():
        return None, text
    proto = ALIASES.get(head.lower(), head.lower())
    if proto == "file":
        return None, rest if rest.startswith("/") else "/" + rest
    return proto, rest


def is_remote(where: str | os.PathLike | Location) -> bool:
    if isinstance(where, Location):
        return where.remote
    return split_uri(os.fspath(where))[0] is not None


def at(where: str | os.PathLike | Location, options: dict[str, Any] | None = None) -> Location:
    """The Location a user's path or URI names; `options` default to the process's (`configure`).

    A URI that holds credentials (`s3://KEY:SECRET@bucket/...`) is refused: credentials come
    from the provider chain, never from a path that ends up in logs and job.json.
    """
    if isinstance(where, Location):
        return where
    text = os.fspath(where)
    protocol, rest = split_uri(text)
    if protocol is None:
        return Location(None, rest)
    host = rest.split("/", 1)[0]
    if "@" in host:
        raise StorageOptionError(f"{protocol}://{host.rsplit('@', 1)[1]}/...: a URI with credentials in it is refused; "
                                 "give credentials through the environment or the provider's config files")
    if not host and protocol in NATIVE:
        raise StorageOptionError(f"{text}: no bucket named (expected {protocol}://BUCKET/PATH)")
    opts = check_options(options) if options is not None else dict(_DEFAULTS)
    return Location(protocol, rest, opts)


def place(where: str | os.PathLike | Location) -> Path | Location:
    """A local `Path` for a local path, a `Location` for a URI.

    Code that uses only what both offer (`/`, `name`, `parent`, `exists`, `is_file`,
    `is_dir`, `read_text`, `read_bytes`, `unlink(missing_ok=True)`, `mkdir`, `iterdir`)
    runs unchanged on both, and local paths keep every behaviour they had.
    """
    if isinstance(where, Location):
        return where.local if where.local is not None else where
    loc = at(where)
    return Path(os.fspath(where)) if loc.local is not None and not isinstance(where, str) else (loc.local or loc)
