"""The rows of a vendor spec's data files: owned pools, the target and each vendor's revealed sample.

These files are untrusted. JSON lines are parsed line by line, and a malformed line is set
aside (`quarantined`, with its line number and reason) instead of stopping the job; numpy
files go through the one embedding reader (`embedding_files`), where a row with a
non-finite value is set aside the same way. A file over its size or row cap is refused.
A file may be a local path or a remote `Location` (a URI in the spec); a remote one is
streamed through `thresher.pipeline.storage`, never copied.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thresher.jobs.embedding_files import DataFileError, FileLimits, Where, check_size, read_embeddings

MAX_LINE_BYTES = 1_000_000
BYTES_HINT = "raise limits.max_file_mb if you trust this file"
ROWS_HINT = "raise limits.max_rows if you trust this file"


@dataclass
class Rows:
    """Rows read from one file: embeddings or texts, optional labels, and the quarantined rows."""

    source: Where
    x: np.ndarray | None
    texts: list[str] | None
    labels: np.ndarray | None
    quarantined: list[dict[str, Any]]
    rows_read: int

    def __len__(self) -> int:
        return len(self.texts) if self.texts is not None else (0 if self.x is None else self.x.shape[0])

    @property
    def kind(self) -> str:
        return "text" if self.texts is not None and self.x is None else "embedding"


@dataclass(frozen=True)
class RowFields:
    """The JSON fields that hold a row's text, label and embedding."""

    text: str = "text"
    label: str = "label"
    embedding: str = "embedding"


def read_rows(path: Where, *, max_bytes: int, max_rows: int, text_field: str = "text", label_field: str = "label",
              embedding_field: str = "embedding") -> Rows:
    """Read a data file without executing anything in it; bad rows go to `quarantined`."""
    limits = FileLimits(max_bytes=max_bytes, max_rows=max_rows, bytes_hint=BYTES_HINT, rows_hint=ROWS_HINT)
    check_size(path, limits)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path, limits, RowFields(text_field, label_field, embedding_field))
    if suffix in (".npz", ".npy"):
        return _read_numpy(path, limits)
    raise DataFileError(f"{path}: unsupported file type {suffix!r}; use one of .jsonl, .npz, .npy")


@dataclass
class _JsonlRows:
    """The rows of one JSON-lines file as they are read; every line either adds a row or a quarantine entry."""

    fields: RowFields
    texts: list[str] = field(default_factory=list)
    embs: list[list[float]] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    bad: list[dict[str, Any]] = field(default_factory=list)
    kind: str | None = None
    dim: int | None = None

    def add(self, lineno: int, raw: bytes) -> None:
        reason = self._add(raw)
        if reason is not None:
            self.bad.append({"line": lineno, "reason": reason})
        else:
            self.lines.append(lineno)

    def _add(self, raw: bytes) -> str | None:
        """Add the line's row; or, for a malformed line, return why it was set aside."""
        if len(raw) > MAX_LINE_BYTES:
            return f"line longer than {MAX_LINE_BYTES} bytes"
        try:
            row = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return "not UTF-8"
        except (json.JSONDecodeError, RecursionError):
            return "not valid JSON"
        if not isinstance(row, dict):
            return f"expected a JSON object, got {type(row).__name__}"
        f = self.fields
        label = None
        if f.label in row:
            label = _clean_label(row[f.label])
            if label is None:
                return f"'{f.label}' must be a string or an integer"
        if f.embedding in row:
            reason = self._embedding(row[f.embedding])
        elif f.text in row:
            reason = self._text(row[f.text])
        else:
            reason = f"no '{f.text}' or '{f.embedding}' field"
        if reason is None:
            self.labels.append(label)
        return reason

    def _embedding(self, e: Any) -> str | None:
        name = self.fields.embedding
        if not isinstance(e, list) or not e or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in e):
            return f"'{name}' must be a non-empty list of numbers"
        if not all(math.isfinite(v) for v in e):
            return f"'{name}' has a non-finite value"
        if self.dim is None:
            self.dim = len(e)
        elif len(e) != self.dim:
            return f"'{name}' has {len(e)} values, earlier rows have {self.dim}"
        if self.kind == "text":
            return "mixes embedding rows into a text file"
        self.kind = "embedding"
        self.embs.append([float(v) for v in e])
        return None

    def _text(self, t: Any) -> str | None:
        if not isinstance(t, str) or not t.strip():
            return f"'{self.fields.text}' must be a non-empty string"
        if self.kind == "embedding":
            return "mixes text rows into an embedding file"
        self.kind = "text"
        self.texts.append(t)
        return None

    def finish(self, path: Where, read: int) -> Rows:
        """The rows; when some rows have a label, the unlabelled ones are set aside (a classifier needs all)."""
        have = [lab is not None for lab in self.labels]
        lab_arr = None
        if any(have):
            if not all(have):
                self._drop_unlabelled(have)
            kinds = {type(lab) for lab in self.labels}
            lab_arr = np.array([str(lab) for lab in self.labels]) if len(kinds) > 1 else np.array(self.labels)
        if self.kind == "embedding":
            return Rows(path, np.asarray(self.embs, dtype=np.float64), None, lab_arr, self.bad, read)
        return Rows(path, None, self.texts if self.kind == "text" else [], lab_arr, self.bad, read)

    def _drop_unlabelled(self, have: list[bool]) -> None:
        self.bad.extend({"line": ln, "reason": f"no '{self.fields.label}' (other rows have one)"}
                        for ln, k in zip(self.lines, have) if not k)
        self.bad.sort(key=lambda b: b["line"])
        if self.kind == "text":
            self.texts = [t for t, k in zip(self.texts, have) if k]
        if self.kind == "embedding":
            self.embs = [e for e, k in zip(self.embs, have) if k]
        self.labels = [lab for lab in self.labels if lab is not None]


def _clean_label(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return value


def _read_jsonl(path: Where, limits: FileLimits, fields: RowFields) -> Rows:
    rows = _JsonlRows(fields)
    read = 0
    with path.open("rb") if isinstance(path, Path) else path.open_input() as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            read += 1
            if read > limits.max_rows:
                raise DataFileError(f"{path}: more than {limits.max_rows} rows ({limits.rows_hint})")
            rows.add(lineno, raw)
    return rows.finish(path, read)


def _read_numpy(path: Where, limits: FileLimits) -> Rows:
    """Embeddings and labels (weights are not used here); rows with a non-finite value are set aside."""
    arrays = read_embeddings(path, limits)
    x, labels = arrays.x, arrays.labels
    if labels is not None and not (np.issubdtype(labels.dtype, np.integer) or labels.dtype.kind == "U"):
        raise DataFileError(f"{path}: labels must be integers or strings, got {labels.dtype}")
    finite = np.isfinite(x).all(axis=1)
    bad = [{"line": int(i), "reason": "non-finite embedding value (row index)"} for i in np.flatnonzero(~finite)]
    return Rows(path, x[finite], None, None if labels is None else labels[finite], bad, int(x.shape[0]))
