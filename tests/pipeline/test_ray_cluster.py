"""A real Ray head on loopback, a job submitted with `ray job submit`, its outputs checked, the head stopped.

The head gets its own ports and temp dir, so it cannot meet the session's local Ray
(or anyone else's). It runs as `ray start --head --block` and is stopped by ending
that process: `ray stop` would stop every Ray on the machine, including the session's.

Token authentication is on, as Ray 2.60 sets it up by default (RAY_AUTH_MODE unset, a token
on disk: `ray start --head` turns it on), and the job is submitted the way docs/cluster.md
says: the token fetched with `ray get-auth-token`, the client run with RAY_AUTH_MODE=token.
The token is this test's own (RAY_AUTH_TOKEN_PATH), never ~/.ray/auth_token.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.docs import CLEAN

REPO = Path(__file__).resolve().parents[2]

# The `ray` command of this interpreter, so the head's workers run the Python that has Thresher installed.
RAY = [sys.executable, "-m", "ray.scripts.scripts"]


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _working_dir(dest: Path) -> Path:
    """The repository's tracked and unignored files: what `--working-dir .` uploads from a clean checkout."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if rel.startswith(("jobs/", "pipeline/", "metrics/", "mixtures/")) or rel == "pyproject.toml":
            src = REPO / rel
            if src.is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / rel)
    return dest


def _dashboard_available() -> bool:
    try:
        import aiohttp  # noqa: F401  (ray[default]: the job server lives in the dashboard)
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _dashboard_available(), reason="ray[default] (the dashboard's job server) is not installed")
def test_ray_job_submit_runs_a_thresher_spec(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    with open(shards / "docs.jsonl", "w") as fh:
        for i in range(40):
            text = CLEAN.replace("river", f"river number {i}") if i % 10 else "click here now " * (i + 3)
            fh.write(json.dumps({"text": text, "source": "good" if i % 10 else "junk"}) + "\n")
    out = tmp_path / "out"
    spec = {"name": "cluster-test", "input": str(shards), "out": str(out), "read": {"carry": ["source"]},
            "score": {"scorers": ["gopher_quality", "c4"]},
            "pools": {"score": "gopher_words", "method": "quantiles", "edges": [0.5], "names": ["short", "long"]},
            "report": False}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(spec))
    gcs, dash, client, agent, node, objm = _free_ports(6)
    temp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths have a length limit
    # a user's shell: no RAY_ADDRESS, no auth settings (the session's own ray.init() may have set RAY_AUTH_MODE here)
    plain = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
    # the head's token: what `ray get-auth-token --generate` writes to ~/.ray/auth_token, kept out of the home here
    (temp / "head_token").write_text(secrets.token_hex(32))
    env = dict(plain, RAY_AUTH_TOKEN_PATH=str(temp / "head_token"))
    head = subprocess.Popen(
        [*RAY, "start", "--head", "--block", "--num-cpus", "2", "--node-ip-address", "127.0.0.1",
         "--port", str(gcs), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash), "--include-dashboard",
         "true", "--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent),
         "--node-manager-port", str(node), "--object-manager-port", str(objm), "--temp-dir", str(temp),
         "--disable-usage-stats"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    try:
        # docs/cluster.md's token step: `ray get-auth-token` on the head, into the client's token file
        token = subprocess.run([*RAY, "get-auth-token"], env=env, check=True, capture_output=True, text=True).stdout
        (temp / "client_token").write_text(token.strip())
        client_env = dict(plain, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(temp / "client_token"))
        deadline = time.time() + 90
        while True:
            probe = subprocess.run([*RAY, "job", "list", "--address", address], capture_output=True, text=True,
                                   env=client_env)
            if probe.returncode == 0:
                break
            if head.poll() is not None or time.time() > deadline:
                pytest.fail(f"Ray head did not come up: {head.stdout.read() if head.poll() is not None else probe.stderr}")
            time.sleep(2)
        # auth is really on: without the token step, the README's old recipe fails as users saw it fail
        bare = subprocess.run([*RAY, "job", "list", "--address", address], capture_output=True, text=True, env=plain)
        assert bare.returncode != 0 and "Missing authentication token" in bare.stdout + bare.stderr, bare.stderr
        wd = _working_dir(tmp_path / "wd")
        job = subprocess.run(
            [*RAY, "job", "submit", "--address", address, "--working-dir", str(wd), "--",
             sys.executable, "-m", "thresher.jobs.cli", "run", str(tmp_path / "job.yaml")],
            capture_output=True, text=True, env=client_env, timeout=240)
        log = job.stdout + job.stderr
        assert job.returncode == 0, log
        assert "succeeded" in log.lower()
        assert f"pools: {out / 'pools'}" in log  # output paths printed by the job
        assert "Token authentication is enabled" not in log  # Ray's notice stays out of the job's log
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)
    summary = json.loads((out / "summary.json").read_text())
    led = summary["score"]["ledger"]
    assert led["rows"] == 40 and led["kept"] == 40
    pools = json.loads((out / "pools" / "pools.json").read_text())
    assert sum(p["documents"] for p in pools["pools"]) == 40
    assert pools["pools"][0]["score_high"] < pools["pools"][1]["score_low"]
