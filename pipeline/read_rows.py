"""What every reader of a part shares: the read options, the strict-mode error and the row builders.

A reader appends each row it meets to `Rows`, good (`good`) or bad (`bad`, with its
reason and the first bytes of the raw line), and calls `fail` first for a bad one, so
strict mode stops at that row naming file and line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from thresher.metrics.errors import EXIT_FAILED
from thresher.pipeline.parts import Part, ShardError
from thresher.pipeline.safety import MAX_COMPRESSION_RATIO, MAX_DECOMPRESSED_BYTES

RAW_KEEP_BYTES = 4096
MISSING_TEXT = "missing text"
"""How every reader's reason for a row without the text field begins ("... field 'x'", "... column 'x' (columns: ...)")."""


@dataclass(frozen=True)
class ReadOptions:
    text_field: str = "text"
    id_field: str | None = None
    carry: tuple[str, ...] = ()  # extra input fields kept as columns (e.g. "source")
    keep_fields: bool = False  # keep every input field (select, materialize)
    max_doc_bytes: int = 16 * 1024 * 1024
    max_decompressed_bytes: int = MAX_DECOMPRESSED_BYTES  # per compressed shard: a limit against decompression bombs
    max_compression_ratio: float = MAX_COMPRESSION_RATIO  # ... and at most this many times its size on disk
    strict: bool = False


class MalformedInput(ShardError):
    """Raised in strict mode at the first bad row, naming file and line."""

    exit_code = EXIT_FAILED  # the job ran and stopped on bad input, as --strict asked


@dataclass
class Rows:
    """Column builders for one part."""

    ids: list[str | None] = field(default_factory=list)
    texts: list[str | None] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)
    raws: list[str | None] = field(default_factory=list)
    extra: list[dict[str, Any] | None] = field(default_factory=list)
    only: frozenset[int] | None = None  # row numbers to parse; None for all

    def skip(self, row: int) -> bool:
        return self.only is not None and row not in self.only

    def good(self, row: int, doc_id: str, text: str, extra: dict[str, Any] | None) -> None:
        self.ids.append(doc_id)
        self.texts.append(text)
        self.rows.append(row)
        self.reasons.append(None)
        self.raws.append(None)
        self.extra.append(extra)

    def bad(self, row: int, doc_id: str, reason: str, raw: bytes | str | None) -> None:
        if isinstance(raw, bytes):
            raw = raw[:RAW_KEEP_BYTES].decode("utf-8", errors="replace")
        elif isinstance(raw, str):
            raw = raw[:RAW_KEEP_BYTES]
        self.ids.append(doc_id)
        self.texts.append(None)
        self.rows.append(row)
        self.reasons.append(reason)
        self.raws.append(raw)
        self.extra.append(None)


def fail(opts: ReadOptions, part: Part, row: int, reason: str) -> None:
    if opts.strict:
        raise MalformedInput(f"{part.path}: line {row + 1}: {reason} (run without --strict to quarantine bad rows)")


