"""Files appear whole or not at all, and are read only within their format's limits.

Every file Thresher writes goes through `write_atomic`: it is written under a hidden
temporary name beside the target, flushed to disk, then renamed into place, so a killed
run never leaves a half-written file under the real name. Every model, plan, pools and
observation file is opened through `open_limited` / `read_limited`, which refuse a file
over its format's size limit before reading it. A file from object storage is opened by
`thresher.jobs` (through `thresher.pipeline.storage`), which measures and reads it and refuses
it with the same messages (`no_such_file`, `too_large`, `check_limited`): this module takes
names and bytes, never URIs. `JsonFormat` is the format tag a JSON writer stamps and its
reader checks.

This module lives in `metrics/` because that is the room every other room may import
(ARCHITECTURE.md): the maths rooms save their models through it, and
`thresher.pipeline.outputs` builds its writers on it, so there is one atomic writer.
"""
from __future__ import annotations

import errno
import glob
import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from thresher.metrics.errors import InputError, JobFailed

MiB = 1 << 20


class WriteError(JobFailed, OSError):
    """A file could not be written (disk full, read-only, quota); nothing half-written is left under its name."""


class FormatError(InputError):
    """A file is not what its format says: too large, too many rows, another format or version, unreadable.

    The message is `"<source>: <reason>"`; both parts are kept so a caller can rephrase the reason.
    Built from the message alone (as unpickling across a Ray task does), the reason is the message.
    """

    def __init__(self, source: str, reason: str | None = None) -> None:
        super().__init__(source if reason is None else f"{source}: {reason}")
        self.source, self.reason = ("", source) if reason is None else (source, reason)


class MissingFile(InputError, FileNotFoundError):
    """A file that should be read is not there (both a ValueError and a FileNotFoundError, for old callers)."""


def tmp_name(path: Path) -> Path:
    """The hidden temporary name a write goes to before its rename: `.<name>.<random>.tmp` beside it."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


def remove_stale_tmp(directory: Path, name: str) -> int:
    """Delete temporary files a killed writer left for `name` in `directory`; returns how many."""
    n = 0
    if directory.is_dir():
        for tmp in directory.glob(f".{glob.escape(name)}.*.tmp"):
            tmp.unlink(missing_ok=True)
            n += 1
    return n


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _write_failed(path: Path, exc: OSError, error: type[WriteError], advice: str) -> WriteError:
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc) or "quota" in str(exc).lower()
    hint = "the disk is full; free space" if full else "check the output directory"
    err = error(exc.errno or errno.EIO, f"cannot write {path}: {exc.strerror or exc} ({hint}{advice})")
    err.filename = str(path)
    return err


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None], *, durable: bool = True,
                 error: type[WriteError] = WriteError, advice: str = ", then run the command again") -> Path:
    """Write through `write(tmp)`, flush to disk (unless a scratch file), then rename into place.

    A failed write leaves no temporary file and surfaces as `error` (a WriteError) naming `path`;
    `advice` ends its message with what to do next.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    try:
        write(tmp)
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise _write_failed(path, exc, error, advice) from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_bytes_atomic(data: bytes, path: str | os.PathLike) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def _size_text(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n} bytes"


def _file(what: str) -> str:
    return what if what.endswith("file") else f"{what} file"


def _files(what: str) -> str:
    return f"{_file(what)}s"


def too_large(source: str, size: int, max_bytes: int, what: str) -> FormatError:
    """The refusal of a `what` file of `size` bytes over its format's `max_bytes` (checked before reading it).

    `source` is only a name for the message (a path or a URI): whoever opens the file
    measures it and calls this, so the maths rooms never see where a file lives.
    """
    return FormatError(source, f"{_size_text(size)} is over the {_size_text(max_bytes)} limit for "
                               f"{_files(what)}; is it the right file?")


def no_such_file(source: str, what: str, missing: str = "") -> MissingFile:
    """The error for a `what` file that is not there; `missing` says what to do."""
    return MissingFile(f"{source}: no such {_file(what)}{'; ' + missing if missing else ''}")


def check_limited(data: bytes, source: str, max_bytes: int, what: str) -> bytes:
    """`data` itself when it is at most `max_bytes`; read `max_bytes + 1` bytes and pass them here to refuse more."""
    if len(data) > max_bytes:  # it grew while being read, or its size was not known beforehand
        raise FormatError(source, f"over the {_size_text(max_bytes)} limit for {_files(what)}")
    return data


def open_limited(path: str | os.PathLike, max_bytes: int, what: str, missing: str = "") -> IO[bytes]:
    """An open binary file of at most `max_bytes`; the caller closes it.

    what: the format, for messages ("fit", "plan"). missing: what to do when the file is absent.
    """
    path = Path(path)
    if not path.is_file():
        raise no_such_file(str(path), what, missing)
    fh = open(path, "rb")
    size = os.fstat(fh.fileno()).st_size
    if size > max_bytes:
        fh.close()
        raise too_large(str(path), size, max_bytes, what)
    return fh


def read_limited(path: str | os.PathLike, max_bytes: int, what: str, missing: str = "") -> bytes:
    """The bytes of a file of at most `max_bytes` (see `open_limited`)."""
    with open_limited(path, max_bytes, what, missing) as fh:
        data = fh.read(max_bytes + 1)
    return check_limited(data, str(path), max_bytes, what)


@dataclass(frozen=True)
class JsonFormat:
    """One JSON file format: the tag its writer stamps and its reader checks, and its size limit.

    The tag is spelled either in one field (`"format": "thresher.plan/1"`) or, with
    `version_field`, in two (`"format": "thresher.quality_classifier", "version": 1`), as each
    format has always been written. `legacy`: files without a "format" field, written before
    the field existed, are read as this version. `what` names the format in messages ("no
    such fit file"); `noun` (default `what`) says what a file of another format is not ("not
    a saved fit").
    """

    name: str
    version: int
    what: str
    max_bytes: int
    version_field: bool = False
    legacy: bool = False
    noun: str = ""

    @property
    def tag(self) -> str:
        return self.name if self.version_field else f"{self.name}/{self.version}"

    def stamp(self) -> dict[str, Any]:
        """The fields that open every file of this format."""
        return {"format": self.name, "version": self.version} if self.version_field else {"format": self.tag}

    def _found_version(self, doc: Mapping[str, Any]) -> Any:
        fmt = doc.get("format")
        if self.version_field:
            return doc.get("version") if fmt == self.name else None
        name, sep, version = str(fmt).rpartition("/")
        return version if sep and name == self.name else None

    def check(self, doc: Any, source: str) -> Mapping[str, Any]:
        """`doc` itself when it is an object of this format and version; a FormatError naming `source` otherwise."""
        if not isinstance(doc, Mapping):
            raise FormatError(source, f"not a {self.noun or self.what} (expected a JSON object, got {type(doc).__name__})")
        if "format" not in doc and self.legacy:
            return doc
        version = self._found_version(doc)
        if version is None:
            raise FormatError(source, f"not a {self.noun or self.what} (format {doc.get('format')!r}, "
                                      f"expected {self.tag!r})")
        if str(version) != str(self.version):
            raise FormatError(source, f"{self.what} format version {version!r} is not one this Thresher reads "
                                      f"(version {self.version}); write it again with this version")
        return doc

    def loads(self, data: bytes | str, source: str) -> Mapping[str, Any]:
        """Parse and check JSON text already in memory (the limit applies to it too)."""
        if len(data) > self.max_bytes:
            raise FormatError(source, f"{_size_text(len(data))} is over the {_size_text(self.max_bytes)} limit "
                                      f"for {_files(self.what)}")
        try:
            doc = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FormatError(source, f"not JSON: {exc}") from None
        return self.check(doc, source)

    def load(self, path: str | os.PathLike, missing: str = "") -> Mapping[str, Any]:
        """Read, parse and check a file of this format."""
        return self.loads(read_limited(path, self.max_bytes, self.what, missing), str(path))
