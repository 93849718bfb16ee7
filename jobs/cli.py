"""The `thresher` command line: one subcommand per job kind, each in its own module."""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Sequence

from thresher.jobs import __version__

# Exit codes: 0 ok, 1 the job ran and failed (e.g. --strict found bad input), 2 usage or input error.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# Each module defines `register(subparsers)`; registering lazily keeps `thresher --help` fast.
COMMAND_MODULES: tuple[str, ...] = (
    "thresher.jobs.cmd_score",
    "thresher.jobs.cmd_select",
    "thresher.jobs.cmd_corpus",
    "thresher.jobs.cmd_demo",
    "thresher.jobs.cmd_laws",
    "thresher.jobs.cmd_mix",
    "thresher.jobs.cmd_classifier",
    "thresher.jobs.cmd_dedupe",
    "thresher.jobs.cmd_vendors",
    "thresher.jobs.cmd_run",
    "thresher.jobs.cmd_pools",
    "thresher.jobs.cmd_materialize",
)


class UsageError(Exception):
    """Bad arguments or input: reported as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thresher",
        description="Data curation and data scaling: score and dedupe shards, value pools, plan and mix.",
        epilog="Run `thresher COMMAND --help` for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"thresher {__version__}")
    parser.add_argument("--quiet", action="store_true", help="print only errors and output paths")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    _add_quiet_everywhere(parser)
    return parser


def _add_quiet_everywhere(parser: argparse.ArgumentParser) -> None:
    """Accept --quiet after the command too (`thresher score --quiet …`), at every nesting level."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if "--quiet" not in child._option_string_actions:
                    child.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                                       help="print only errors and output paths")
                _add_quiet_everywhere(child)


def _job_failures() -> tuple[type[BaseException], ...]:
    from thresher.pipeline.outputs import OutputWriteError
    from thresher.pipeline.safety import UnsafePath

    return (OutputWriteError, UnsafePath)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return handler(args)
    except UsageError as exc:
        print(f"thresher {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except _job_failures() as exc:
        # A full disk or an output path that would leave --out: one line, and the job failed.
        print(f"thresher {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
