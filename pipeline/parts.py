"""A part, the unit of work, and the error for input that cannot be cut into parts.

This is a leaf: the shard finder (`shards`) makes parts and the reader (`reader`)
reads them, so both import it and neither imports the other's home for it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from thresher.metrics.errors import InputError


class ShardError(InputError):
    """An input that cannot be read as shards: names the path and what to do."""


@dataclass(frozen=True)
class Part:
    """One unit of work: rows [start, stop) of a shard (stop None = to the end)."""

    shard_id: str
    path: str
    fmt: str
    index: int = 0
    count: int = 1
    start: int = 0
    stop: int | None = None
    byte_start: int | None = None
    byte_stop: int | None = None
    batch_start: int | None = None
    batch_stop: int | None = None

    @property
    def key(self) -> str:
        """File-name-safe, stable name for this part's outputs."""
        return f"{self.shard_id}.part-{self.index:05d}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Part:
        return cls(**json.loads(text))
