"""Installing Thresher: a wheel and a strict editable install both give `thresher` and `thresher.*`, nothing bare.

Each install goes into a fresh virtual environment, from a copy of the tracked files,
so the checkout itself is never written to. The dependencies already installed are
borrowed through PYTHONPATH, which (unlike a site directory) runs no `.pth` file:
an editable Thresher installed beside them cannot answer for the one under test. Building needs the package index for the
build backend (as `pip install` does); without it the test skips.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOMS = ("pipeline", "metrics", "mixtures", "jobs")


def _copy_tracked(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def _run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    deps = os.pathsep.join(p for p in sys.path if p.endswith("site-packages"))
    env = {**os.environ, "PYTHONPATH": deps, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def _pip(python: Path, *args: str, cwd: Path) -> None:
    proc = _run([str(python), "-m", "pip", "--disable-pip-version-check", *args], cwd)
    if proc.returncode != 0:
        if "Could not find a version" in proc.stderr or "No matching distribution" in proc.stderr:
            pytest.skip("the package index is not reachable to fetch the build backend")
        raise AssertionError(proc.stdout[-2000:] + proc.stderr[-3000:])


def _new_venv(path: Path) -> Path:
    venv.EnvBuilder(system_site_packages=False, with_pip=True, clear=True).create(path)
    return path / "bin" / "python"


def _check_env(python: Path, cwd: Path) -> str:
    """`thresher --version` works and every room imports from the installed location; returns the file of one module."""
    script = python.parent / "thresher"
    proc = _run([str(script), "--version"], cwd)
    assert proc.returncode == 0 and proc.stdout.startswith("thresher "), proc.stderr
    code = ("import importlib.util as u, thresher.pipeline.executor as e, thresher.metrics, thresher.mixtures, "
            f"thresher.jobs.cli; print(e.__file__); print([n for n in {ROOMS!r} if u.find_spec(n)])")
    proc = _run([str(python), "-c", code], cwd)
    assert proc.returncode == 0, proc.stderr
    where, bare = proc.stdout.strip().splitlines()
    assert bare == "[]"
    return where


@pytest.mark.slow
def test_a_wheel_installs_only_the_thresher_package(tmp_path):
    src = _copy_tracked(tmp_path / "src")
    python = _new_venv(tmp_path / "venv")
    _pip(python, "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(src), cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("thresher-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"thresher", wheel.name.split("-py")[0] + ".dist-info"}, tops
    assert "thresher/jobs/examples/local.yaml" in names
    assert not any(n.startswith("thresher/__init__") for n in names), "thresher must stay a namespace package"
    _pip(python, "install", "--no-deps", "-q", str(wheel), cwd=tmp_path)
    where = _check_env(python, cwd=tmp_path)
    assert where.startswith(str(tmp_path / "venv")), where
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path).stdout.strip())
    assert not any((site / room).exists() for room in ROOMS)


@pytest.mark.slow
def test_a_strict_editable_install_maps_the_rooms(tmp_path):
    src = _copy_tracked(tmp_path / "src")
    python = _new_venv(tmp_path / "venv")
    _pip(python, "install", "--no-deps", "-q", "-e", str(src), "--config-settings", "editable_mode=strict", cwd=tmp_path)
    where = _check_env(python, cwd=tmp_path)
    assert where.startswith(str(src)), where
