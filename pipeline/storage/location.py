"""`Location`: a file or folder that is either a local path or an object under a URI, with one set of methods.

Everything Thresher lists, opens or commits goes through a Location. A local one keeps
the behaviour local files always had (atomic rename, links checked by discovery); a
remote one (`s3://`, `gs://`, any fsspec protocol) streams through pyarrow's file systems
and writes each object whole with one upload, since object stores have no rename (the
commit of a part is its completion marker, written last: see `outputs`).

A Location carries its job's storage options, never credentials, and takes them along
when pickled into a Ray task; the task runner (`thresher.pipeline.tasks`) also makes them
each task's process defaults, so the strings a task resolves (a part's path) reach the
same store with the same settings.
"""
from __future__ import annotations

import io
import os
import posixpath
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.fs as pafs

from thresher.pipeline.storage.backends import NATIVE, filesystem, fsspec_path
from thresher.pipeline.storage.errors import StorageError, StorageNotFound, storage_error
from thresher.pipeline.storage.raw import RawReader

READ_BUFFER = 8 << 20  # one ranged GET per 8 MiB read from an object store
@dataclass(frozen=True)
class Stat:
    size: int
    mtime_ns: int | None


@dataclass(frozen=True)
class Entry:
    """One file found by a listing: where it is, its path below the listed folder, its size and time."""

    location: Location
    relative: str
    size: int
    mtime_ns: int | None


def _path_order(entry: Entry) -> list[str]:
    """Sort as `pathlib` sorts paths: name by name, so `d/x` comes before `d.x` as it does locally."""
    return entry.relative.split("/")


class Location:
    """A local path (`protocol` None) or `<protocol>://<path>`; see the module docstring."""

    __slots__ = ("protocol", "path", "options")

    def __init__(self, protocol: str | None, path: str, options: dict[str, Any] | None = None) -> None:
        self.protocol = protocol
        self.path = path if protocol is None else path.rstrip("/")
        self.options = dict(options or {}) if protocol is not None else {}

    # --- identity ---------------------------------------------------------------------------------------------------
    @property
    def remote(self) -> bool:
        return self.protocol is not None

    @property
    def process_local(self) -> bool:
        """Whether only this process can see it (`memory://`): fine for a library call, never for Ray workers."""
        return self.protocol == "memory"

    @property
    def local(self) -> Path | None:
        """The local path, or None for a remote location."""
        return Path(self.path) if self.protocol is None else None

    @property
    def uri(self) -> str:
        return self.path if self.protocol is None else f"{self.protocol}://{self.path}"

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"Location({self.uri!r})"

    def __fspath__(self) -> str:
        if self.protocol is not None:
            raise TypeError(f"{self.uri} is not a local path; open it through thresher.pipeline.storage")
        return self.path

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Location):
            return (self.protocol, self._key()) == (other.protocol, other._key())
        if isinstance(other, (str, os.PathLike)) and self.protocol is None:
            return self._key() == os.path.normpath(os.fspath(other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.protocol, self._key()))

    def _key(self) -> str:
        return os.path.normpath(self.path) if self.protocol is None else self.path

    def __reduce__(self) -> tuple:
        return (_restore, (self.protocol, self.path, self.options))

    # --- path arithmetic --------------------------------------------------------------------------------------------
    def __truediv__(self, relative: str | os.PathLike) -> Location:
        rel = os.fspath(relative)
        if self.protocol is None:
            return Location(None, os.path.join(self.path, rel))
        return Location(self.protocol, posixpath.join(self.path, rel.lstrip("/")), self.options)

    def joinpath(self, *parts: str) -> Location:
        loc = self
        for part in parts:
            loc = loc / part
        return loc

    @property
    def name(self) -> str:
        return os.path.basename(self.path.rstrip("/")) if self.protocol is None else posixpath.basename(self.path)

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix

    @property
    def parent(self) -> Location:
        if self.protocol is None:
            return Location(None, str(Path(self.path).parent))
        head = posixpath.dirname(self.path)
        return Location(self.protocol, head or self.path, self.options)

    def with_name(self, name: str) -> Location:
        return self.parent / name

    def relative_to(self, root: Location) -> str:
        """This location's path below `root`, as `a/b/c` (ValueError when it is not below)."""
        if self.protocol != root.protocol:
            raise ValueError(f"{self.uri} is not below {root.uri}")
        if self.protocol is None:
            return Path(os.path.relpath(self.path, root.path)).as_posix()
        prefix = root.path.rstrip("/") + "/"
        if not self.path.startswith(prefix):
            raise ValueError(f"{self.uri} is not below {root.uri}")
        return self.path[len(prefix):]

    def absolute(self) -> Location:
        return Location(None, os.path.abspath(self.path)) if self.protocol is None else self

    def resolve(self) -> Location:
        return Location(None, str(Path(self.path).resolve())) if self.protocol is None else self

    # --- remote plumbing --------------------------------------------------------------------------------------------
    @property
    def fs(self) -> pafs.FileSystem:
        if self.protocol is None:
            return pafs.LocalFileSystem()
        return filesystem(self.protocol, self.options)

    @property
    def fs_path(self) -> str:
        """The path `fs` takes (no protocol): for handing this location to a pyarrow reader with `filesystem=fs`."""
        return self._fs_path()

    def _fs_path(self) -> str:
        if self.protocol in NATIVE or self.protocol is None:
            return self.path
        return fsspec_path(self.protocol, self.options, self.path)

    def _call(self, operation: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (OSError, pa.ArrowException) as exc:
            if isinstance(exc, (StorageError, StorageNotFound)):
                raise
            err = storage_error(self.uri, operation, exc)
            if isinstance(err, StorageNotFound) and self.protocol in NATIVE:
                # S3 and GCS answer a read in a missing bucket like a missing key: one HEAD of the bucket says which
                try:
                    gone = self.fs.get_file_info(self.path.split("/", 1)[0]).type == pafs.FileType.NotFound
                except (OSError, pa.ArrowException):
                    gone = False
                if gone:
                    err = storage_error(self.uri, operation, exc, bucket_missing=True)
            raise err from None

    def _info(self) -> pafs.FileInfo:
        return self._call("look up", self.fs.get_file_info, self._fs_path())

    # --- queries ----------------------------------------------------------------------------------------------------
    def exists(self) -> bool:
        if self.protocol is None:
            return os.path.exists(self.path)
        return self._info().type != pafs.FileType.NotFound or self.is_dir()

    def is_file(self) -> bool:
        if self.protocol is None:
            return os.path.isfile(self.path)
        return self._info().type == pafs.FileType.File

    def is_symlink(self) -> bool:
        """Only local files can be links; an object is never one."""
        return os.path.islink(self.path) if self.protocol is None else False

    def is_dir(self) -> bool:
        """A folder: locally a directory; on an object store a bucket or a prefix with objects under it."""
        if self.protocol is None:
            return os.path.isdir(self.path)
        info = self._info()
        if info.type == pafs.FileType.Directory:
            return True
        if info.type == pafs.FileType.File:
            return False
        selector = pafs.FileSelector(self._fs_path(), recursive=False, allow_not_found=True)
        return bool(self._call("list", self.fs.get_file_info, selector))

    def stat(self) -> Stat:
        if self.protocol is None:
            st = os.stat(self.path)
            return Stat(st.st_size, st.st_mtime_ns)
        info = self._info()
        if info.type != pafs.FileType.File:
            raise StorageNotFound(f"{self.uri}: cannot read: no such object")
        return Stat(int(info.size), info.mtime_ns)

    def bucket_exists(self) -> bool:
        """For s3:// and gs://: whether the bucket of this location is there (other protocols: True)."""
        if self.protocol not in NATIVE:
            return True
        bucket = self.path.split("/", 1)[0]
        return self._call("look up the bucket", self.fs.get_file_info, bucket).type != pafs.FileType.NotFound

    # --- reading ----------------------------------------------------------------------------------------------------
    def open_input(self, buffer: int = READ_BUFFER) -> IO[bytes]:
        """A seekable binary file; remote reads go out in `buffer`-sized ranged requests."""
        if self.protocol is None:
            return open(self.path, "rb")
        native = self._call("open", self.fs.open_input_file, self._fs_path())
        return io.BufferedReader(RawReader(native, seekable=True), buffer)

    def open_input_sized(self, buffer: int = READ_BUFFER) -> tuple[IO[bytes], int]:
        """`open_input` and the file's size, from the one lookup that opening an object makes anyway."""
        if self.protocol is None:
            fh = open(self.path, "rb")
            return fh, os.fstat(fh.fileno()).st_size
        native = self._call("open", self.fs.open_input_file, self._fs_path())
        return io.BufferedReader(RawReader(native, seekable=True), buffer), native.size()

    def open_native(self) -> pa.NativeFile:
        """A pyarrow random-access file (for Parquet and Arrow readers); a local one is memory-mapped."""
        if self.protocol is None:
            return pa.memory_map(self.path)
        return self._call("open", self.fs.open_input_file, self._fs_path())

    def read_bytes(self, max_bytes: int | None = None) -> bytes:
        """The whole file; with `max_bytes`, at most that many bytes plus one (the caller refuses more)."""
        if self.protocol is None:
            with open(self.path, "rb") as fh:
                return fh.read() if max_bytes is None else fh.read(max_bytes + 1)
        with self._call("open", self.fs.open_input_file, self._fs_path()) as native:
            size = native.size()
            want = size if max_bytes is None else min(size, max_bytes + 1)
            return self._call("read", native.read, want)  # one ranged request for the whole object

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    # --- listing ----------------------------------------------------------------------------------------------------
    def files(self) -> list[Entry]:
        """Every file below this folder (any depth), sorted by path; links are not followed locally."""
        if self.protocol is None:
            found = []
            for dirpath, dirnames, filenames in os.walk(self.path, followlinks=False):
                dirnames.sort()
                for f in filenames:
                    full = os.path.join(dirpath, f)
                    try:
                        st = os.stat(full)
                        size, mtime = st.st_size, st.st_mtime_ns
                    except OSError:
                        size, mtime = 0, None
                    found.append(Entry(Location(None, full), Path(os.path.relpath(full, self.path)).as_posix(),
                                       size, mtime))
            return sorted(found, key=_path_order)
        selector = pafs.FileSelector(self._fs_path(), recursive=True, allow_not_found=True)
        infos = self._call("list", self.fs.get_file_info, selector)
        base = self._fs_path().rstrip("/") + "/"
        found = []
        for info in infos:
            if info.type != pafs.FileType.File:
                continue
            relative = info.path[len(base):] if info.path.startswith(base) else info.path.rsplit("/", 1)[-1]
            found.append(Entry(self / relative, relative, int(info.size), info.mtime_ns))
        return sorted(found, key=_path_order)

    def iterdir(self) -> Iterator[Location]:
        """The direct children of this folder (files and folders), sorted by name."""
        if self.protocol is None:
            for name in sorted(os.listdir(self.path)):
                yield self / name
            return
        selector = pafs.FileSelector(self._fs_path(), recursive=False, allow_not_found=True)
        for info in sorted(self._call("list", self.fs.get_file_info, selector), key=lambda i: i.path):
            yield self / info.path.rstrip("/").rsplit("/", 1)[-1]

    # --- writing ----------------------------------------------------------------------------------------------------
    def mkdir(self, parents: bool = True, exist_ok: bool = True) -> None:
        """Create the folder (and its parents) locally; object stores have no folders to create."""
        if self.protocol is None:
            os.makedirs(self.path, exist_ok=True)

    def write_bytes(self, data: bytes | memoryview, durable: bool = True) -> None:
        """Write the whole file: locally under a temporary name then renamed, remotely as one upload.

        An upload either completes, and the object appears whole, or leaves no object: a
        killed writer leaves nothing under the name.
        """
        if self.protocol is None:
            from thresher.metrics.files import write_atomic

            write_atomic(self.path, lambda tmp: tmp.write_bytes(data), durable=durable)
            return

        def upload() -> None:
            # compression=None: pyarrow would otherwise gzip a `.gz` name a second time
            with self.fs.open_output_stream(self._fs_path(), compression=None) as out:
                out.write(data)

        self._call("write", upload)

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def unlink(self, missing_ok: bool = True) -> None:
        if self.protocol is None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                if not missing_ok:
                    raise
            return
        try:
            self.fs.delete_file(self._fs_path())
        except FileNotFoundError:
            if not missing_ok:
                raise storage_error(self.uri, "delete", FileNotFoundError()) from None
        except OSError as exc:
            raise storage_error(self.uri, "delete", exc) from None

    def remove_tree(self) -> None:
        """Delete this folder and everything below it (nothing happens when it is not there)."""
        if self.protocol is None:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        if not self.is_dir():
            return
        self._call("delete", lambda: self.fs.delete_dir_contents(self._fs_path(), missing_dir_ok=True))
        try:
            self.fs.delete_dir(self._fs_path())
        except OSError:  # a prefix is gone once its objects are; some stores have no folder object to delete
            pass


def _restore(protocol: str | None, path: str, options: dict[str, Any]) -> Location:
    return Location(protocol, path, options)
