"""Pieces shared by CLI commands: option parsing, summaries, output paths."""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from thresher.jobs.cli import UsageError


def add_ray_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cluster")
    g.add_argument("--address", help="Ray cluster address to attach to (default: start a local Ray)")
    g.add_argument("--workers", type=int, help="max parallel workers per stage (default: all CPUs)")


def add_read_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input")
    g.add_argument("--text-field", default="text", help="field holding the document text (default: text)")
    g.add_argument("--id-field", help="field holding a unique doc id (default: '<shard id>#<row>')")
    g.add_argument("--carry", default="", help="comma-separated input fields copied into sidecars, e.g. source")
    g.add_argument("--strict", action="store_true", help="stop at the first malformed row instead of quarantining it")
    g.add_argument("--part-mb", type=int, default=64, help="cut files larger than this many MB into parts (default 64)")


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


def prepare_out(out: str | Path, overwrite: bool, markers: tuple[str, ...] = ("job.json",)) -> Path:
    """The output directory, created; with overwrite, an earlier output (one holding a marker file) is deleted first."""
    path = Path(out)
    if overwrite and path.exists():
        if not any((path / m).exists() for m in markers) and any(path.iterdir()):
            raise UsageError(f"{path} is not empty and is not a thresher job output; refusing to delete it")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text)


def print_outputs(paths: dict[str, Path | str]) -> None:
    """Output paths are printed even with --quiet: scripts read them."""
    for label, path in paths.items():
        print(f"{label}: {path}", file=sys.stdout)
