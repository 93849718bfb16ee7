"""Where the third-party training-run measurements live for tests and benchmarks.

They sit beside the project (`../shared/data`) or wherever THRESHER_REFERENCE_DATA points; tests
that need them skip when they are absent. This lives under tests/ (not benchmarks/) because
pytest runs with --import-mode=importlib: the repository root is not on sys.path, and only the
test package itself is importable from a test module.
"""
from __future__ import annotations

import os
from pathlib import Path

REFERENCE_DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def reference_data_dir() -> Path | None:
    """The reference measurements' folder, or None when absent."""
    env = os.environ.get("THRESHER_REFERENCE_DATA")
    path = Path(env) if env else REFERENCE_DATA_DIR
    return path if path.is_dir() else None
