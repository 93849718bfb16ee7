"""The Stage contract: what a map step over document batches declares and does.

A stage never filters. It receives a `pyarrow.Table` batch holding at least the
columns it `needs` and returns a table with exactly the columns it `adds`, one row
per input row, in the same order. The executor appends those columns and carries
them to the sidecar, so re-thresholding never needs re-scoring.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping

import pyarrow as pa
from thresher.metrics.errors import JobFailed


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
    `resources` and override `setup()` (run once per worker, e.g. to load a model;
    a stage with setup runs in a Ray actor pool, one without as stateless tasks).
    """

    name: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ("text",)
    adds: ClassVar[Mapping[str, pa.DataType]] = {}
    resources: ClassVar[Resources] = Resources()

    def setup(self) -> None:
        """Load heavy state once per worker; the default has none."""

    @property
    def has_setup(self) -> bool:
        return type(self).setup is not Stage.setup

    def __call__(self, batch: pa.Table) -> pa.Table:
        raise NotImplementedError

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
