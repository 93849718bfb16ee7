"""A real two-node Ray cluster: a local --out is refused up front, declared shared it runs on both nodes.

The cluster (`ray.cluster_utils.Cluster`: a head and a second node, one CPU each, token
authentication on) lives in a child process with its own RAY_TMPDIR and its own token: the
session's local Ray (tests/conftest.py `ray_session`) and anyone else's Ray on the machine
never see it, and `ray.init()` elsewhere cannot stumble into it through
ray_current_cluster. Thresher runs against it as users do, `thresher score --address` in a
subprocess that holds the token (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN_PATH). The fixture is
module-scoped and yields the address, the two node ids and the client environment, so
further tests (an s3:// variant) reuse the same cluster.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import tree_bytes
from tests.docs import CLEAN

REPO = Path(__file__).resolve().parents[2]
THRESHER = [sys.executable, "-m", "thresher.jobs.cli"]
SHARDS, DOCS_PER_SHARD = 6, 60
# The cluster's tests are marked slow (`-m "not slow"` skips them; CI runs them): starting two nodes and a dashboard,
# and four thresher processes on them, takes ~45 s on an idle 2-core machine and 90-110 s on a busy one.


@dataclass(frozen=True)
class TwoNodes:
    """What a test needs to use the cluster: where it is, its nodes, and the environment of a client of it."""

    address: str  # GCS address, for --address
    dashboard: str  # http://..., for the state API and `ray job submit`
    nodes: tuple[str, str]  # node ids: head first
    env: dict[str, str]  # RAY_AUTH_MODE=token and the token's path; no RAY_ADDRESS, no RAY_TMPDIR
    cwd: Path  # where the nodes were started: a relative path that reached a task would land here


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve() -> None:
    """In the child: start the cluster, print one JSON line about it, hold it until stdin closes, shut it down."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={
        "num_cpus": 1, "include_dashboard": True, "dashboard_host": "127.0.0.1",
        "dashboard_port": int(os.environ["THRESHER_TEST_DASHBOARD_PORT"])})
    try:
        second = cluster.add_node(num_cpus=1)
        print(json.dumps({"address": cluster.address, "dashboard": f"http://{cluster.webui_url}",
                          "nodes": [cluster.head_node.node_id, second.node_id]}), flush=True)
        sys.stdin.read()  # the parent closes it at teardown, or dies
    finally:
        cluster.shutdown()


def _client_env(token_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_TMPDIR", "RAY_AUTH_TOKEN")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_path), PYTHONPATH=str(REPO))
    return env


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[TwoNodes]:
    root = Path(tempfile.mkdtemp(prefix="tn", dir="/tmp"))  # short: Ray's socket paths have a length limit
    token = root / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = _client_env(token)
    env.update(RAY_TMPDIR=str(root), THRESHER_TEST_DASHBOARD_PORT=str(_free_port()))
    log = open(root / "serve.log", "w")  # a file, not a pipe nobody reads: a full pipe would block the child
    child = subprocess.Popen([sys.executable, "-c", "from tests.pipeline.test_multinode import _serve; _serve()"],
                             cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                             start_new_session=True)
    try:
        line = child.stdout.readline()
        if not line:
            pytest.fail(f"the two-node cluster did not start: {(root / 'serve.log').read_text()[-3000:]}")
        info = json.loads(line)
        yield TwoNodes(address=info["address"], dashboard=info["dashboard"], nodes=tuple(info["nodes"]),
                       env=_client_env(token), cwd=root)
    finally:
        child.stdin.close()  # the child shuts its cluster down
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def _corpus(root: Path) -> Path:
    root.mkdir(parents=True)
    for s in range(SHARDS):
        with open(root / f"s{s}.jsonl", "w") as fh:
            for i in range(DOCS_PER_SHARD):
                text = CLEAN.replace("river", f"river {s}-{i}") if i % 7 else "buy now click here " * (i % 5 + 1)
                fh.write(json.dumps({"text": text, "source": f"shard{s}"}) + "\n")
    return root


def _thresher(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*THRESHER, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=150)


def _task_nodes(cluster: TwoNodes, since_ms: int, deadline_s: float = 20.0) -> set[str]:
    """The nodes that ran tasks (not drivers) started since `since_ms`, from Ray's state API.

    Task events reach the state API a second or so after a task ends, hence the polling;
    `since_ms` keeps out the tasks of earlier tests on the same cluster.
    """
    probe = ("import json\nfrom ray.util.state import list_tasks\n"
             f"ts = list_tasks(address={cluster.address!r}, filters=[('type', '=', 'NORMAL_TASK')], limit=10000,"
             " detail=True, raise_on_missing_output=False)\n"
             f"print(json.dumps(sorted({{t.node_id for t in ts if t.state == 'FINISHED' and t.node_id"
             f" and (t.start_time_ms or 0) >= {since_ms}}})))")
    end, seen = time.time() + deadline_s, set()
    while time.time() < end:
        proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=cluster.env, timeout=60)
        assert proc.returncode == 0, proc.stderr[-3000:]
        seen = set(json.loads(proc.stdout.strip().splitlines()[-1]))
        if len(seen) >= 2:
            break
        time.sleep(1)
    return seen


@pytest.mark.slow
def test_a_local_out_is_refused_on_two_nodes_and_runs_on_both_when_shared(two_nodes: TwoNodes, tmp_path: Path) -> None:
    inp = _corpus(tmp_path / "in")
    score = ["score", str(inp), "--scorers", "gopher_quality,c4", "--carry", "source", "--quiet"]

    refused = _thresher([*score, "--out", "out", "--address", two_nodes.address], two_nodes.env, tmp_path)
    assert refused.returncode == 2, refused.stderr
    lines = [ln for ln in refused.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, refused.stderr
    assert lines[0].startswith(f"thresher score: error: --out {tmp_path / 'out'} is a local folder"), lines[0]
    for hint in ("2 nodes", "s3://", "--shared-out", "THRESHER_SHARED_OUT=1"):
        assert hint in lines[0], lines[0]
    assert not (tmp_path / "out" / "job.json").exists() and not (tmp_path / "out" / "sidecars").exists()

    # declared shared (the same disk here), with a relative --out: resolved here, not where the nodes started
    since_ms = int(time.time() * 1000)
    ran = _thresher([*score, "--out", "out", "--address", two_nodes.address, "--shared-out"], two_nodes.env, tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert f"sidecars: {tmp_path / 'out' / 'sidecars'}" in ran.stdout
    assert not (two_nodes.cwd / "out").exists()
    nodes = _task_nodes(two_nodes, since_ms)
    assert nodes == set(two_nodes.nodes), (nodes, two_nodes.nodes)

    single = _thresher([*score, "--out", str(tmp_path / "single"), "--address", "local"], two_nodes.env, tmp_path)
    assert single.returncode == 0, single.stderr
    multi, one = tree_bytes(tmp_path / "out"), tree_bytes(tmp_path / "single")
    assert any(k.startswith("sidecars/") for k in multi) and any(k.startswith("ledger/") for k in multi), sorted(multi)
    assert multi == one


@pytest.mark.slow
def test_a_client_without_the_token_is_told_how_to_give_it(two_nodes: TwoNodes, tmp_path: Path) -> None:
    """The README's old recipe on a 2.60 cluster: RAY_AUTH_MODE unset, so no token is sent; one line says what to set."""
    bare = {k: v for k, v in two_nodes.env.items() if not k.startswith("RAY_AUTH")}
    bare["RAY_gcs_server_port_wait_time_s"] = "2"  # Ray retries a refused connection for 20 s by default
    proc = _thresher(["score", str(_corpus(tmp_path / "in")), "--out", "out", "--address", two_nodes.address, "--quiet"],
                     bare, tmp_path)
    # Ray's C++ client logs each refused attempt itself ("[... W ...] gcs_client.cc: ... InvalidAuthToken"), before
    # Python sees an error; no setting of Ray's silences it. Thresher's own report is the one other line.
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not re.match(r"\[[\d-]+ [\d:,]+ W .*\] gcs_client", ln)]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"thresher score: error: the Ray cluster at {two_nodes.address} refused this process"), lines[0]
    assert "RAY_AUTH_MODE=token" in lines[0] and "ray get-auth-token" in lines[0], lines[0]


# --- the rule itself, without a cluster ---------------------------------------------------------------------------------


@pytest.fixture
def fake_cluster(monkeypatch: pytest.MonkeyPatch) -> dict:
    """check_out_reachable against a pretend running Ray of `state["nodes"]` nodes; counts the joins it makes."""
    from thresher.pipeline import cluster

    state = {"nodes": 2, "joins": 0}
    monkeypatch.setattr(cluster, "joins_running_ray", lambda address: True)
    monkeypatch.setattr(cluster, "ensure_ray", lambda address=None, quiet=False: state.update(joins=state["joins"] + 1))
    monkeypatch.setattr(cluster, "alive_nodes", lambda: [f"n{i}" for i in range(state["nodes"])])
    monkeypatch.delenv("THRESHER_SHARED_OUT", raising=False)
    return state


def test_uris_pass_unchanged_and_unjoined(fake_cluster: dict) -> None:
    from thresher.jobs.common import check_out_reachable

    for uri in ("s3://bucket/scored", "gs://bucket/x/y"):
        assert check_out_reachable(uri, "10.0.0.1:6379") == uri
    assert fake_cluster["joins"] == 0


def test_a_local_out_is_refused_on_several_nodes_unless_declared(fake_cluster: dict, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from thresher.jobs.cli import UsageError
    from thresher.jobs.common import check_out_reachable

    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"^--out .*/out is a local folder, but the Ray cluster at 10\.0\.0\.1:6379 has 2 nodes"):
        check_out_reachable(Path("out"), "10.0.0.1:6379")
    assert check_out_reachable(Path("out"), "10.0.0.1:6379", shared=True) == tmp_path / "out"
    monkeypatch.setenv("THRESHER_SHARED_OUT", "1")
    assert check_out_reachable("out", "10.0.0.1:6379") == str(tmp_path / "out")
    monkeypatch.setenv("THRESHER_SHARED_OUT", "maybe")
    with pytest.raises(UsageError, match="THRESHER_SHARED_OUT='maybe' is neither 1 nor 0"):
        check_out_reachable("out", "10.0.0.1:6379")
    monkeypatch.setenv("THRESHER_SHARED_OUT", "0")
    fake_cluster["nodes"] = 1  # one node: the driver's disk is the tasks' disk
    assert check_out_reachable(Path("out"), "10.0.0.1:6379") == tmp_path / "out"
    with pytest.raises(UsageError, match="ray://head:10001 is a Ray Client address"):  # the driver is off the cluster
        check_out_reachable(Path("out"), "ray://head:10001")


def test_a_new_local_ray_is_neither_joined_nor_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No running Ray to join: nothing to check, and Ray is not started for the check; a relative path still resolves."""
    from thresher.jobs.common import check_out_reachable
    from thresher.pipeline import cluster

    monkeypatch.setattr(cluster, "joins_running_ray", lambda address: False)
    monkeypatch.setattr(cluster, "ensure_ray", lambda *a, **k: pytest.fail("started Ray for the check"))
    monkeypatch.chdir(tmp_path)
    assert check_out_reachable(Path("rel/out"), None) == tmp_path / "rel" / "out"


def test_what_counts_as_joining_a_running_ray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As ray.init() decides: an address, RAY_ADDRESS, or the ray_current_cluster file a `ray start` leaves; not "local"."""
    import ray

    from thresher.pipeline import cluster

    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh `thresher` process
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))  # where ray.init() looks for ray_current_cluster
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not cluster.joins_running_ray(None)
    assert cluster.joins_running_ray("10.0.0.1:6379") and not cluster.is_client_address("10.0.0.1:6379")
    assert cluster.is_client_address("ray://head:10001")
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text("10.0.0.9:6379")
    assert cluster.joins_running_ray(None)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    (tmp_path / "ray" / "ray_current_cluster").unlink()
    assert cluster.joins_running_ray(None) and not cluster.joins_running_ray("local")


@pytest.mark.parametrize("command", ["score", "dedupe", "run"])
def test_every_command_that_takes_a_cluster_checks_its_out(fake_cluster: dict, tmp_path: Path, capsys, command) -> None:
    """score, dedupe and run refuse before any work (nothing but the empty folder is made), and take --shared-out."""
    import yaml

    from thresher.jobs.cli import build_parser, main

    inp = _corpus(tmp_path / "in")
    if command == "run":
        (tmp_path / "job.yaml").write_text(yaml.safe_dump({"input": str(inp), "out": "out", "score": {"scorers": ["c4"]},
                                                           "ray": {"address": "10.0.0.1:6379"}, "report": False}))
        argv = ["run", str(tmp_path / "job.yaml")]
    else:
        argv = [command, str(inp), "--out", str(tmp_path / "out"), "--address", "10.0.0.1:6379"]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    label = "the spec's out" if command == "run" else "--out"
    assert err.startswith(f"thresher {command}: error: {label} {tmp_path / 'out'} is a local folder, but the Ray "
                          "cluster at 10.0.0.1:6379 has 2 nodes"), err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []
    assert fake_cluster["joins"] == 1
    assert build_parser().parse_args([*argv, "--shared-out"]).shared_out is True


def _s3_tree(root) -> dict[str, bytes]:
    """Data files (sidecars, ledger, quarantine) below an S3 output, by path relative to it."""
    return {e.relative: e.location.read_bytes() for e in root.files()
            if e.relative.startswith(("sidecars/", "ledger/", "malformed/"))}


@pytest.mark.slow
def test_two_nodes_read_and_write_s3_with_no_shared_disk(two_nodes: TwoNodes, s3_root, s3_server, tmp_path: Path) -> None:
    """Input and output on S3: nothing to declare, tasks on both nodes, the same bytes as one node on a local disk."""
    local_in = _corpus(tmp_path / "in")
    for f in sorted(local_in.iterdir()):
        (s3_root / "in" / f.name).write_bytes(f.read_bytes())
    store = ["--storage-option", f"endpoint_override={s3_server.endpoint}"]
    score = ["--scorers", "gopher_quality,c4", "--carry", "source", "--quiet"]
    since_ms = int(time.time() * 1000)
    ran = _thresher(["score", str(s3_root / "in"), "--out", str(s3_root / "scored"), *score, *store,
                     "--address", two_nodes.address], two_nodes.env, tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert f"sidecars: {s3_root / 'scored' / 'sidecars'}" in ran.stdout
    nodes = _task_nodes(two_nodes, since_ms)
    assert nodes == set(two_nodes.nodes), (nodes, two_nodes.nodes)
    deduped = _thresher(["dedupe", str(s3_root / "in"), "--out", str(s3_root / "deduped"), "--method", "exact",
                         "--quiet", *store, "--address", two_nodes.address], two_nodes.env, tmp_path)
    assert deduped.returncode == 0, deduped.stderr

    single = _thresher(["score", str(local_in), "--out", str(tmp_path / "single"), *score, "--address", "local"],
                       two_nodes.env, tmp_path)
    assert single.returncode == 0, single.stderr
    single_dd = _thresher(["dedupe", str(local_in), "--out", str(tmp_path / "single-dd"), "--method", "exact",
                           "--quiet", "--address", "local"], two_nodes.env, tmp_path)
    assert single_dd.returncode == 0, single_dd.stderr
    multi, one = _s3_tree(s3_root / "scored"), tree_bytes(tmp_path / "single")
    assert any(k.startswith("sidecars/") for k in multi) and multi == one, (sorted(multi), sorted(one))
    multi_dd, one_dd = _s3_tree(s3_root / "deduped"), tree_bytes(tmp_path / "single-dd")
    assert any(k.startswith("ledger/") for k in multi_dd) and multi_dd == one_dd
    digest = hashlib.sha256(b"".join(k.encode() + v for k, v in sorted(multi.items()))).hexdigest()
    print(f"2-node S3 run: nodes {sorted(nodes)}, {len(multi)} score files sha256 {digest} on both")
