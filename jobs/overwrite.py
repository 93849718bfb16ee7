"""What --overwrite may delete: the layouts of Thresher's outputs, recognised by their markers' contents.

An output folder is emptied only when its marker is one Thresher wrote and every entry
in it is one that kind of output writes; anything else refuses the whole deletion.
"""
from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thresher.jobs.cli import UsageError

MARKER_CAP = 256 * 1024**2
"""job.json lists every part of a job, so a big job's is large; a larger "marker" is not one Thresher wrote."""
DATA_SUFFIXES = (".parquet", ".json", ".arrow", ".csv", ".tmp")
"""The files Thresher writes in the folders of part files (sidecars/, ledger/, _complete/, members/, ...)."""
_TMP_NAME = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{12}\.tmp")  # a killed atomic writer's leftover (`metrics.files.tmp_name`)


@dataclass(frozen=True)
class Layout:
    """One kind of Thresher output: the marker that proves Thresher wrote it, and every entry it writes.

    `files`: top-level file names (fnmatch patterns). `data`: folders of part files, any
    depth, names ending in DATA_SUFFIXES. `nested`: folders holding one output of the named
    kind (a `run`'s stages). `several`: folders whose every child is an output of the named
    kind (a `run`'s materialize/<budget>/).
    """

    kind: str
    marker: str
    recognise: Callable[[Any], bool]
    files: tuple[str, ...]
    data: tuple[str, ...] = ()
    nested: Mapping[str, str] = field(default_factory=dict)
    several: Mapping[str, str] = field(default_factory=dict)


def _fingerprint(doc: Any) -> dict[str, Any]:
    fp = doc.get("fingerprint") if isinstance(doc, dict) else None
    return fp if isinstance(fp, dict) else {}


def _is_map_job(doc: Any) -> bool:
    """job.json of `thresher score` (and of dedupe's signatures/): fingerprint with kind and stages, parts, version."""
    fp = _fingerprint(doc)
    return (isinstance(fp.get("kind"), str) and isinstance(fp.get("stages"), list)
            and isinstance(doc.get("format_version"), int) and isinstance(doc.get("parts"), list))


def _is_dedupe(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == "dedupe" and "method" in _fingerprint(doc)


def _is_select(doc: Any) -> bool:
    fp = _fingerprint(doc)
    return fp.get("kind") == "select" and "where" in fp and isinstance(doc.get("parts"), list)


def _is_materialize(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == "materialize" and {"plan", "pools"} <= set(_fingerprint(doc))


def _is_pools(doc: Any) -> bool:
    from thresher.metrics.files import FormatError
    from thresher.pipeline.pools import POOLS

    try:
        POOLS.check(doc, "pools.json")
    except FormatError:
        return False
    return isinstance(doc.get("pools"), list) and isinstance(doc.get("scored"), str)


def _is_run(doc: Any) -> bool:
    from thresher.jobs.job_spec import STAGES

    return (isinstance(doc, dict) and "source" in doc and isinstance(doc.get("sections"), dict)
            and isinstance(doc.get("stages"), list) and all(s in STAGES for s in doc["stages"]))


@functools.cache
def layouts() -> dict[str, Layout]:
    """Every kind of output Thresher writes, named as its writers name their entries (imported when first needed)."""
    from thresher.pipeline.engines.steps import LEDGER, PART_FILES
    from thresher.pipeline.manifest import MANIFEST
    from thresher.pipeline.materialize import DATA
    from thresher.pipeline.outputs import MARKERS, TMP
    from thresher.pipeline.pools import MEMBERS
    from thresher.pipeline.select import SHARDS

    counted = (MANIFEST, "summary.json", "stats.json")
    return {
        "score": Layout("score", MANIFEST, _is_map_job, counted, (*PART_FILES, MARKERS, TMP)),
        "dedupe": Layout("dedupe", MANIFEST, _is_dedupe, counted, (*PART_FILES, MARKERS, "_work"),
                         nested={"signatures": "score"}),
        "select": Layout("select", MANIFEST, _is_select, (MANIFEST, "summary.json"), (SHARDS, LEDGER, MARKERS)),
        "materialize": Layout("materialize", MANIFEST, _is_materialize,
                              (MANIFEST, "manifest.parquet", "README.md", "summary.json"), (DATA, MARKERS)),
        "pools": Layout("pools", "pools.json", _is_pools, ("pools.json", "summary.json"), (MEMBERS,)),
        # fit/ holds fit.json and the pilots' observations.csv; plan/ plan-<budget>.json and frontier.json
        "run": Layout("run", "job-spec.json", _is_run, ("job-spec.json", "summary.json", "report.html"),
                      ("fit", "plan"), nested={"score": "score", "dedupe": "dedupe", "pools": "pools"},
                      several={"materialize": "materialize"}),
    }


def _read_marker(path: Path) -> Any:
    """A marker file parsed, or None when it is missing, a link, too large or not JSON."""
    from thresher.pipeline.safety import read_capped

    if path.is_symlink() or not path.is_file():
        return None
    try:
        return json.loads(read_capped(path, MARKER_CAP, "marker"))
    except (OSError, ValueError):  # InputTooLarge and JSONDecodeError are ValueErrors
        return None


def recognise_output(folder: Path) -> Layout | None:
    """The kind of Thresher output `folder` holds, judged by its marker's contents (not its name); None if none."""
    docs: dict[str, Any] = {}
    for layout in layouts().values():
        if layout.marker not in docs:
            docs[layout.marker] = _read_marker(folder / layout.marker)
        if docs[layout.marker] is not None and layout.recognise(docs[layout.marker]):
            return layout
    return None


def _is_ours(name: str, patterns: tuple[str, ...]) -> bool:
    tmp = _TMP_NAME.fullmatch(name)
    base = tmp.group("name") if tmp else name
    return any(fnmatch.fnmatchcase(base, p) for p in patterns)


def _data_strays(folder: Path, shown: str) -> list[str]:
    """Entries below a folder of part files that Thresher would not have written there (links, other files)."""
    strays = []
    for dirpath, dirnames, filenames in os.walk(folder):  # links are listed, never followed
        below = Path(os.path.relpath(dirpath, folder)).as_posix()
        rel = shown if below == "." else f"{shown}{below}/"
        for d in sorted(dirnames):
            if os.path.islink(os.path.join(dirpath, d)):
                strays.append(f"{rel}{d} (a link)")
        for f in sorted(filenames):
            if os.path.islink(os.path.join(dirpath, f)) or not f.endswith(DATA_SUFFIXES):
                strays.append(rel + f)
    return strays


def _strays(folder: Path, layout: Layout, shown: str = "") -> list[str]:
    """Entries of `folder` that `layout` does not account for, as paths relative to the output folder."""
    strays = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        name, rel = entry.name, shown + entry.name
        if entry.is_symlink():
            strays.append(f"{rel} (a link)")
        elif entry.is_dir():
            if name in layout.data:
                strays += _data_strays(Path(entry.path), rel + "/")
            elif name in layout.nested:
                strays += _strays(Path(entry.path), layouts()[layout.nested[name]], rel + "/")
            elif name in layout.several:
                for child in sorted(os.scandir(entry.path), key=lambda e: e.name):
                    if child.is_dir(follow_symlinks=False):
                        strays += _strays(Path(child.path), layouts()[layout.several[name]], f"{rel}/{child.name}/")
                    else:
                        strays.append(f"{rel}/{child.name}")
            else:
                strays.append(rel + "/")
        elif not (entry.is_file() and _is_ours(name, layout.files)):
            strays.append(rel)
    return strays


def clear_output(folder: Path, shown: int = 3) -> None:
    """Empty an earlier Thresher output for --overwrite; refuse (UsageError) unless everything there is Thresher's.

    The folder counts as Thresher's only when its marker parses as a manifest Thresher
    wrote (job.json, pools.json or job-spec.json, by content); then every entry must be
    one that kind of output writes. Anything else (a user's file, a link, an unknown
    folder) refuses the whole deletion, naming the first `shown` of them, before anything
    is deleted. The marker goes last, so an interrupted deletion can be finished by a rerun.
    """
    layout = check_clearable(folder, shown)
    if layout is None:  # nothing there
        return
    for name in sorted(os.listdir(folder), key=lambda n: (n == layout.marker, n)):  # the marker last
        target = folder / name
        try:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
        except OSError as exc:
            raise UsageError(f"--overwrite could not delete {target} ({exc.strerror or exc}); fix that and rerun "
                             "with --overwrite") from None


def check_clearable(folder: Path, shown: int = 3) -> Layout | None:
    """Refuse (UsageError) an --overwrite of a non-empty `folder` that is not wholly a Thresher output; deletes nothing.

    Commands that check their inputs before making --out call this first, so the refusal
    comes before any other error, as in every command; returns the output's layout.
    """
    if not folder.is_dir() or not os.listdir(folder):
        return None
    layout = recognise_output(folder)
    if layout is None:
        raise UsageError(f"{folder} is not a Thresher output (it holds no job.json, pools.json or job-spec.json that "
                         "Thresher wrote) and is not empty; refusing to delete it for --overwrite; use a new --out "
                         "or empty it yourself")
    strays = _strays(folder, layout)
    if strays:
        more = f" and {len(strays) - shown} more" if len(strays) > shown else ""
        raise UsageError(f"{folder} holds {', '.join(strays[:shown])}{more}, which Thresher did not write; refusing "
                         "to delete anything for --overwrite; move them out or use a new --out")
    return layout


