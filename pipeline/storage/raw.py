"""Python file objects over pyarrow streams and decompressors, for `io.BufferedReader` to batch reads on."""
from __future__ import annotations

import io
from typing import Any


class RawReader(io.RawIOBase):
    """Anything with `read(n)` as a raw Python file, so `io.BufferedReader` can batch its reads and give
    bounded `readline()` and `peek()`; closing it closes `source` and every stream in `also_close` (a
    decompressor's underlying file). `seekable` passes seek and tell through (a random-access object)."""

    def __init__(self, source: Any, *also_close: Any, seekable: bool = False) -> None:
        self.source, self.also_close, self._seekable = source, also_close, seekable

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def seek(self, offset: int, whence: int = 0) -> int:
        if not self._seekable:
            raise io.UnsupportedOperation("seek")
        return self.source.seek(offset, whence)

    def tell(self) -> int:
        return self.source.tell() if self._seekable else super().tell()

    def readinto(self, buffer: Any) -> int:
        data = self.source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        """The rest in one read of the source (for an object: one ranged request, not one per 8 KiB)."""
        return bytes(self.source.read())

    def close(self) -> None:
        if not self.closed:
            for stream in (self.source, *self.also_close):
                stream.close()
        super().close()
