"""The public Python API (thresher.jobs.api): every name resolves, it loads lazily, and it writes the CLI's bytes."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import tree_bytes
from tests.docs import CLEAN
from thresher.jobs import api
from thresher.jobs.cli import main


def test_every_public_name_resolves() -> None:
    for name in api.__all__:
        assert getattr(api, name) is not None, name
    assert set(dir(api)) >= set(api.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        api.nope  # noqa: B018


def test_import_is_light() -> None:
    code = "import sys, thresher.jobs.api; print(sorted(m for m in ('ray', 'scipy', 'ot', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.strip() == "[]"


def _corpus(tmp_path):
    shards = tmp_path / "in"
    shards.mkdir()
    rows = [CLEAN, CLEAN, CLEAN.replace("river", "canal"), "click here buy now", CLEAN.upper()]
    (shards / "a.jsonl").write_text("".join(json.dumps({"text": t, "source": "s"}) + "\n" for t in rows * 4))
    return shards


@pytest.mark.usefixtures("ray_session")
def test_score_and_dedupe_write_the_cli_bytes(tmp_path) -> None:
    shards = _corpus(tmp_path)
    summary = api.score(str(shards), tmp_path / "api", carry=["source"])
    assert main(["score", str(shards), "--out", str(tmp_path / "cli"), "--carry", "source", "--quiet"]) == 0
    cli = json.loads((tmp_path / "cli" / "summary.json").read_text())
    assert summary["content_hash"] == cli["content_hash"] and summary["ledger"] == cli["ledger"]
    assert tree_bytes(tmp_path / "api") == tree_bytes(tmp_path / "cli") != {}

    dup = api.dedupe(str(shards), tmp_path / "dapi", method="exact")
    assert main(["dedupe", str(shards), "--method", "exact", "--out", str(tmp_path / "dcli"), "--quiet"]) == 0
    assert dup["ledger"]["duplicate"] > 0
    assert tree_bytes(tmp_path / "dapi") == tree_bytes(tmp_path / "dcli") != {}


def test_score_refuses_options_for_unselected_scorers(tmp_path) -> None:
    with pytest.raises(ValueError, match="not selected"):
        api.score(str(tmp_path), tmp_path / "o", scorers=["c4"], options={"fluency": {"model": "m.npz"}})
