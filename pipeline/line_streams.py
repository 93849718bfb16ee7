"""Byte streams of JSON-lines shards: plain, gzip, bzip2, xz and zstd, read line by line within bounds.

`Lines` never holds more than one capped line in memory, skips runs of empty lines a
buffer at a time and enforces a decompression budget; `open_compressed` gives one
binary file object per codec (zstd through pyarrow, the rest from the standard library).
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from thresher.pipeline.parts import ShardError
from thresher.pipeline.read_rows import RAW_KEEP_BYTES
from thresher.pipeline.storage import Location
from thresher.pipeline.storage.raw import RawReader

_BLANK_PEEK = 1 << 16


class Lines:
    """Lines of a binary stream, never holding more than `cap` bytes of one line in memory.

    Yields (line, bytes consumed, whole, blank lines before it): a line longer than
    `cap` comes back as its first `RAW_KEEP_BYTES` with whole=False, the rest skipped
    in bounded reads. Runs of empty lines (bare newlines) are skipped a buffer at a
    time and only counted, so a stream of nothing but newlines costs what inflating it
    costs, not a Python step per line; at most `span` bytes are skipped that way (a
    byte-ranged part never skips far past its end). With a `budget`, reading more than
    that many bytes in all raises ShardError (gzip bombs).
    """

    def __init__(self, fh: Any, cap: int, budget: int | None = None, span: int | None = None) -> None:
        self.fh, self.cap, self.budget, self.span, self.seen = fh, cap, budget, span, 0

    def _count(self, n: int) -> None:
        self.seen += n
        if self.budget is not None and self.seen > self.budget:
            raise ShardError(f"decompressed size exceeds {self.budget} bytes (a decompression bomb, or raise "
                             f"max_decompressed_bytes / max_compression_ratio)")

    def _skip_newlines(self) -> int:
        """Consume the bare newlines at the stream's position; returns how many."""
        skipped = 0
        while self.span is None or self.seen < self.span:
            head = self.fh.peek(1)
            if not head or head[0] != 10:  # the usual case: no empty line here, and no copy of the buffer
                break
            buf = self.fh.peek(_BLANK_PEEK)[:_BLANK_PEEK]
            n = len(buf) - len(buf.lstrip(b"\n"))
            if self.span is not None:
                n = min(n, self.span - self.seen)
            if n == 0:
                break
            self.fh.read(n)
            self._count(n)
            skipped += n
        return skipped

    def _read(self, size: int) -> bytes:
        chunk = self.fh.readline(size)
        self._count(len(chunk))
        return chunk

    def __iter__(self) -> Iterator[tuple[bytes, int, bool, int]]:
        limit = self.cap + 3  # room for a byte-order mark and the line end
        while True:
            blanks = self._skip_newlines()
            line = self._read(limit)
            if not line:
                return
            if len(line) < limit or line.endswith(b"\n"):
                yield line, len(line), True, blanks
                continue
            head, used = line[:RAW_KEEP_BYTES], len(line)
            while not line.endswith(b"\n"):
                line = self._read(1 << 20)
                if not line:
                    break
                used += len(line)
            yield head, used, False, blanks


def open_compressed(source: Location, fmt: str, raw: Any = None) -> Any:
    """A binary file object that inflates a compressed JSON-lines shard (local or remote) as it is read.

    `raw`: the remote object already opened (`Location.open_input_sized`), saving a second lookup.
    """
    if source.local is not None:
        path = str(source.local)
        if fmt == "jsonl.gz":
            return gzip.open(path, "rb")
        if fmt == "jsonl.bz2":
            return bz2.open(path, "rb")
        if fmt == "jsonl.xz":
            return lzma.open(path, "rb")
        return io.BufferedReader(RawReader(pa.CompressedInputStream(pa.OSFile(path), "zstd")), 1 << 20)
    raw = source.open_input() if raw is None else raw  # reads of 8 MiB: a few ranged requests, not many small ones
    if fmt == "jsonl.zst":
        return io.BufferedReader(RawReader(pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "zstd"), raw),
                                 1 << 20)
    return _OWNING[fmt](raw)


class _ClosesRaw:
    """A decompressor over an object's buffered reader that closes that reader with it (they leave it open)."""

    _raw: Any

    def close(self) -> None:
        try:
            super().close()  # type: ignore[misc]
        finally:
            self._raw.close()


class _GzipOf(_ClosesRaw, gzip.GzipFile):
    def __init__(self, raw: Any) -> None:
        gzip.GzipFile.__init__(self, fileobj=raw, mode="rb")
        self._raw = raw


class _Bz2Of(_ClosesRaw, bz2.BZ2File):
    def __init__(self, raw: Any) -> None:
        bz2.BZ2File.__init__(self, raw, mode="rb")
        self._raw = raw


class _XzOf(_ClosesRaw, lzma.LZMAFile):
    def __init__(self, raw: Any) -> None:
        lzma.LZMAFile.__init__(self, raw, mode="rb")
        self._raw = raw


# the decompressors give the bounded readline() and the peek() that `Lines` needs
_OWNING = {"jsonl.gz": _GzipOf, "jsonl.bz2": _Bz2Of, "jsonl.xz": _XzOf}

CODECS = {"jsonl.gz": "gzip", "jsonl.bz2": "bzip2", "jsonl.xz": "xz", "jsonl.zst": "zstd"}


