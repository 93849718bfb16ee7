"""The `thresher` command line: one subcommand per job kind, each in its own module.

The command modules only parse arguments and call library functions; they import
nothing heavy at module level, so `thresher --help` stays fast, and `--version`
answers before any command module is imported. Every error Thresher raises on
purpose is a `ThresherError`; `main` turns it into one line on stderr and the
exit code the error class carries (0 ok, 1 the job ran and failed, 2 bad input).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from thresher.jobs import __version__
from thresher.metrics.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, InputError, ThresherError

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main"]

# Each module defines `register(subparsers)`.
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

# Plain ValueErrors escaping these rooms are bad input that reached the maths (see `as_thresher_error`).
LIBRARY_ROOMS: tuple[str, ...] = ("thresher.mixtures", "thresher.metrics")


class UsageError(InputError):
    """Bad arguments or input noticed by a command: reported as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thresher",
        description="Data curation and data scaling: score and dedupe shards, value pools, plan and mix.",
        epilog="Run `thresher COMMAND --help` for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=_version_line())
    parser.add_argument("--quiet", action="store_true", help="print only errors and output paths")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    _add_everywhere(parser, "--quiet", action="store_true", help="print only errors and output paths")
    # any path a command takes may be a URI
    _add_everywhere(parser, "--storage-option", action="append", metavar="KEY=VALUE", help=STORAGE_HELP)
    return parser


def _version_line() -> str:
    return f"thresher {__version__}"


def _asks_version(argv: Sequence[str]) -> bool:
    """True when argparse would act on `--version` before anything else: it comes before the command and any -h."""
    for token in argv:
        if token == "--version":
            return True
        if token in ("-h", "--help", "--") or not token.startswith("-"):
            return False
    return False


def _add_everywhere(parser: argparse.ArgumentParser, flag: str, **kwargs: object) -> None:
    """Give every command, at every nesting level, the option `flag` (unless it has one): `thresher score --quiet`
    and `thresher pools --storage-option ...` work as `thresher --quiet score` does."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if flag not in child._option_string_actions:
                    child.add_argument(flag, default=argparse.SUPPRESS, **kwargs)
                _add_everywhere(child, flag, **kwargs)


STORAGE_HELP = ("an option for s3:// / gs:// / other URIs, e.g. endpoint_override=http://127.0.0.1:8333, region=eu-west-1, "
                "anonymous=true (repeatable; credentials come from the environment, never from here)")


def _configure_storage(args: argparse.Namespace) -> None:
    """This command's storage options (a job spec's `storage:` section adds to them, see `cmd_run`)."""
    from thresher.pipeline import storage

    storage.configure(storage.parse_option_items(getattr(args, "storage_option", None)))


def _raised_in(exc: BaseException, rooms: tuple[str, ...]) -> bool:
    """Whether a frame of the exception's traceback runs code of one of `rooms` (module names, not text)."""
    tb = exc.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(rooms):
            return True
        tb = tb.tb_next
    return False


def as_thresher_error(exc: BaseException) -> ThresherError | None:
    """The error to report for `exc`, or None when it is a bug (a traceback is then more useful).

    A ThresherError that crossed a Ray task boundary arrives wrapped, with the original
    as `cause`; the original's message is reported. A plain ValueError raised while the
    maths rooms (mixtures, metrics) ran is bad input that reached them: an input error.
    """
    cause = getattr(exc, "cause", None)
    if isinstance(cause, ThresherError):
        return cause
    if isinstance(exc, ThresherError):
        return exc
    if isinstance(exc, ValueError) and _raised_in(exc, LIBRARY_ROOMS):
        return InputError(str(exc))
    return None


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if _asks_version(argv):
        print(_version_line())
        raise SystemExit(EXIT_OK)  # what argparse's version action does
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        _configure_storage(args)
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:
        error = as_thresher_error(exc)
        if error is None:
            raise
        print(f"thresher {args.command}: error: {_one_line(str(error))}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
