"""The Stage contract: what a map step over document batches declares and does.

A stage never filters. It receives a `pyarrow.Table` batch holding at least the
columns it `needs` and returns a table with exactly the columns it `adds`, one row
per input row, in the same order. The executor appends those columns and carries
them to the sidecar, so re-thresholding never needs re-scoring.

Everything the executor relies on is declared here, and nowhere else:
`params()` (what decides the output, part of the job's fingerprint, so a rerun with
another model or threshold is refused instead of mixing results), `reason_column`,
`setup()`/`teardown()` around a worker's use of the stage, and `stats()`, whose
counters go into each part's marker and add up in stats.json.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from thresher.metrics.errors import JobFailed

# Keys of a part marker's per-stage entry that the executor fills in; `stats()` must not use them.
MARKER_KEYS = ("rows_in", "rows_out", "seconds")


@dataclass(frozen=True)
class Resources:
    """What one worker running the stage reserves on the cluster."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_mb: int | None = None

    def __post_init__(self) -> None:
        if self.cpus < 0 or self.gpus < 0:
            raise ValueError(f"resources must be non-negative, got cpus={self.cpus} gpus={self.gpus}")
        if self.memory_mb is not None and self.memory_mb <= 0:
            raise ValueError(f"memory_mb must be positive, got {self.memory_mb}")

    def ray_args(self) -> dict:
        args: dict = {"num_cpus": self.cpus}
        if self.gpus:
            args["num_gpus"] = self.gpus
        if self.memory_mb:
            args["memory"] = self.memory_mb * 1024 * 1024
        return args


class StageContractError(JobFailed, RuntimeError):
    """A stage returned something other than what it declared."""


class Stage:
    """Base class of every map stage (scorers, embedders, signature makers).

    Subclasses set `name`, `needs`, `adds` (column name -> Arrow type) and may set
    `resources` and `reason_column`, and override `params()`, `setup()` (run once per
    worker before the first batch, e.g. to load a model; a stage with setup runs in a
    Ray actor pool under the `data` engine), `teardown()` and `stats()`.
    """

    name: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ("text",)
    adds: ClassVar[Mapping[str, pa.DataType]] = {}
    resources: ClassVar[Resources] = Resources()
    reason_column: ClassVar[str | None] = None
    """A string column of `adds` naming why a row would fail (null when it passes); `stats()` counts it."""

    @classmethod
    def option_names(cls) -> list[str] | None:
        """The keyword options the stage takes (None: any); `make_scorer` refuses others by name."""
        from thresher.pipeline.stage_options import signature_options

        return signature_options(cls)

    def params(self) -> dict[str, Any]:
        """What, besides the code and the columns, decides this stage's output: options, thresholds, and the
        SHA-256 of any model file. JSON-able; recorded in job.json, and a rerun whose params differ is refused."""
        return {}

    def setup(self) -> None:
        """Load heavy state once per worker; the default has none."""

    def teardown(self) -> None:
        """Release what `setup()` loaded; called when a worker is done with the stage."""

    @property
    def has_setup(self) -> bool:
        """Whether the stage keeps per-worker state (overrides `setup` or `teardown`)."""
        return type(self).setup is not Stage.setup or type(self).teardown is not Stage.teardown

    def __call__(self, batch: pa.Table) -> pa.Table:
        raise NotImplementedError

    def stats(self, added: pa.Table) -> dict[str, Any]:
        """Counters over one part's readable rows (`added`: this stage's columns) for the part's marker.

        Values are numbers or {key: number} maps, added up over parts in stats.json.
        The default counts the rows per `reason_column` value as `fail_reasons`.
        """
        col = self.reason_column
        if col is None or col not in added.column_names:
            return {"fail_reasons": {}}
        counts = pc.value_counts(added[col].drop_null()).to_pylist() if added.num_rows else []
        return {"fail_reasons": {r["values"]: r["counts"] for r in sorted(counts, key=lambda r: r["values"])}}

    def output_schema(self) -> pa.Schema:
        return pa.schema([pa.field(k, v) for k, v in self.adds.items()])

    def run_checked(self, batch: pa.Table) -> pa.Table:
        """Call the stage and enforce its declared contract."""
        missing = [c for c in self.needs if c not in batch.column_names]
        if missing:
            raise StageContractError(f"stage {self.name!r} needs columns {missing}, batch has {batch.column_names}")
        out = self(batch)
        if out.num_rows != batch.num_rows:
            raise StageContractError(
                f"stage {self.name!r} returned {out.num_rows} rows for a batch of {batch.num_rows}; stages must not filter"
            )
        if list(out.column_names) != list(self.adds):
            raise StageContractError(f"stage {self.name!r} declared columns {list(self.adds)} but returned {out.column_names}")
        return out.cast(self.output_schema()) if out.schema != self.output_schema() else out

    def checked_stats(self, added: pa.Table) -> dict[str, Any]:
        """`stats()`, refused when it would overwrite what the executor records for the stage."""
        stats = self.stats(added)
        clash = sorted(set(stats) & set(MARKER_KEYS))
        if clash:
            raise StageContractError(f"stage {self.name!r}: stats() returned {clash}, which the executor records itself")
        return stats
