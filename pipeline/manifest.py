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
from thresher.pipeline.outputs import file_sha256, marker_path, part_file, read_marker, write_json_atomic
from thresher.pipeline.reader import ReadOptions
from thresher.pipeline.safety import GLOB_CHARS

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
    """An input path made absolute (a glob stays as given: it has no single path to resolve)."""
    return str(Path(path).resolve()) if not GLOB_CHARS & set(path) else path


def shard_listing(shards: Iterable[tuple[str, Path, str]]) -> list[dict[str, Any]]:
    """Each input shard's id, size and modification time, as job.json keeps them.

    Resume compares this listing, not only the shards' names: a shard that grew, shrank
    or was rewritten since the job started would otherwise count as finished.
    """
    listing = []
    for shard_id, path, _ in shards:
        try:
            st = Path(path).stat()
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:  # a dangling link or a loop: the reader quarantines it; its state is "unreadable"
            size, mtime = None, None
        listing.append({"shard": shard_id, "size": size, "mtime_ns": mtime})
    return listing


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


def open_manifest(out: Path, manifest: dict[str, Any], what: str = "job") -> dict[str, Any]:
    """Write `out/job.json` on a first run; on a rerun check it matches and return the saved copy.

    `manifest["fingerprint"]` must match the saved one, and so must `manifest["parts"]`
    when the manifest lists parts, and `manifest["shards"]` (each shard's size and
    modification time) when both list them: the input must not have changed.
    """
    path = Path(out) / MANIFEST
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


def part_intact(out: Path, key: str) -> bool:
    """Whether part `key` has a marker whose outputs are all there with the bytes it recorded."""
    marker = read_marker(out, key)
    if marker is None:
        return False
    for name, digest in marker.get("outputs", {}).items():
        path = part_file(out, name, key)
        if not path.exists() or file_sha256(path) != digest:
            return False
    return True


def complete_parts(out: Path, keys: Iterable[str]) -> set[str]:
    """The parts of `keys` that are complete and intact; markers of damaged parts are removed, so they are redone."""
    done = set()
    for key in keys:
        if part_intact(out, key):
            done.add(key)
        else:
            marker_path(out, key).unlink(missing_ok=True)
    return done
