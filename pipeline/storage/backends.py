"""One file system object per protocol and option set: pyarrow's native S3 and GCS, fsspec for the rest.

Creating a client costs a credentials lookup and a connection pool, so each process keeps
one per (protocol, options). Paths handed to these file systems have no protocol: S3 and
GCS take `bucket/key`, fsspec file systems their own stripped form.
"""
from __future__ import annotations

import json
import threading
from typing import Any

import pyarrow.fs as pafs

from thresher.pipeline.storage.options import StorageOptionError, fsspec_settings, gcs_settings, s3_settings

NATIVE = ("s3", "gs")
ALIASES = {"gcs": "gs", "s3a": "s3"}
_LOCK = threading.Lock()
_CACHE: dict[tuple[str, str], Any] = {}


def _s3(options: dict[str, Any]) -> pafs.FileSystem:
    kwargs = s3_settings(options)
    attempts = kwargs.pop("max_attempts")
    # The standard strategy retries throttling (503 SlowDown, 429), 5xx and dropped connections with backoff.
    return pafs.S3FileSystem(retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=attempts),
                             allow_delayed_open=True, **kwargs)


def _gcs(options: dict[str, Any]) -> pafs.FileSystem:
    return pafs.GcsFileSystem(**gcs_settings(options))


def _fsspec(protocol: str, options: dict[str, Any]) -> tuple[pafs.FileSystem, Any]:
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with datasets
        raise StorageOptionError(f"{protocol}:// needs fsspec (pip install fsspec)") from None
    try:
        spec = fsspec.filesystem(protocol, **fsspec_settings(protocol, options))
    except (ValueError, ImportError) as exc:
        raise StorageOptionError(f"{protocol}:// is not a storage protocol Thresher can open here ({exc})") from None
    except TypeError as exc:
        raise StorageOptionError(f"storage options for {protocol}:// are not accepted by its backend ({exc})") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(spec)), spec


def filesystem(protocol: str, options: dict[str, Any]) -> pafs.FileSystem:
    """The process's file system for `protocol` with `options` (created on first use)."""
    key = (protocol, json.dumps(options, sort_keys=True, default=str))
    with _LOCK:
        fs = _CACHE.get(key)
        if fs is None:
            if protocol == "s3":
                fs = _s3(options)
            elif protocol == "gs":
                fs = _gcs(options)
            else:
                fs = _fsspec(protocol, options)[0]
            _CACHE[key] = fs
    return fs


def fsspec_path(protocol: str, options: dict[str, Any], rest: str) -> str:
    """The path an fsspec file system expects for `<protocol>://<rest>`."""
    import fsspec

    cls = fsspec.get_filesystem_class(protocol)
    return cls._strip_protocol(f"{protocol}://{rest}")
