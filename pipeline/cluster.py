"""Attaching to Ray: a local instance by default, an existing cluster with an address."""
from __future__ import annotations

import logging
import os


def ensure_ray(address: str | None = None, num_cpus: int | None = None, quiet: bool = False) -> None:
    """Start or join Ray once per process; an already-initialised Ray is reused as is."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    import ray
    from ray.data import DataContext

    if not ray.is_initialized():
        kwargs: dict = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": not quiet}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, **kwargs)
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ctx = DataContext.get_current()
    # Our own progress bar reports shards and rows; Ray's per-operator bars would interleave with it.
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))
