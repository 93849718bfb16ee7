"""What a fresh checkout promises: default outputs stay out of git (and of `ray job submit --working-dir .`),
and the bench extra installs everything the benchmarks' peers import."""
from __future__ import annotations

import argparse
from pathlib import Path

import tomllib

from thresher.jobs import cmd_demo

ROOT = Path(__file__).resolve().parent.parent


def test_the_demos_default_output_is_ignored() -> None:
    parser = argparse.ArgumentParser()
    cmd_demo.register(parser.add_subparsers())
    default = parser.parse_args(["demo"]).out
    ignored = {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}
    assert f"/{Path(default).name}/" in ignored, f"{default} is not in .gitignore"


def test_the_bench_extra_brings_datatroves_undeclared_imports() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {req.split(">")[0].split("=")[0].split("[")[0].strip().lower() for req in extras["bench"]}
    assert {"datatrove", "regex", "orjson", "datasketch"} <= names


def test_the_readme_and_the_demos_help_give_one_duration() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "in about a minute on 2 cores" in readme and "about a minute on 2 cores" in cmd_demo.EXAMPLES
    assert "minutes" not in cmd_demo.EXAMPLES
