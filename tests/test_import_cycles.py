"""No import cycles among `thresher.*` modules, function-local imports included.

A cycle hidden in a function-local import still ties two modules together (each
needs the other to work, and neither can be understood or moved alone), so every
import statement counts, except those under `if TYPE_CHECKING:`, which never run
(a helper module may name the class it serves in its annotations). `from package import name` counts as importing the
submodule `package.name` when there is one, else the package itself.
"""
from __future__ import annotations

import ast
from pathlib import Path

from tests.test_layout import ROOMS, room_modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the `thresher.*` modules it imports, from every import statement in its file."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        typing_only = {id(n) for block in ast.walk(tree) if _is_type_checking_block(block)
                       for stmt in block.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            graph[module].update(t for t in targets if t in modules and t != module)
    return graph


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def thresher_modules() -> dict[str, Path]:
    return {m: p for room in ROOMS for m, p in room_modules(room)}


def test_no_import_cycles_among_thresher_modules():
    cycle = find_cycle(import_graph(thresher_modules()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_thresher_run_does_not_import_the_demo():
    assert "thresher.jobs.demo" not in import_graph(thresher_modules())["thresher.jobs.cmd_run"]


def test_the_check_finds_a_cycle_through_a_function_local_import(tmp_path):
    (tmp_path / "a.py").write_text("from thresher.x import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from thresher.x.a import g\n")
    (tmp_path / "c.py").write_text("import thresher.x.a\n")
    modules = {f"thresher.x.{n}": tmp_path / f"{n}.py" for n in "abc"}
    graph = import_graph(modules)
    assert graph == {"thresher.x.a": {"thresher.x.b"}, "thresher.x.b": {"thresher.x.a"}, "thresher.x.c": {"thresher.x.a"}}
    assert find_cycle(graph) == ["thresher.x.a", "thresher.x.b", "thresher.x.a"]
    (tmp_path / "b.py").write_text("def f():\n    pass\n")
    assert find_cycle(import_graph(modules)) is None


def test_imports_for_type_checking_only_do_not_count(tmp_path):
    (tmp_path / "a.py").write_text("from thresher.x import b\n")
    (tmp_path / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from thresher.x.a import g\n")
    modules = {f"thresher.x.{n}": tmp_path / f"{n}.py" for n in "ab"}
    assert find_cycle(import_graph(modules)) is None
    (tmp_path / "b.py").write_text("import typing\nif typing.TYPE_CHECKING:\n    pass\nelse:\n    from thresher.x.a import g\n")
    assert find_cycle(import_graph(modules)) == ["thresher.x.a", "thresher.x.b", "thresher.x.a"]
