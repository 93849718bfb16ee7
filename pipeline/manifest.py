"""Resume, for every job that writes parts: the job manifest and which parts are complete and intact.

`job.json` records what a job was asked to do (its fingerprint: every setting that
decides its outputs). A rerun into the same directory resumes only when the
fingerprint matches; otherwise it is refused, naming the first setting that
differs, because finishing it would mix two jobs' results in one output set.

A part counts as complete only while its marker is there and every output the
marker names has the bytes it recorded; a part whose outputs were deleted,
truncated or altered loses its marker and is redone.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from thresher.metrics.errors import InputError
from thresher.pipeline.outputs import (
    completed_keys,
    file_sha256,
    marker_path,
    part_file,
    read_marker,
    read_markers,
    write_json_atomic,
)
from thresher.pipeline.reader import ReadOptions
from thresher.pipeline.safety import GLOB_CHARS
from thresher.pipeline.storage import Stat, StorageError, StorageNotFound, at, is_remote, place
from thresher.pipeline.storage.requests import each

MANIFEST = "job.json"
RUNTIME = {"runtime": True}
"""Metadata of a job field that changes how the job runs (workers, address, progress), never what it writes."""


class JobConflict(InputError):
    """The output directory holds a different job; resuming it would mix results."""


def as_json(value: Any) -> Any:
    """`value` as it reads back from job.json, so a fingerprint compares equal to its saved copy."""
    return json.loads(json.dumps(value, default=str))


def job_settings(job: Any) -> dict[str, Any]:
    """The fields of a job dataclass that decide its outputs: all but those marked `RUNTIME`.

    A new field is part of the fingerprint unless it says otherwise, so an added
    option can never be silently left out of the resume check.
    """
    return {f.name: getattr(job, f.name) for f in fields(job) if not f.metadata.get("runtime")}


def input_setting(path: str) -> str:
    """An input path made absolute (a glob or a URI stays as given: it has no local path to resolve)."""
    if is_remote(path) or GLOB_CHARS & set(path):
        return path
    return str(Path(path).resolve())


def shard_listing(shards: Iterable[tuple[str, Any, str]], stats: dict[str, Stat] | None = None) -> list[dict[str, Any]]:
    """Each input shard's id, size and modification time, as job.json keeps them.

    Resume compares this listing, not only the shards' names: a shard that grew, shrank
    or was rewritten since the job started would otherwise count as finished. `stats`
    (a remote listing's sizes and times) saves a lookup per object.
    """
    listing = []
    for shard_id, path, _ in shards:
        if stats is not None and shard_id in stats:
            size, mtime = stats[shard_id].size, stats[shard_id].mtime_ns
        else:
            try:
                st = at(path).stat()
                size, mtime = st.size, st.mtime_ns
            except StorageError:
                raise
            except OSError:  # a dangling link or a loop: the reader quarantines it; its state is "unreadable"
                size, mtime = None, None
        listing.append({"shard": shard_id, "size": size, "mtime_ns": mtime})
    return listing


def changed_pending_shard(saved: list[dict[str, Any]], shards: dict[str, str]) -> str | None:
    """Look up the shards still to be read (id -> URI) and compare them with the saved listing.

    A rerun of a remote job reuses its saved listing instead of listing the store again;
    this is the check that replaces it, for the shards that will still be read.
    """
    before = {s["shard"]: s for s in saved}

    def now(item: tuple[str, str]) -> dict[str, Any]:
        shard_id, uri = item
        try:
            st = at(uri).stat()
            return {"shard": shard_id, "size": st.size, "mtime_ns": st.mtime_ns}
        except StorageNotFound:
            return {"shard": shard_id, "gone": True}

    current = each(now, sorted(shards.items()), remote=True)
    for s in current:
        if s.get("gone"):
            return f"{s['shard']} is gone"
    return _changed_shard([before[s["shard"]] for s in current if s["shard"] in before], current)


def _changed_shard(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> str | None:
    """The first shard whose size or modification time differs, described; None when all agree."""
    before = {s["shard"]: s for s in old}
    for s in new:
        was = before.get(s["shard"])
        if was is None:
            return f"{s['shard']} is new"
        if was["size"] != s["size"]:
            return f"{s['shard']} changed size ({was['size']} -> {s['size']} bytes)"
        if was["mtime_ns"] != s["mtime_ns"]:
            return f"{s['shard']} was modified (same size, new modification time)"
    gone = sorted(set(before) - {s["shard"] for s in new})
    return f"{gone[0]} is gone" if gone else None


def read_setting(read: ReadOptions) -> dict[str, Any]:
    """Read options that decide outputs: all but `strict`, which only decides whether a bad row stops the job."""
    return {k: v for k, v in asdict(read).items() if k != "strict"}


def first_difference(old: Any, new: Any, where: str = "") -> str | None:
    """The first setting (as a dotted path) where two fingerprints differ, with both values; None if equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if key not in old or key not in new:
                side = "now" if key not in old else "before"
                return f"{where}{key} (only set {side})"
            found = first_difference(old[key], new[key], f"{where}{key}.")
            if found:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            found = first_difference(a, b, f"{where.rstrip('.')}[{i}].")
            if found:
                return found
        return None
    if old == new:
        return None
    return f"{where.rstrip('.') or 'fingerprint'} was {_short(old)}, now {_short(new)}"


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def open_manifest(out: Any, manifest: dict[str, Any], what: str = "job") -> dict[str, Any]:
    """Write `out/job.json` on a first run; on a rerun check it matches and return the saved copy.

    `manifest["fingerprint"]` must match the saved one, and so must `manifest["parts"]`
    when the manifest lists parts, and `manifest["shards"]` (each shard's size and
    modification time) when both list them: the input must not have changed.
    """
    path = place(out) / MANIFEST
    if not path.exists():
        write_json_atomic(manifest, path)
        return manifest
    old = json.loads(path.read_text())
    diff = first_difference(old.get("fingerprint"), manifest["fingerprint"])
    if diff:
        raise JobConflict(f"{out} holds a different {what} ({diff}); use a new --out directory or --overwrite")
    if "shards" in manifest and "shards" in old:
        changed = _changed_shard(old["shards"], manifest["shards"])
        if changed:
            raise JobConflict(f"{out}: the input changed since the job started ({changed}); "
                              f"use a new --out directory, or --overwrite to start over")
    if "parts" in manifest and old.get("parts") != manifest["parts"]:
        raise JobConflict(f"{out}: the input's shards changed since the job started; use a new --out directory")
    return old


def part_intact(out: Any, key: str) -> bool:
    """Whether part `key` has a marker whose outputs are all there with the bytes it recorded."""
    marker = read_marker(out, key)
    if marker is None:
        return False
    for name, digest in marker.get("outputs", {}).items():
        try:
            if file_sha256(part_file(out, name, key)) != digest:
                return False
        except FileNotFoundError:  # deleted behind the job's back (StorageNotFound on a store)
            return False
    return True


def _check_part(out: Any, key: str, markers: set[str] | None) -> bool:
    """Whether part `key` is complete and intact; a damaged part's marker is removed, so it is redone."""
    if markers is not None and key not in markers:
        return False  # no marker: nothing to check and nothing to remove
    if part_intact(out, key):
        return True
    marker_path(out, key).unlink(missing_ok=True)
    return False


def complete_parts(out: Any, keys: Iterable[str]) -> set[str]:
    """The parts of `keys` that are complete and intact; markers of damaged parts are removed, so they are redone.

    On an object store the markers are found with one listing, and the parts that have one
    are checked by a pool of threads (each check reads the marker and hashes its outputs).
    """
    keys = list(keys)
    where = place(out)
    remote = is_remote(where)
    markers = completed_keys(where) if remote else None
    intact = each(lambda key: _check_part(where, key, markers), keys, remote)
    return {key for key, ok in zip(keys, intact) if ok}


def vouched_outputs(out: Any, subdir: str) -> dict[str, Any]:
    """Part key -> its `subdir` file, for every part whose marker names one: the outputs a reader may trust.

    Object stores have no rename, so a killed run can leave objects no marker vouches for;
    a job that reads another's outputs takes only these (markers are read by a pool of
    threads on a store).
    """
    where = place(out)
    keys = sorted(completed_keys(where))
    return {key: part_file(where, subdir, key) for key, marker in zip(keys, read_markers(where, keys))
            if marker is not None and subdir in marker.get("outputs", {})}
