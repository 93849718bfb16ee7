"""Pieces shared by CLI commands: option parsing, summaries, output folders."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from thresher.jobs.cli import UsageError
from thresher.jobs.overwrite import (  # noqa: F401  (re-exported: commands import them from here)
    DATA_SUFFIXES,
    MARKER_CAP,
    Layout,
    _fingerprint,
    _read_marker,
    check_clearable,
    clear_output,
    layouts,
    recognise_output,
)


def positive_int(text: str) -> int:
    """argparse type for counts that must be at least 1 (--workers, --part-mb, ...).

    0 or a negative count would otherwise reach Ray or the part planner and fail deep in
    a job; refused here, argparse names the option in its one-line error (exit code 2).
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def add_ray_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cluster")
    g.add_argument("--address", help="Ray cluster address to attach to (default: start a local Ray)")
    g.add_argument("--workers", type=positive_int, help="max parallel workers per stage (default: all CPUs)")
    add_shared_out_option(g)


def add_shared_out_option(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--shared-out: the user's word that a local --out is one storage every node mounts (see check_out_reachable)."""
    p.add_argument("--shared-out", action="store_true",
                   help=f"the local --out is storage every Ray node mounts at the same path (NFS, a shared volume); "
                        f"needed for a local --out on a cluster of several nodes (or set {SHARED_OUT_ENV}=1)")


SHARED_OUT_ENV = "THRESHER_SHARED_OUT"
"""Set to 1, the same declaration as --shared-out: for job specs, `ray job submit` and KubeRay pods."""
_YES, _NO = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def shared_out_declared(flag: bool) -> bool:
    """--shared-out, else THRESHER_SHARED_OUT; a value that is neither yes nor no is refused rather than guessed."""
    if flag:
        return True
    value = os.environ.get(SHARED_OUT_ENV, "").strip().lower()
    if value not in _YES + _NO:
        raise UsageError(f"{SHARED_OUT_ENV}={os.environ[SHARED_OUT_ENV]!r} is neither 1 nor 0; set it to 1 when the "
                         "output folder is storage every Ray node mounts, else unset it")
    return value in _YES


OutT = TypeVar("OutT", str, Path)


def check_out_reachable(out: OutT, address: str | None, shared: bool = False, quiet: bool = False,
                        label: str = "--out") -> OutT:
    """The output as every Ray node must see it: a local path made absolute here, on the driver; a URI unchanged.

    A task writes its part files on the node that runs it, the driver its job.json and summary
    on its own: on a cluster of several nodes (or from a Ray Client, ray://) a local folder
    would split one job over several disks, unless it is storage every node mounts at the same
    path, which only the user can vouch for (`shared`: --shared-out, or THRESHER_SHARED_OUT=1).
    Refused up front (UsageError, exit 2) before any task runs; it joins the cluster for that
    (the job would next), but never starts a local Ray. A relative path is resolved against
    the driver's working directory: a task's own is wherever its node's `ray start` ran.
    URIs (s3://, gs://, ...) reach every node and are never refused.
    """
    from thresher.pipeline.cluster import alive_nodes, ensure_ray, is_client_address, joins_running_ray
    from thresher.pipeline.storage import is_remote

    if is_remote(out):
        return out
    absolute = os.path.abspath(os.fspath(out))
    resolved = Path(absolute) if isinstance(out, Path) else absolute
    if shared_out_declared(shared) or not joins_running_ray(address):
        return resolved
    where = address or os.environ.get("RAY_ADDRESS") or "the running Ray"
    if is_client_address(address):  # no need to connect to know
        why = f"{where} is a Ray Client address (this process runs off the cluster, its tasks on it)"
    else:
        ensure_ray(address, quiet=quiet)
        nodes = len(alive_nodes())
        if nodes <= 1:
            return resolved
        why = f"the Ray cluster at {where} has {nodes} nodes (each task writes on its own node's disk)"
    raise UsageError(f"{label} {absolute} is a local folder, but {why}; make it an object-store URI "
                     f"(s3://BUCKET/PATH, gs://BUCKET/PATH), or, if {absolute} is storage every node mounts at that "
                     f"same path (NFS, a shared volume), say so with --shared-out or {SHARED_OUT_ENV}=1")


def add_read_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input")
    g.add_argument("--text-field", default="text", help="field holding the document text (default: text)")
    g.add_argument("--id-field", help="field holding a unique doc id (default: '<shard id>#<row>')")
    g.add_argument("--carry", default="", help="comma-separated input fields copied into sidecars, e.g. source")
    g.add_argument("--strict", action="store_true", help="stop at the first malformed row instead of quarantining it")
    g.add_argument("--part-mb", type=positive_int, default=64, help="cut files larger than this many MB into parts (default 64)")


def parse_kv(items: list[str] | None, what: str) -> dict[str, dict[str, Any]]:
    """`NAME.KEY=VALUE` options grouped by NAME; values parsed as numbers or booleans when they look like one."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise UsageError(f"{what} {item!r} must look like NAME.KEY=VALUE")
        lhs, value = item.split("=", 1)
        name, key = lhs.split(".", 1)
        out.setdefault(name, {})[key] = _parse_value(value)
    return out


def _parse_value(value: str) -> Any:
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    if "," in value:
        return [_parse_value(v) for v in value.split(",")]
    return value


def split_list(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def prepare_out(out: str | os.PathLike, overwrite: bool,
                inputs: Iterable[str | os.PathLike | None] = ()) -> Any:
    """The output folder, checked and created before any work starts (a `Location` for a URI, see `remote_out`).

    Refused, each in one line with exit status 2: a folder overlapping any of `inputs`
    (`check_out_outside_input`), one that is a file, lies under a file or cannot be written
    (`check_out_writable`). With `overwrite`, an earlier Thresher output there is emptied
    first, and only that (`clear_output`): a user's folder is never deleted.
    """
    from thresher.pipeline.safety import check_out_outside_input, check_out_writable
    from thresher.pipeline.storage import at, is_remote

    if is_remote(out):
        from thresher.jobs.remote_out import prepare_remote_out

        return prepare_remote_out(at(out), overwrite, inputs)
    path = Path(out)
    for source in inputs:
        if source is not None and not is_remote(source):  # a remote input cannot overlap a local folder
            check_out_outside_input(source, path)
    check_out_writable(path)
    if overwrite and path.is_dir():
        clear_output(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output folder {path} ({exc.strerror or exc})") from None
    return path


def recorded_inputs(output: str | os.PathLike | None, depth: int = 3) -> list[str]:
    """The inputs a Thresher output was made from, as its job.json or pools.json records them, `depth` steps back.

    A job over a score output (dedupe, select, pools, materialize) reads that output's own
    input too, so its --out must stay out of those as well. Only absolute paths count (a
    relative one was relative to a cwd no longer known); unreadable records give nothing,
    the job itself reports them.
    """
    from thresher.pipeline.storage import is_remote, place

    if output is None or depth <= 0 or not place(output).is_dir():
        return []
    folder = place(output)
    found: list[str] = []
    fp = _fingerprint(_read_marker(folder / "job.json"))
    pools = _read_marker(folder / "pools.json")
    for key, value in (("input", fp.get("input")), ("scored", fp.get("scored")),
                       *((k, pools.get(k)) for k in ("scored", "dedupe") if isinstance(pools, dict))):
        if isinstance(value, str) and (os.path.isabs(value) or is_remote(value)):
            found.append(value)
            if key != "input":
                found += recorded_inputs(value, depth - 1)
    return list(dict.fromkeys(found))


def say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text)


def print_outputs(paths: dict[str, Path | str]) -> None:
    """Output paths are printed even with --quiet: scripts read them."""
    for label, path in paths.items():
        print(f"{label}: {path}", file=sys.stdout)
