"""The one Ray helper: plain tasks with a bounded number in flight, and our errors out of Ray's wrappers.

Map jobs (a task per part, and the finalize tasks of the Ray Data engine), the
dedupe phases, select, materialize and the pilot runs all submit their tasks
here. Each task writes its own outputs (and marker) and hands back a small
result; the driver never sees payloads. A task that raises one of our errors
(`ThresherError`: strict-mode input, a full disk, an unsafe name) reaches the
caller as that error, not as Ray's wrapper around it.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from thresher.metrics.errors import ThresherError
from thresher.pipeline.manifest import complete_parts
from thresher.pipeline.outputs import read_markers
from thresher.pipeline.parts import Part
from thresher.pipeline.storage import place

PartFn = Callable[..., dict]


def _with_storage(fn: Callable[..., Any], options: dict[str, Any], *args: Any) -> Any:
    """Run `fn(*args)` with the driver's storage options as this worker's (every path a task resolves uses them)."""
    from thresher.pipeline import storage

    storage.configure(options)
    return fn(*args)


def progress(total: int, done: int, quiet: bool, *, unit: str = "part", desc: str = "parts"):
    """A progress bar on stderr, or None when quiet."""
    if quiet:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True)


def original_error(exc: BaseException) -> ThresherError | None:
    """The first of our own errors in `exc`'s chain, or None.

    A Ray task error keeps the task's exception as `.cause` (its own class is a
    wrapper that merely subclasses the cause's), and Ray Data chains it with
    `__cause__`/`__context__`; the walk follows all three, nearest first. An error
    marked by `keep_message` gets its arguments back as they were raised.
    """
    from ray.exceptions import RayError

    queue: list[BaseException] = [exc]
    seen: set[int] = set()
    while queue:
        err = queue.pop(0)
        if id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, ThresherError) and not isinstance(err, RayError):
            raised = vars(err).get(_RAISED_ARGS)
            if raised is not None:
                err.args = raised
            return err
        queue.extend(e for e in (getattr(err, "cause", None), err.__cause__, err.__context__)
                     if isinstance(e, BaseException))
    return None


_RAISED_ARGS = "raised_args"


@contextmanager
def keep_message() -> Iterator[None]:
    """Keep the arguments of our own error raised inside, as raised, for `original_error` to restore.

    Ray Data rewrites the message of an exception that a batch function raises
    (it appends advice on retry settings to `args`); our errors already say what
    to do, so the driver reports them as they were raised.
    """
    try:
        yield
    except ThresherError as exc:
        setattr(exc, _RAISED_ARGS, exc.args)
        raise


@contextmanager
def thresher_errors() -> Iterator[None]:
    """Re-raise our own error from inside Ray's wrappers as itself, so the CLI reports it and exits with its code."""
    try:
        yield
    except Exception as exc:
        err = original_error(exc)
        if err is None or err is exc:
            raise
        raise err from exc


class RemoteTasks:
    """Ray tasks of one function: submit argument tuples, collect small results as they finish.

    At most `limit` tasks are in flight (None: no bound), so a long list never floods
    the scheduler; twice the workers keeps every worker busy without waiting for the
    driver. `on_result(index, result)` runs on the driver as each task finishes, in
    finishing order; `finish()` returns all results in submission order, so what a
    caller builds from them does not depend on the number of workers.

    A task that fails stops new submissions; the tasks in flight are waited for, and
    the error of the earliest submitted task that failed is raised. Tasks go in in
    order, so every task before a failed one has been submitted and finishes: the
    error raised is the first in input order, whatever the timing, and no failed
    result is left unread (Ray would print its traceback at exit).
    """

    def __init__(self, fn: Callable[..., Any], workers: int, resources: dict[str, Any] | None = None, *,
                 max_retries: int = 2, bar: Any = None, on_result: Callable[[int, Any], None] | None = None,
                 bounded: bool = True) -> None:
        import ray

        from thresher.pipeline import storage

        self._ray = ray
        self._fn, self._options = fn, storage.current_options()
        self._remote = ray.remote(max_retries=max_retries, **(resources or {"num_cpus": 1}))(_with_storage)
        self._limit = max(1, int(workers)) * 2 if bounded else None
        self._bar, self._on_result = bar, on_result
        self._pending: dict[Any, int] = {}
        self._results: list[Any] = []
        self._errors: dict[int, BaseException] = {}

    def submit(self, *args: Any) -> None:
        """Start `fn(*args)`; first wait for a task to finish while the pool is full. After a failure, raise it."""
        while self._limit is not None and len(self._pending) >= self._limit and not self._errors:
            self.poll(block=True)
        if self._errors:
            self._raise_first()
        self._pending[self._remote.remote(self._fn, self._options, *args)] = len(self._results)
        self._results.append(None)

    def poll(self, block: bool = False) -> int:
        """Collect finished tasks (at least one when `block`); returns how many are still running."""
        if self._pending:
            done, _ = self._ray.wait(list(self._pending), num_returns=1, timeout=None if block else 0)
            for ref in done:
                index = self._pending.pop(ref)
                try:
                    with thresher_errors():
                        result = self._ray.get(ref)
                except Exception as exc:
                    self._errors[index] = exc
                    continue
                self._results[index] = result
                if self._on_result is not None:
                    self._on_result(index, result)
                if self._bar is not None:
                    self._bar.update(1)
        return len(self._pending)

    def _raise_first(self) -> None:
        """Wait for the tasks in flight, then raise the error of the earliest submitted task that failed."""
        while self._pending:
            self.poll(block=True)
        if self._bar is not None:
            self._bar.close()
        raise self._errors[min(self._errors)]

    def finish(self) -> list[Any]:
        """Wait for every task; close the progress bar; results in submission order."""
        while self.poll(block=True):
            pass
        if self._errors:
            self._raise_first()
        if self._bar is not None:
            self._bar.close()
        return self._results


def run_remote(
    fn: Callable[..., Any],
    calls: list[tuple],
    workers: int,
    resources: dict[str, Any] | None = None,
    bar: Any = None,
    max_retries: int = 2,
    on_result: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """`fn(*args)` as a Ray task for every args tuple (see `RemoteTasks`); the results in call order."""
    tasks = RemoteTasks(fn, workers, resources, max_retries=max_retries, bar=bar, on_result=on_result)
    for args in calls:
        tasks.submit(*args)
    return tasks.finish()


def _part_task(fn: PartFn, part_json: str, out_dir: str, kwargs: dict) -> dict:
    return fn(Part.from_json(part_json), place(out_dir), **kwargs)


def run_part_tasks(
    parts: list[Part],
    fn: PartFn,
    out_dir: Path,
    kwargs: dict[str, Any] | None = None,
    workers: int | None = None,
    address: str | None = None,
    quiet: bool = False,
    desc: str = "parts",
) -> list[dict]:
    """Run `fn(part, out_dir, **kwargs)` for every part not complete and intact; return all markers in part order."""
    done = complete_parts(out_dir, [p.key for p in parts])
    pending = [p for p in parts if p.key not in done]
    if pending:
        import ray

        from thresher.pipeline.cluster import cluster_cpus, ensure_ray

        ensure_ray(address, quiet=quiet)
        size = workers or cluster_cpus()
        shared = ray.put(kwargs or {})
        run_remote(_part_task, [(fn, p.to_json(), str(out_dir), shared) for p in pending], size,
                   bar=progress(len(parts), len(parts) - len(pending), quiet, desc=desc))
    markers = read_markers(out_dir, [p.key for p in parts])
    for p, m in zip(parts, markers):
        if m is None:
            raise RuntimeError(f"part {p.key} has no completion marker after the run; rerun to finish it")
    return markers


def summarize_markers(out_dir: Path, markers: list[dict], extra: dict[str, Any] | None = None) -> dict:
    """Add up per-part ledgers, check the invariant and write summary.json."""
    from thresher.pipeline import ledger as ledger_mod
    from thresher.pipeline.outputs import write_json_atomic

    counts = ledger_mod.merge_counts(m["ledger"] for m in markers)
    rows_read = sum(m["rows_read"] for m in markers)
    ledger_mod.check_invariant(counts, rows_read)
    summary = {"parts": len(markers), "rows_read": rows_read, "ledger": counts, **(extra or {})}
    write_json_atomic(summary, place(out_dir) / "summary.json")
    return summary
