"""The `tasks` engine: one Ray task per part does everything for it.

Read the part, run every stage batch by batch, write the outputs and the marker.
A task per part costs little besides the work itself, which suits light stages
(heuristics, signatures) whose work per part is well under a second. A stage
with setup is set up at the start of each part and torn down at its end.
"""
from __future__ import annotations

from collections import defaultdict

import pyarrow as pa
import pyarrow.compute as pc

from thresher.pipeline.engines.steps import MapWork, apply_stage, secs_column, stages_set_up, write_part_outputs
from thresher.pipeline.parts import Part
from thresher.pipeline.reader import ReadOptions, read_part
from thresher.pipeline.stage import Resources, Stage
from thresher.pipeline.storage import place
from thresher.pipeline.tasks import progress, run_remote


def process_part(out_dir: str, part_json: str, stages: list[Stage], read: ReadOptions, batch_rows: int) -> dict:
    """A whole part in one task: read, every stage batch by batch, outputs and marker."""
    part = Part.from_json(part_json)
    pieces: list[pa.Table] = []
    secs: dict[str, float] = defaultdict(float)
    with stages_set_up(stages):
        table = read_part(part, read)
        for start in range(0, table.num_rows, batch_rows):
            batch = table.slice(start, batch_rows)
            for stage in stages:
                batch = apply_stage(stage, batch)
                col = secs_column(stage.name)
                secs[stage.name] += float(pc.sum(batch[col]).as_py() or 0.0)
                batch = batch.drop_columns([col])
            pieces.append(batch.drop_columns(["text"]))
    whole = pa.concat_tables(pieces).combine_chunks() if pieces else None
    return write_part_outputs(place(out_dir), part, whole, stages, read.carry, dict(secs))


def task_resources(stages: list[Stage]) -> dict:
    """One task runs every stage in turn, so it reserves the most any of them declares."""
    return Resources(cpus=max((s.resources.cpus for s in stages), default=1.0),
                     gpus=max((s.resources.gpus for s in stages), default=0.0),
                     memory_mb=max((s.resources.memory_mb or 0 for s in stages), default=0) or None).ray_args()


def run(work: MapWork, pending: list[Part]) -> None:
    import ray

    stages = ray.put(work.stages)
    calls = [(work.out_dir, p.to_json(), stages, work.read, work.batch_rows) for p in pending]
    run_remote(process_part, calls, work.workers, task_resources(work.stages), bar=progress(len(pending), 0, work.quiet),
               max_retries=3)
