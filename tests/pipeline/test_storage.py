"""The storage layer against a real S3 server (SeaweedFS, checks SigV4 like AWS) and fsspec's `memory://`.

What a user meets on an object store: round trips of whole objects, listings, ranged
reads, options that travel with a pickled Location, credentials refused wherever they
could leak, and every failure as one line naming the URI and the operation. Throttling
is injected by a small reverse proxy in front of the server, so the retries that hide it
(and the error once they run out) are exercised for real.
"""
from __future__ import annotations

import http.client
import os
import pickle
import random
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from thresher.pipeline import storage
from thresher.pipeline.storage import (
    Location,
    StorageAccessError,
    StorageError,
    StorageNotFound,
    StorageOptionError,
    backends,
)
from thresher.pipeline.storage.options import check_options, parse_option_items
from thresher.pipeline.storage.options import s3_settings as _s3_settings

SECRET = "s3cr3t-VALUE-never-printed"
SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message><RequestId>thresher-proxy</RequestId></Error>")


# --- fixtures ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def memory_root() -> Iterator[Location]:
    """A fresh folder on fsspec's in-process `memory://` store (no server needed)."""
    root = storage.at(f"memory://thresher-tests/{uuid.uuid4().hex[:8]}", {})
    yield root
    root.remove_tree()


@pytest.fixture(params=["memory", "s3"])
def root(request: pytest.FixtureRequest) -> Location:
    """The same behaviour is owed on every remote protocol: each round-trip test runs on both."""
    return request.getfixturevalue("memory_root" if request.param == "memory" else "s3_root")


@pytest.fixture
def fresh_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An empty client cache, so clients are built from the credentials a test sets; the session's come back after.

    The cache is keyed by options, not by the environment: a client built with wrong keys
    would otherwise serve every later test.
    """
    saved = dict(backends._CACHE)
    backends._CACHE.clear()
    yield
    backends._CACHE.clear()
    backends._CACHE.update(saved)


def _as(monkeypatch: pytest.MonkeyPatch, access_key: str, secret_key: str) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
    backends._CACHE.clear()


def _one_line(exc: BaseException, uri: str, operation: str) -> str:
    """The message, checked to be one line that starts with the URI and the operation."""
    msg = str(exc)
    assert "\n" not in msg, msg
    assert msg.startswith(f"{uri}: cannot {operation}: "), msg
    return msg


# --- a throttling reverse proxy ---------------------------------------------------------------------------------------
class ThrottleProxy:
    """Loopback HTTP proxy in front of the S3 server: answers chosen requests with 503 SlowDown, can drop one
    connection, forwards the rest byte for byte (Host included, so SigV4 signatures still verify)."""

    def __init__(self, upstream: str, fail_first: int = 0, always: bool = False, drop_once: bool = False) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.fail_first, self.always, self.drop_once = fail_first, always, drop_once
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str, str | None]] = []  # (method, path, Range) of every request that arrived
        self.throttled = self.dropped = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the AWS SDK expects

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def _body(h: BaseHTTPRequestHandler) -> bytes:
        """The request body exactly as sent (chunked framing kept), so it can be forwarded unchanged."""
        if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
            raw = bytearray()
            while True:
                line = h.rfile.readline()
                raw += line
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers up to the blank line
                        trailer = h.rfile.readline()
                        raw += trailer
                        if trailer in (b"\r\n", b"\n", b""):
                            return bytes(raw)
                raw += h.rfile.read(size + 2)
        length = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(length) if length else b""

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = self._body(h)
        with self.lock:
            self.seen.append((h.command, h.path, h.headers.get("Range")))
            throttle = self.always or len(self.seen) <= self.fail_first
            drop = not throttle and self.drop_once and not self.dropped
            self.throttled += throttle
            self.dropped += drop
        if drop:  # no answer at all: the client sees the connection close under it
            h.close_connection = True
            return
        if throttle:
            h.send_response(503, "Slow Down")
            h.send_header("Content-Type", "application/xml")
            h.send_header("Content-Length", str(len(SLOW_DOWN)))
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(SLOW_DOWN)
            return
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            conn.putrequest(h.command, h.path, skip_host=True, skip_accept_encoding=True)
            for name, value in h.headers.items():
                conn.putheader(name, value)
            conn.endheaders(body or None)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        h.send_response_only(resp.status, resp.reason)
        for name, value in resp.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                h.send_header(name, value)
        length = resp.getheader("Content-Length") if h.command == "HEAD" else str(len(data))
        if length is not None:
            h.send_header("Content-Length", length)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)


@pytest.fixture
def make_proxy(s3_server) -> Iterator[Callable[..., ThrottleProxy]]:
    """Proxies in front of the test server, closed after the test."""
    made: list[ThrottleProxy] = []

    def make(**kwargs: object) -> ThrottleProxy:
        made.append(ThrottleProxy(s3_server.endpoint, **kwargs))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()


# --- round trips ------------------------------------------------------------------------------------------------------
def test_write_read_stat_round_trip(root: Location) -> None:
    """Whole-object writes are the only commit an object store has: what is written must read back, sized."""
    f = root / "sub" / "a.bin"
    assert not f.exists() and not f.is_file()
    f.write_bytes(b"hello object store")
    assert f.read_bytes() == b"hello object store"
    assert f.read_bytes(max_bytes=4) == b"hello"  # at most max_bytes + 1: the caller refuses more
    assert f.exists() and f.is_file() and not f.is_dir()
    assert f.stat().size == len(b"hello object store")
    f.write_text("replaced")  # an upload replaces the whole object
    assert f.read_text() == "replaced" and f.stat().size == 8
    assert (root / "sub").is_dir() and (root / "sub").exists() and not (root / "sub").is_file()
    f.unlink()
    assert not f.exists()
    f.unlink()  # missing_ok by default
    with pytest.raises(StorageNotFound):
        f.unlink(missing_ok=False)


@pytest.mark.parametrize("name", ["shard.jsonl.gz", "shard.jsonl.bz2", "shard.jsonl.zst", "model.npz"])
def test_a_compressed_name_is_stored_as_the_bytes_given(root: Location, name: str) -> None:
    """pyarrow compresses an output stream by its name's suffix unless told not to: a `.gz` shard would be gzipped
    twice and every row of it read back as garbage."""
    import gzip

    data = gzip.compress(b'{"text": "a document"}\n', mtime=0)
    (root / name).write_bytes(data)
    assert (root / name).read_bytes() == data
    with (root / name).open_input() as fh:
        assert fh.read() == data


def test_s3_stat_has_a_time(s3_root: Location) -> None:
    """Discovery keys resumable work on (size, mtime): S3 must give a time."""
    (s3_root / "t").write_bytes(b"x")
    assert (s3_root / "t").stat().mtime_ns is not None


def test_listing_iterdir_and_remove_tree(root: Location) -> None:
    """Discovery and cleanup see prefixes as folders; a sibling prefix sharing the name must not leak in."""
    names = {"a.txt": b"1", "d/b.txt": b"22", "d/e/c.txt": b"333", "z.txt": b""}
    for rel, data in names.items():
        (root / rel).write_bytes(data)
    (root.parent / (root.name + "-sibling") / "x").write_bytes(b"not below root")  # a prefix sharing the name
    try:
        entries = root.files()
        assert [e.relative for e in entries] == sorted(names)
        assert {e.relative: e.size for e in entries} == {rel: len(d) for rel, d in names.items()}
        assert all(e.location == root / e.relative for e in entries)
        assert [loc.name for loc in root.iterdir()] == ["a.txt", "d", "z.txt"]
        assert [loc.name for loc in (root / "d").iterdir()] == ["b.txt", "e"]
        assert (root / "d" / "e").is_dir()
        assert [e.relative for e in (root / "d").files()] == ["b.txt", "e/c.txt"]
        assert (root / "nothing-here").files() == []
        (root / "d").remove_tree()
        assert [e.relative for e in root.files()] == ["a.txt", "z.txt"]
        assert not (root / "d").exists() and not (root / "d" / "e" / "c.txt").exists()
        root.remove_tree()
        assert root.files() == [] and not root.exists()
        root.remove_tree()  # nothing there: nothing happens
    finally:
        (root.parent / (root.name + "-sibling")).remove_tree()


def test_open_input_seeks_and_reads_ranges(s3_root: Location, make_proxy: Callable[..., ThrottleProxy]) -> None:
    """Parquet footers and row groups are read by seeking: each read must be a ranged GET, not the whole object."""
    data = random.Random(7).randbytes(3 << 20)
    (s3_root / "big.bin").write_bytes(data)
    proxy = make_proxy()  # only to watch the requests: it throttles nothing
    storage.configure({"endpoint_override": proxy.endpoint})
    loc = storage.at((s3_root / "big.bin").uri)
    with loc.open_input(buffer=64 << 10) as fh:
        assert fh.seekable()
        fh.seek(2_000_000)
        assert fh.read(100) == data[2_000_000:2_000_100]
        assert fh.tell() == 2_000_100
        fh.seek(-10, os.SEEK_END)
        assert fh.read() == data[-10:]
        fh.seek(5)
        assert fh.read(7) == data[5:12]
    native = loc.open_native()
    try:
        assert native.size() == len(data)
        assert native.read_at(1000, 123_456) == data[123_456:124_456]
    finally:
        native.close()
    gets = [rng for method, _, rng in proxy.seen if method == "GET"]
    assert gets and all(rng and rng.startswith("bytes=") for rng in gets), proxy.seen
    fetched = sum(int(rng[6:].split("-")[1]) - int(rng[6:].split("-")[0]) + 1 for rng in gets)
    assert fetched < len(data) // 4, f"ranged reads fetched {fetched} of {len(data)} bytes"


# --- options travel with a pickled Location ---------------------------------------------------------------------------
def test_pickled_location_keeps_its_options_in_another_process(tmp_path) -> None:
    """A Ray task gets its Locations pickled: the store's settings must arrive with them, and nothing secret."""
    opts = {"endpoint_override": "http://127.0.0.1:9", "max_attempts": 3, "region": "eu-west-1"}
    loc = storage.at("s3://some-bucket/data/part-0.parquet", opts)
    blob = pickle.dumps(loc)
    assert b"thresher-test-secret" not in blob and b"AWS_" not in blob
    same = pickle.loads(blob)
    assert same == loc and same.options == check_options(opts) and (same / "x").options == same.options
    (tmp_path / "loc.pkl").write_bytes(blob)
    code = ("import pickle, sys; from thresher.pipeline import storage; "
            "loc = pickle.loads(open(sys.argv[1], 'rb').read()); "
            "print(loc.uri, sorted(loc.options.items()), sorted(storage.current_options().items()))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "loc.pkl")], capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    # the task runner, not unpickling, makes them the worker's defaults (next test)
    assert out == f"s3://some-bucket/data/part-0.parquet {sorted(check_options(opts).items())} []"


def test_the_task_runner_makes_the_drivers_options_the_workers_defaults() -> None:
    """Strings a task resolves (a part's path) must reach the same store as the driver's Locations."""
    from thresher.pipeline.tasks import _with_storage

    opts = check_options({"endpoint_override": "http://127.0.0.1:9", "max_attempts": 3})
    try:
        seen = _with_storage(lambda uri: (storage.current_options(), storage.at(uri).options), opts, "s3://b/k")
        assert seen == (opts, opts)
    finally:
        storage.configure({})


def test_local_location_pickles_as_a_path() -> None:
    """A local path carries no options and stays local across a pickle."""
    loc = pickle.loads(pickle.dumps(storage.at("/tmp/x")))
    assert loc.local is not None and str(loc) == "/tmp/x" and loc.options == {}


# --- options refuse credentials ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["access_key", "secret_key", "session_token", "hf.token", "Secret_Key",
                                  "aws_secret_access_key", "gs.credentials"])
def test_every_credential_option_is_refused_without_echoing_it(name: str) -> None:
    """Options end up on command lines, in specs and job.json: a credential there leaks, and so would an echo of it."""
    storage.configure({"max_attempts": 4})
    try:
        with pytest.raises(StorageOptionError) as exc:
            storage.configure({name: SECRET})
        msg = str(exc.value)
        assert SECRET not in msg and repr(name) in msg and "AWS_SECRET_ACCESS_KEY" in msg, msg
        assert storage.current_options() == {"max_attempts": 4}  # a refused set changes nothing
        with pytest.raises(StorageOptionError) as exc:
            parse_option_items([f"{name}={SECRET}"])
        assert SECRET not in str(exc.value)
        with pytest.raises(StorageOptionError):
            storage.at("s3://bucket/key", {name: SECRET})
    finally:
        storage.configure({})


def test_unknown_and_ill_typed_options_are_refused() -> None:
    """A misspelt option silently ignored would send a job to the wrong store."""
    with pytest.raises(StorageOptionError, match="unknown storage option 'endpoint'.*endpoint_override"):
        storage.configure({"endpoint": "http://x"})
    with pytest.raises(StorageOptionError, match=r"max_attempts='many': expected a int"):
        parse_option_items(["max_attempts=many"])
    with pytest.raises(StorageOptionError, match="anonymous='maybe': expected true or false"):
        storage.configure({"anonymous": "maybe"})
    with pytest.raises(StorageOptionError, match="must look like KEY=VALUE"):
        parse_option_items(["endpoint_override"])
    assert parse_option_items(["max_attempts=2", "anonymous=yes", "hf.revision=main"]) == {
        "anonymous": True, "hf.revision": "main", "max_attempts": 2}
    assert storage.current_options() == {}


def test_endpoint_scheme_and_region_come_from_the_endpoint() -> None:
    """pyarrow wants host:port and a scheme apart; a custom endpoint needs a region to sign with."""
    kwargs = _s3_settings({"endpoint_override": "http://127.0.0.1:8333/"})
    assert kwargs["endpoint_override"] == "127.0.0.1:8333" and kwargs["scheme"] == "http"
    assert "region" in kwargs and kwargs["max_attempts"] >= 2


@pytest.mark.parametrize("uri", [f"s3://AKIAEXAMPLE:{SECRET}@bucket/key", f"gs://user:{SECRET}@bucket/k",
                                 f"memory://u:{SECRET}@host/x"])
def test_a_uri_with_credentials_is_refused_and_not_echoed(uri: str) -> None:
    """URIs are logged and saved: one holding a secret is refused without repeating it."""
    with pytest.raises(StorageOptionError) as exc:
        storage.at(uri)
    msg = str(exc.value)
    assert SECRET not in msg and "AKIAEXAMPLE" not in msg and "credentials" in msg, msg


# --- errors: one line, naming the URI and the operation ---------------------------------------------------------------
def test_missing_key(s3_root: Location) -> None:
    """A missing input is the user's to fix: StorageNotFound (a FileNotFoundError), one line."""
    loc = s3_root / "no" / "such.parquet"
    with pytest.raises(StorageNotFound) as exc:
        loc.read_bytes()
    assert isinstance(exc.value, FileNotFoundError)
    assert "no such object" in _one_line(exc.value, loc.uri, "open")
    with pytest.raises(StorageNotFound) as exc:
        loc.open_native()
    assert "no such object" in _one_line(exc.value, loc.uri, "open")
    with pytest.raises(StorageNotFound) as exc:
        loc.stat()
    assert "no such object" in str(exc.value) and str(exc.value).startswith(loc.uri)


def test_missing_bucket(s3_root: Location) -> None:
    """S3 answers a read in a missing bucket like a missing key; the message must say it is the bucket."""
    bucket = f"thresher-missing-{uuid.uuid4().hex[:8]}"
    loc = storage.at(f"s3://{bucket}/data/part-0.parquet")
    for operation, call in (("open", loc.read_bytes), ("open", loc.open_native), ("write", lambda: loc.write_bytes(b"x"))):
        with pytest.raises(StorageNotFound) as exc:
            call()
        msg = _one_line(exc.value, loc.uri, operation)
        assert "bucket does not exist" in msg and "no such object" not in msg, msg
    assert not loc.exists() and not loc.bucket_exists() and s3_root.bucket_exists()


def test_wrong_secret_key(s3_root: Location, monkeypatch: pytest.MonkeyPatch, fresh_clients: None) -> None:
    """A wrong secret is rejected by SigV4; the message points at the credentials and never shows them."""
    good = s3_root / "a.txt"
    good.write_bytes(b"data")
    _as(monkeypatch, "thresher-test", "wrong-secret-key-value")
    loc = storage.at(good.uri)
    with pytest.raises(StorageAccessError) as exc:
        loc.read_bytes()
    msg = _one_line(exc.value, loc.uri, "open")
    assert "access denied" in msg and "wrong-secret-key-value" not in msg, msg
    with pytest.raises(StorageAccessError) as exc:
        (s3_root / "b.txt").write_bytes(b"x")
    msg = _one_line(exc.value, (s3_root / "b.txt").uri, "write")
    assert "access denied" in msg and "secret key does not match" in msg and "wrong-secret-key-value" not in msg, msg
    with pytest.raises(StorageAccessError) as exc:
        s3_root.files()
    _one_line(exc.value, s3_root.uri, "list")


def test_write_without_write_permission(s3_root: Location, monkeypatch: pytest.MonkeyPatch, fresh_clients: None) -> None:
    """Good keys without write permission: reads work, writes and deletes fail as access denied (not not-found)."""
    (s3_root / "a.txt").write_bytes(b"readable")
    _as(monkeypatch, "thresher-reader", "thresher-reader-secret")
    assert (s3_root / "a.txt").read_bytes() == b"readable"  # the keys are good: reading is allowed
    assert [e.relative for e in s3_root.files()] == ["a.txt"]
    target = s3_root / "b.txt"
    with pytest.raises(StorageAccessError) as exc:
        target.write_bytes(b"x")
    assert not isinstance(exc.value, StorageNotFound)
    assert "access denied" in _one_line(exc.value, target.uri, "write")
    with pytest.raises(StorageAccessError) as exc:
        (s3_root / "a.txt").unlink()
    assert "access denied" in _one_line(exc.value, (s3_root / "a.txt").uri, "delete")


def test_unreachable_store_is_one_line(s3_root: Location) -> None:
    """A wrong endpoint must say the store cannot be reached, not dump the SDK's curl detail."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    loc = storage.at("s3://thresher-test/x/y.bin", {"endpoint_override": f"http://127.0.0.1:{port}", "max_attempts": 1,
                                                   "connect_timeout": 1.0})
    with pytest.raises(StorageError) as exc:
        loc.read_bytes()
    assert "cannot reach the store" in _one_line(exc.value, loc.uri, "open")


# --- throttling -------------------------------------------------------------------------------------------------------
def test_read_and_write_retry_through_throttling(s3_root: Location, make_proxy: Callable[..., ThrottleProxy]) -> None:
    """SlowDown bursts and a dropped connection are routine on S3: retries with backoff must hide them."""
    data = b"read through SlowDown"
    (s3_root / "r.bin").write_bytes(data)
    proxy = make_proxy(fail_first=2, drop_once=True)
    storage.configure({"endpoint_override": proxy.endpoint})
    assert storage.at((s3_root / "r.bin").uri).read_bytes() == data
    assert (proxy.throttled, proxy.dropped) == (2, 1)

    proxy = make_proxy(fail_first=2)
    storage.configure({"endpoint_override": proxy.endpoint})
    storage.at((s3_root / "w.bin").uri).write_bytes(b"written through SlowDown")
    assert proxy.throttled == 2 and len(proxy.seen) > 2
    assert (s3_root / "w.bin").read_bytes() == b"written through SlowDown"  # s3_root goes to the server directly


@pytest.mark.parametrize("operation", ["open", "write"])
def test_throttling_that_persists_is_one_line(s3_root: Location, make_proxy: Callable[..., ThrottleProxy],
                                              operation: str) -> None:
    """Once retries run out the job must stop with one line that says why, not hang or dump XML."""
    (s3_root / "r.bin").write_bytes(b"x")
    proxy = make_proxy(always=True)
    storage.configure({"endpoint_override": proxy.endpoint, "max_attempts": 2})
    loc = storage.at((s3_root / ("r.bin" if operation == "open" else "w.bin")).uri)
    with pytest.raises(StorageError) as exc:
        loc.read_bytes() if operation == "open" else loc.write_bytes(b"y")
    assert not isinstance(exc.value, StorageAccessError)
    msg = _one_line(exc.value, loc.uri, operation)
    assert "kept throttling" in msg and "max_attempts" in msg, msg
    assert proxy.throttled == 2  # max_attempts tries in all, then the error


def test_a_job_over_memory_storage_is_refused_before_ray_starts(tmp_path) -> None:
    """memory:// is one process's: Ray workers would find nothing there and quarantine every row as unreadable."""
    from thresher.metrics.errors import InputError
    from thresher.pipeline.executor import MapJob, run_map_job
    from thresher.pipeline.registry import make_scorer

    (storage.at("memory://thresher-jobs/in") / "a.jsonl").write_text('{"text": "a document"}\n')
    for inp, out in (("memory://thresher-jobs/in", tmp_path / "out"), (str(tmp_path), "memory://thresher-jobs/out")):
        with pytest.raises(InputError, match="memory:// lives in this process only"):
            run_map_job(MapJob(input=inp, out_dir=out, stages=[make_scorer("c4")]))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.bz2", ".jsonl.xz", ".jsonl.zst", ".parquet"])
def test_every_shard_format_reads_from_s3_as_from_disk(s3_root: Location, tmp_path, suffix: str) -> None:
    """The reader streams each format from an object (ranged reads, inflated as read): the rows are the local ones,
    also when planning cuts the shard into several parts."""
    import bz2
    import gzip
    import json
    import lzma

    import pyarrow as pa
    import pyarrow.parquet as pq

    from thresher.pipeline.reader import ReadOptions, read_part
    from thresher.pipeline.shards import discover, plan_parts

    lines = [json.dumps({"text": f"document {i} " + "word " * (i % 13)}) for i in range(400)] + ["{broken"]
    raw = ("\n".join(lines) + "\n").encode()
    local = tmp_path / f"s{suffix}"
    if suffix == ".parquet":
        pq.write_table(pa.table({"text": [json.loads(x)["text"] for x in lines[:-1]]}), local, row_group_size=50)
    else:
        data = {".jsonl": raw, ".jsonl.gz": gzip.compress(raw, mtime=0), ".jsonl.bz2": bz2.compress(raw),
                ".jsonl.xz": lzma.compress(raw)}.get(suffix)
        if data is None:
            with pa.CompressedOutputStream(str(local), "zstd") as out:
                out.write(raw)
        else:
            local.write_bytes(data)
    (s3_root / local.name).write_bytes(local.read_bytes())

    def rows(where: str) -> list:
        _, shards = discover(where)
        parts = plan_parts(shards, part_bytes=2048, part_rows=100)
        tables = [read_part(p, ReadOptions()) for p in parts]
        return [len(parts)] + [t.select(["id", "text", "__malformed"]).to_pylist() for t in tables]

    here, there = rows(str(local)), rows(str(s3_root / local.name))
    assert here == there and sum(len(t) for t in here[1:]) >= 400
