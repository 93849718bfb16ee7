"""Jobs on a real S3 server (SeaweedFS): the CLI reads and writes `s3://`, and owes what it owes locally.

Every data file a job writes on S3 is byte for byte the one the same command writes on
local disk; a rerun resumes from the saved listing without listing the input again; a
driver killed mid-job resumes and ends identical; a changed input object is refused; no
secret reaches an output, a log line or an error; and every storage failure is one line.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.drills import kill_once
from thresher.pipeline import storage
from thresher.pipeline.ledger import STATUSES
from thresher.pipeline.outputs import MARKERS, TMP
from thresher.pipeline.storage import Location

REPO = Path(__file__).resolve().parents[2]
N_SHARDS, ROWS = 16, 25
EXTRA_LINES = 2  # a broken JSON line in s02, a record without text in s05
SCORE_DIRS = ("sidecars", "ledger", "malformed")
MISSING_BUCKET = "no-such-bucket-xyz"

pytestmark = pytest.mark.usefixtures("ray_session")

# ---------------------------------------------------------------------------------------------------- the corpus
_WORDS = ("river boat village market town morning farmer apple honey wool trader salt iron tool cloth child harbour "
          "master cargo note leather book noon square music voice bread visitor evening lantern bridge winter goods "
          "mountain forest valley road stone wall garden field horse cart bell church school teacher student lesson "
          "letter paper window door kitchen table chair candle fire water rain snow wind storm cloud summer autumn "
          "spring song story history island coast ship sailor fisher net wheat barley mill baker butcher smith").split()
_GLUE = ("the", "and", "of", "to", "in", "with", "for", "on", "at", "from", "by", "was", "were", "is", "that", "a")


def _sentence(rng: random.Random) -> str:
    words = []
    for k in range(rng.randint(8, 14)):
        words.append(rng.choice(_GLUE) if k % 2 else rng.choice(_WORDS))
    return " ".join(words).capitalize() + "."


def _doc(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(6, 10)))


def corpus_lines(n_shards: int = N_SHARDS, rows: int = ROWS, seed: int = 7) -> dict[str, list[str]]:
    """Shard name -> JSON lines: good documents, short and repetitive ones, exact and near duplicates, bad lines."""
    rng = random.Random(seed)
    base = [_doc(rng) for _ in range(rows)]  # documents that reappear in later shards
    shards: dict[str, list[str]] = {}
    for f in range(n_shards):
        lines = []
        for i in range(rows):
            kind = i % 10
            if f == 0 or kind in (3, 4, 6, 7, 8, 9):
                text = base[i] if f == 0 else _doc(rng)
            elif kind == 0:
                text = f"short note {f} {i}"
            elif kind == 1:
                text = "buy cheap pills now " * 40  # repetitive, and the same in every shard
            elif kind == 2:
                words = base[i].split()
                words[-3] = f"changed{f}"  # a near duplicate of base[i]
                text = " ".join(words)
            else:  # kind == 5: an exact copy of an earlier document
                text = base[i]
            lines.append(json.dumps({"text": text, "source": f"src{f % 3}"}))
        if f == 2:
            lines.insert(4, "{broken")
        if f == 5:
            lines.insert(7, json.dumps({"title": "a record without text"}))
        shards[f"s{f:02d}.jsonl"] = lines
    return shards


def write_corpus(root: Path, shards: dict[str, list[str]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, lines in shards.items():
        (root / name).write_text("\n".join(lines) + "\n")
    return root


def upload(local: Path, remote: Location) -> Location:
    for p in sorted(local.iterdir()):
        (remote / p.name).write_bytes(p.read_bytes())
    return remote


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "in", corpus_lines())


@pytest.fixture
def s3_in(s3_root: Location, corpus: Path) -> Location:
    """The corpus on S3, for a test of its own (one that changes it)."""
    return upload(corpus, s3_root / "in")


@pytest.fixture(scope="module")
def shared_root(s3_server) -> Location:
    """A prefix for this module's read-only fixtures; its Locations carry the server's options themselves."""
    return storage.at(f"s3://{s3_server.bucket}/test_s3_jobs-{uuid.uuid4().hex[:8]}",
                      {"endpoint_override": s3_server.endpoint})


@pytest.fixture(scope="module")
def shared_in(shared_root: Location, corpus: Path) -> Location:
    """The corpus on S3, shared by the tests that only read it."""
    return upload(corpus, shared_root / "in")


@pytest.fixture(scope="module")
def scored(s3_server, ray_session, shared_root: Location, shared_in: Location, corpus: Path,
           tmp_path_factory) -> tuple[Location, Path]:
    """`thresher score` of the corpus S3 -> S3 and local -> local: (the S3 output, the local output)."""
    from thresher.jobs.cli import main

    out, local = shared_root / "scored", tmp_path_factory.mktemp("scored") / "out"
    saved = storage.current_options()  # main() sets the process's options; the requesting test keeps its own
    try:
        assert main(["score", shared_in.uri, "--out", out.uri, *storage_args(s3_server), "--quiet"]) == 0
        assert main(["score", str(corpus), "--out", str(local), "--quiet"]) == 0
    finally:
        storage.configure(saved)
    return out, local


# ---------------------------------------------------------------------------------------------------- helpers
def storage_args(s3_server) -> list[str]:
    return ["--storage-option", f"endpoint_override={s3_server.endpoint}"]


def data_bytes(root: Path | Location, subdirs: tuple[str, ...] | None = None) -> dict[str, bytes]:
    """Every Parquet file below `root` (local or remote), keyed by its path below it; only those under `subdirs`
    (first path component) when given."""
    loc = storage.at(str(root)) if isinstance(root, Path) else root
    found = {}
    for e in loc.files():
        if e.relative.endswith(".parquet") and (subdirs is None or e.relative.split("/", 1)[0] in subdirs):
            found[e.relative] = e.location.read_bytes()
    return found


def read_json(loc: Path | Location) -> dict:
    return json.loads(loc.read_bytes())


def one_line(text: str) -> str:
    text = text.strip()
    assert text and "\n" not in text and "Traceback" not in text, f"expected one line, got:\n{text}"
    return text


def check_ledger(summary: dict, rows: int) -> None:
    ledger = summary["ledger"]
    assert summary["rows_read"] == ledger["rows"] == sum(ledger[s] for s in STATUSES) == rows, summary


def markers(out: Location) -> list[str]:
    """Part keys marked complete under `out` (a missing prefix lists as empty)."""
    return [e.relative[: -len(".json")] for e in (out / MARKERS).files() if e.relative.endswith(".json")]


def assert_markers_match_objects(out: Location) -> int:
    """Every marker names outputs that exist whole, with the hashes it recorded."""
    keys = markers(out)
    for key in keys:
        marker = read_json(out / MARKERS / f"{key}.json")
        for sub, digest in marker["outputs"].items():
            data = (out / sub / f"{key}.parquet").read_bytes()
            assert hashlib.sha256(data).hexdigest() == digest, f"{key}: {sub} differs from its marker"
            pq.read_table(pa.BufferReader(data))
    return len(keys)


def cli_env(**over: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_DEDUP_LOGS": "1"}
    env.pop("RAY_ADDRESS", None)
    env.update(over)
    return env


def run_cli(argv: list[str], env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "thresher.jobs.cli", *argv], cwd=REPO, env=env or cli_env(),
                          capture_output=True, text=True, timeout=timeout)


def kill_driver_after_parts(argv: list[str], watch: Location, parts: int, total: int) -> int:
    """Run `thresher ARGV` in its own session and SIGKILL it, with the Ray it started, once `parts` part markers
    exist under `watch` (a map job's output prefix on S3); returns how many parts were marked complete."""
    kill_once([*argv, "--workers", "1", "--quiet"], cli_env(), lambda: len(markers(watch)), parts)
    finished = len(markers(watch))
    assert parts <= finished < total, f"{finished} parts finished; the kill came too late to test resuming"
    assert assert_markers_match_objects(watch) == finished
    return finished


# ---------------------------------------------------------------------------------------------------- 1. score
def test_score_on_s3_matches_local_and_a_rerun_lists_nothing(s3_server, s3_root, scored, shared_in, monkeypatch,
                                                             capsys):
    from thresher.jobs.cli import main
    from thresher.pipeline import discovery

    opts = storage_args(s3_server)
    out, local_out = scored
    s3_in = shared_in
    remote = data_bytes(out)
    assert set(remote) == set(data_bytes(out, SCORE_DIRS)), "parquet files outside sidecars/, ledger/, malformed/"
    local = data_bytes(local_out)
    assert sorted(remote) == sorted(local)
    assert any(k.startswith("malformed/") for k in remote) and sum(k.startswith("sidecars/") for k in remote) == N_SHARDS
    for key in local:
        assert remote[key] == local[key], f"{key} differs between the S3 run and the local run"
    summary = read_json(out / "summary.json")
    check_ledger(summary, N_SHARDS * ROWS + EXTRA_LINES)
    assert summary["ledger"]["malformed"] == EXTRA_LINES
    local_summary = read_json(local_out / "summary.json")
    assert summary["ledger"] == local_summary["ledger"] and summary["content_hash"] == local_summary["content_hash"]
    assert assert_markers_match_objects(out) == N_SHARDS

    # the rerun: every part skipped, from the saved listing; no LIST of the input prefix at all
    listed: list[str] = []
    real_call = Location._call

    def spy(self, operation, fn, *args):
        if self.remote and operation == "list":
            recursive = bool(args) and isinstance(args[0], pa.fs.FileSelector) and args[0].recursive
            inside = self.path == s3_in.path or self.path.startswith(s3_in.path + "/")
            above = s3_in.path.startswith(self.path.rstrip("/") + "/")
            if inside or (above and recursive):
                listed.append(self.uri)
        return real_call(self, operation, fn, *args)

    def no_discovery(text):
        listed.append(f"discover {text}")
        raise AssertionError(f"the rerun discovered {text} again")

    monkeypatch.setattr(Location, "_call", spy)
    monkeypatch.setattr(discovery, "_discover_remote", no_discovery)
    capsys.readouterr()
    assert main(["score", s3_in.uri, "--out", out.uri, *opts, "--quiet"]) == 0, capsys.readouterr().err
    assert listed == [], f"the rerun listed the input: {listed}"
    again = read_json(out / "summary.json")
    assert again["parts"] == again["parts_skipped_as_complete"] == N_SHARDS
    assert again["content_hash"] == summary["content_hash"] and again["ledger"] == summary["ledger"]
    monkeypatch.undo()
    assert data_bytes(out) == remote


# ---------------------------------------------------------------------------------------------------- 2. dedupe
# semantic runs its embedder in a Ray Data actor pool, whose start-up alone costs tens of seconds on 2 cores
@pytest.mark.parametrize("method", ["minhash", "exact", pytest.param("semantic", marks=pytest.mark.slow)])
def test_dedupe_s3_to_s3_matches_local(s3_server, s3_root, shared_in, corpus, tmp_path, method):
    from thresher.jobs.cli import main

    s3_in = shared_in
    out = s3_root / f"dedupe-{method}"
    assert main(["dedupe", s3_in.uri, "--out", out.uri, "--method", method, *storage_args(s3_server), "--quiet"]) == 0
    assert main(["dedupe", str(corpus), "--out", str(tmp_path / "d"), "--method", method, "--quiet"]) == 0
    remote, local = data_bytes(out), data_bytes(tmp_path / "d")
    assert sorted(remote) == sorted(local) and any(k.startswith("sidecars/") for k in remote)
    for key in local:
        assert remote[key] == local[key], f"{key} differs between the S3 run and the local run"
    summary = read_json(out / "summary.json")
    check_ledger(summary, N_SHARDS * ROWS + EXTRA_LINES)
    assert summary["ledger"] == read_json(tmp_path / "d" / "summary.json")["ledger"]
    if method in ("minhash", "exact"):
        assert summary["ledger"]["duplicate"] > 0 and summary["groups"] > 0, summary


# ---------------------------------------------------------------------------------------------------- 3. pools, materialize
def _plan_for(pools: dict) -> dict:
    """A plan over these pools: two thirds of the budget to the best pool (two epochs of it), the rest to the others."""
    best = pools["pools"][-1]
    budget = 2.0 * best["unique"] / (2 / 3)
    rest = pools["pools"][:-1]
    rows = [{"name": best["name"], "weight": 2 / 3, "seen": 2 * best["unique"], "epochs": 2.0, "unique": best["unique"]}]
    for p in rest:
        w = (1 / 3) / len(rest)
        rows.append({"name": p["name"], "weight": w, "seen": w * budget, "epochs": w * budget / p["unique"],
                     "unique": p["unique"]})
    return {"budget": budget, "unit": pools["unit"], "pools": rows}


def test_pools_and_materialize_on_s3_match_local(s3_server, s3_root, scored, tmp_path):
    from thresher.jobs.cli import main
    from thresher.pipeline.plans import write_plan
    from thresher.pipeline.pools import load_pools_json

    opts = storage_args(s3_server)
    pool_args = ["--score", "gopher_words", "--quantiles", "0.5", "--names", "low,high"]
    results: dict[str, tuple] = {}
    for where, scored_out, root in (("s3", scored[0], s3_root), ("local", storage.at(str(scored[1])),
                                                                   storage.at(str(tmp_path)))):
        pools, train = root / "pools", root / "train"
        assert main(["pools", scored_out.uri, "--out", pools.uri, *pool_args, *opts, "--quiet"]) == 0
        doc = load_pools_json(pools.uri)
        plan = root / "plan.json"
        write_plan(_plan_for(doc), plan.uri if where == "s3" else plan.local)
        assert main(["materialize", plan.uri, "--pools", pools.uri, "--out", train.uri, *opts, "--quiet"]) == 0
        results[where] = (doc, train)
    (s3_doc, s3_train), (local_doc, local_train) = results["s3"], results["local"]
    assert s3_doc["pools"] == local_doc["pools"]
    remote, local = data_bytes(s3_train), data_bytes(local_train)
    assert "manifest.parquet" in local and any(k.startswith("data/") for k in local)
    assert sorted(remote) == sorted(local)
    for key in local:
        assert remote[key] == local[key], f"{key} differs between the S3 chain and the local chain"
    assert data_bytes(s3_root / "pools") == data_bytes(storage.at(str(tmp_path / "pools")))
    assert pq.read_table(pa.BufferReader(remote["manifest.parquet"])).num_rows > 0


# ---------------------------------------------------------------------------------------------------- 4. kill drills
@pytest.fixture(scope="module")
def drill_corpus(tmp_path_factory) -> Path:
    """16 shards, bigger than the shared corpus, so a driver running one worker is killed midway."""
    return write_corpus(tmp_path_factory.mktemp("drill") / "in", corpus_lines(rows=40, seed=11))


@pytest.mark.slow
def test_a_killed_score_driver_on_s3_resumes_and_ends_identical(s3_server, s3_root, drill_corpus):
    from thresher.jobs.cli import main

    opts = storage_args(s3_server)
    inp = upload(drill_corpus, s3_root / "in")
    out = s3_root / "killed"
    finished = kill_driver_after_parts(["score", inp.uri, "--out", out.uri, *opts], out, parts=3, total=N_SHARDS)
    assert main(["score", inp.uri, "--out", out.uri, *opts, "--quiet"]) == 0
    resumed = read_json(out / "summary.json")
    assert resumed["parts_skipped_as_complete"] == finished and resumed["parts"] == N_SHARDS
    assert main(["score", inp.uri, "--out", (s3_root / "fresh").uri, *opts, "--quiet"]) == 0
    fresh = data_bytes(s3_root / "fresh", SCORE_DIRS)
    assert data_bytes(out, SCORE_DIRS) == fresh and len(fresh) > N_SHARDS
    assert resumed["content_hash"] == read_json(s3_root / "fresh" / "summary.json")["content_hash"]
    assert not [k for k in data_bytes(out) if k.startswith(f"{TMP}/")], "chunks of the killed run were left behind"
    assert assert_markers_match_objects(out) == N_SHARDS


@pytest.mark.slow
def test_a_killed_dedupe_driver_on_s3_resumes_and_ends_identical(s3_server, s3_root, drill_corpus):
    from thresher.jobs.cli import main

    opts = storage_args(s3_server)
    inp = upload(drill_corpus, s3_root / "in")
    out = s3_root / "killed"
    finished = kill_driver_after_parts(["dedupe", inp.uri, "--out", out.uri, *opts], out / "signatures", parts=3,
                                       total=N_SHARDS)
    assert main(["dedupe", inp.uri, "--out", out.uri, *opts, "--quiet"]) == 0
    stats = read_json(out / "stats.json")
    assert stats["signature"]["parts_skipped_as_complete"] == finished
    assert main(["dedupe", inp.uri, "--out", (s3_root / "fresh").uri, *opts, "--quiet"]) == 0
    # every data file, the signature phase's own included (no chunk of the killed run left behind)
    got, fresh = data_bytes(out), data_bytes(s3_root / "fresh")
    assert sorted(got) == sorted(fresh) and sum(k.startswith("sidecars/") for k in fresh) == N_SHARDS
    for key in fresh:
        assert got[key] == fresh[key], f"{key} differs between the resumed run and an uninterrupted one"
    summary, ref = read_json(out / "summary.json"), read_json(s3_root / "fresh" / "summary.json")
    assert summary["ledger"] == ref["ledger"] and summary["ledger"]["duplicate"] > 0


# ---------------------------------------------------------------------------------------------------- 5. changed input
def test_a_changed_input_object_is_refused_on_rerun(s3_server, s3_root, s3_in, capsys):
    from thresher.jobs.cli import main
    from thresher.pipeline.executor import JobConflict, MapJob, run_map_job
    from thresher.pipeline.registry import make_scorer

    uploaded = time.time()
    opts = storage_args(s3_server)

    def partial(out: Location) -> list[str]:
        with pytest.raises(RuntimeError, match="no completion marker"):  # a driver that stopped after two parts
            run_map_job(MapJob(input=s3_in.uri, out_dir=out, stages=[make_scorer("gopher_quality")], quiet=True,
                               stop_after_parts=2))
        done = markers(out)
        assert len(done) == 2, done
        return done

    def refused(out: Location, shard: str, why: str) -> None:
        before = markers(out)
        with pytest.raises(JobConflict) as exc:
            run_map_job(MapJob(input=s3_in.uri, out_dir=out, stages=[make_scorer("gopher_quality")], quiet=True))
        assert shard in str(exc.value) and why in str(exc.value), str(exc.value)
        capsys.readouterr()
        assert main(["score", s3_in.uri, "--out", out.uri, "--scorers", "gopher_quality", *opts, "--quiet"]) == 2
        err = one_line(capsys.readouterr().err)
        assert shard in err and why in err, err
        assert markers(out) == before  # the refused reruns added nothing

    # a shard not yet read, rewritten with other content of another size
    done = partial(s3_root / "grown")
    target = f"s{N_SHARDS - 1:02d}.jsonl"
    assert not any(k.startswith(target) for k in done)
    (s3_in / target).write_bytes((s3_in / target).read_bytes() + b'{"text": "a row added after the start"}\n')
    refused(s3_root / "grown", target, "changed size")

    # another one rewritten in place with content of the same size (a later modification time)
    done = partial(s3_root / "rewritten")
    target = f"s{N_SHARDS - 2:02d}.jsonl"
    assert not any(k.startswith(target) for k in done)
    old = (s3_in / target).read_bytes()
    new = old.replace(b"short note", b"SHORT NOTE")
    assert new != old and len(new) == len(old)
    time.sleep(max(0.0, uploaded + 1.2 - time.time()))  # object times are kept to the second
    (s3_in / target).write_bytes(new)
    refused(s3_root / "rewritten", target, "modified")


# ---------------------------------------------------------------------------------------------------- 6. secrets
def test_secrets_never_reach_output_logs_or_errors(s3_server, s3_root, shared_in, ray_session):
    s3_in = shared_in
    opts = storage_args(s3_server)
    secret = s3_server.secret_key
    out = s3_root / "scored"
    # a driver of its own, not quiet (worker logs come back to it), on the session's Ray (no start-up to wait for)
    address = ray_session.get_runtime_context().gcs_address
    done = run_cli(["score", s3_in.uri, "--out", out.uri, *opts, "--scorers", "gopher_quality", "--address", address],
                   env=cli_env(AWS_ACCESS_KEY_ID=s3_server.access_key, AWS_SECRET_ACCESS_KEY=secret))
    assert done.returncode == 0, done.stderr[-3000:]
    assert secret not in done.stdout and secret not in done.stderr
    objects = out.files()
    names = {e.relative for e in objects}
    assert {"job.json", "summary.json", "stats.json"} <= names and any(n.startswith(f"{MARKERS}/") for n in names)
    for e in objects:
        assert secret.encode() not in e.location.read_bytes(), f"{e.relative} holds the secret key"

    wrong = "wrong-secret-0d5f8a1e"
    failed = run_cli(["score", s3_in.uri, "--out", (s3_root / "other").uri, *opts, "--quiet"],
                     env=cli_env(AWS_ACCESS_KEY_ID=s3_server.access_key, AWS_SECRET_ACCESS_KEY=wrong))
    assert failed.returncode != 0
    line = one_line(failed.stderr)
    assert wrong not in line and secret not in line and wrong not in failed.stdout, line
    assert "access denied" in line.lower(), line

    refused = run_cli(["score", s3_in.uri, "--out", (s3_root / "third").uri, *opts, "--storage-option", "secret_key=xyz"])
    assert refused.returncode == 2
    line = one_line(refused.stderr)
    assert "xyz" not in line and "xyz" not in refused.stdout and "secret_key" in line, line
    assert not (s3_root / "other").files() and not (s3_root / "third").files()


# ---------------------------------------------------------------------------------------------------- 7. errors
def test_input_in_a_missing_bucket_is_one_line_naming_it(s3_server, s3_root, capsys):
    from thresher.jobs.cli import main

    uri = f"s3://{MISSING_BUCKET}/in"
    capsys.readouterr()
    code = main(["score", uri, "--out", (s3_root / "out").uri, *storage_args(s3_server), "--quiet"])
    err = one_line(capsys.readouterr().err)
    assert code != 0 and uri in err and "bucket does not exist" in err, err


def test_output_in_a_missing_bucket_is_refused_before_work(s3_server, shared_in, capsys):
    from thresher.jobs.cli import main

    s3_in = shared_in
    uri = f"s3://{MISSING_BUCKET}/out"
    capsys.readouterr()
    assert main(["score", s3_in.uri, "--out", uri, *storage_args(s3_server), "--quiet"]) == 2
    err = one_line(capsys.readouterr().err)
    assert "bucket does not exist" in err and MISSING_BUCKET in err, err


def test_output_without_write_permission_is_refused_before_work(s3_server, s3_root, shared_in):
    from tests.s3_server import READER_KEY, READER_SECRET

    s3_in = shared_in
    out = s3_root / "out"
    done = run_cli(["score", s3_in.uri, "--out", out.uri, *storage_args(s3_server), "--quiet"],
                   env=cli_env(AWS_ACCESS_KEY_ID=READER_KEY, AWS_SECRET_ACCESS_KEY=READER_SECRET), timeout=60)
    assert done.returncode == 2, done.stderr[-3000:]
    line = one_line(done.stderr)
    assert out.uri in line and ("access denied" in line.lower() or "permission" in line.lower()), line
    assert READER_SECRET not in line
    assert out.files() == [], "something was written before the permission check"
