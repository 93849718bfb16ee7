"""Output folders on an object store: checked up front, and emptied for --overwrite only when wholly Thresher's.

The same rules as local output folders (`common.prepare_out`): the folder must not overlap
the input, its bucket must exist and take a write (a probe object is written and removed,
so missing permission is one line before any work), and --overwrite deletes an earlier
Thresher output and nothing else. A prefix has no links or empty folders, so the check
works on the one listing of its keys.
"""
from __future__ import annotations

import fnmatch
import os
import uuid
from collections.abc import Iterable

from thresher.jobs.cli import UsageError
from thresher.jobs.overwrite import DATA_SUFFIXES, Layout, _is_ours, layouts, recognise_output
from thresher.pipeline.safety import before_wildcards
from thresher.pipeline.storage import Location, StorageAccessError, StorageError, at, is_remote


def _below(inner: Location, outer: Location) -> bool:
    """`inner` is `outer` or lies below it (same store, same bucket, prefix by whole names)."""
    return inner.protocol == outer.protocol and (inner.path == outer.path or inner.path.startswith(outer.path + "/"))


def check_remote_overlap(source: str | os.PathLike | Location, out: Location) -> None:
    """Refuse an output prefix that holds, or lies inside, the job's input (a glob's fixed part counts)."""
    if not is_remote(source):
        return  # a local input and a remote output cannot overlap
    text = source.uri if isinstance(source, Location) else os.fspath(source)
    fixed = before_wildcards(text)
    src = at(fixed.rstrip("/") if fixed != text else text)
    if _below(out, src):
        raise UsageError(f"the output {out.uri} lies inside the input {text}; outputs there become input; choose an "
                         "output prefix outside it")
    if _below(src, out):
        raise UsageError(f"the input {text} lies inside the output {out.uri}; choose an output prefix that does not "
                         "hold the input")


def check_remote_writable(out: Location) -> None:
    """The bucket exists and takes a new object: a probe is written and deleted before any work starts."""
    try:
        if not out.bucket_exists():
            raise UsageError(f"{out.uri}: the bucket does not exist; create it or check the name")
        if out.is_file():
            raise UsageError(f"the output {out.uri} is an object, not a prefix; choose a prefix")
        probe = out / f".thresher-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except (StorageAccessError, StorageError) as exc:
        raise UsageError(f"the output {out.uri} cannot be written: {str(exc).split(': ', 1)[-1]}") from None


def _strays(relatives: Iterable[str], layout: Layout, shown: str = "") -> list[str]:
    """Keys (relative to the output) that `layout` does not account for."""
    groups: dict[str, list[str]] = {}
    strays: list[str] = []
    for rel in relatives:
        head, sep, rest = rel.partition("/")
        if not sep:
            if not _is_ours(head, layout.files):
                strays.append(shown + head)
            continue
        groups.setdefault(head, []).append(rest)
    for name, below in sorted(groups.items()):
        where = f"{shown}{name}/"
        if name in layout.data:
            strays += [where + r for r in below if not r.endswith(DATA_SUFFIXES)]
        elif name in layout.nested:
            strays += _strays(below, layouts()[layout.nested[name]], where)
        elif name in layout.several:
            children: dict[str, list[str]] = {}
            for r in below:
                child, sep, rest = r.partition("/")
                if not sep:
                    strays.append(where + child)
                else:
                    children.setdefault(child, []).append(rest)
            for child, keys in sorted(children.items()):
                strays += _strays(keys, layouts()[layout.several[name]], f"{where}{child}/")
        else:
            strays.append(where)
    return strays


def clear_remote_output(out: Location, shown: int = 3) -> None:
    """--overwrite on an object store: delete an earlier Thresher output's objects, its marker last.

    Refused (UsageError), deleting nothing, unless the prefix's marker is one Thresher wrote
    and every key below it is one that kind of output writes.
    """
    entries = out.files()
    if not entries:
        return
    layout = recognise_output(out)
    if layout is None:
        raise UsageError(f"{out.uri} is not a Thresher output (it holds no job.json, pools.json or job-spec.json that "
                         "Thresher wrote) and is not empty; refusing to delete it for --overwrite; use a new --out")
    strays = _strays([e.relative for e in entries], layout)
    if strays:
        more = f" and {len(strays) - shown} more" if len(strays) > shown else ""
        raise UsageError(f"{out.uri} holds {', '.join(strays[:shown])}{more}, which Thresher did not write; refusing "
                         "to delete anything for --overwrite; move them out or use a new --out")
    for entry in sorted(entries, key=lambda e: (fnmatch.fnmatchcase(e.relative, layout.marker), e.relative)):
        entry.location.unlink()


def prepare_remote_out(out: Location, overwrite: bool, inputs: Iterable[str | os.PathLike | None]) -> Location:
    for source in inputs:
        if source is not None:
            check_remote_overlap(source, out)
    check_remote_writable(out)
    if overwrite:
        clear_remote_output(out)
    return out
