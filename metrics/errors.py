"""The one error base every room raises, and the exit status the CLI gives each kind.

It lives in `metrics/` because that is the room every other room may import
(ARCHITECTURE.md): `pipeline/`, `mixtures/` and `jobs/` all raise subclasses of
`ThresherError`, and `thresher` maps `exit_code` to the process's status without
reading any message text. Errors that cross a Ray task boundary keep their class,
so the driver recognises them by type (see `thresher.pipeline.ray_errors`).
"""
from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class ThresherError(Exception):
    """An error Thresher raises on purpose, with a message that says what, where and what to do."""

    exit_code: int = EXIT_FAILED


class InputError(ThresherError, ValueError):
    """Bad user input (arguments, a spec, a file's contents): exit status 2."""

    exit_code = EXIT_USAGE


class JobFailed(ThresherError):
    """The job ran and could not finish (full disk, strict mode met bad input): exit status 1."""

    exit_code = EXIT_FAILED
