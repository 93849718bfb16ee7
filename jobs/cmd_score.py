"""`thresher score`: run scorers over shards on Ray, writing sidecars and a ledger."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from thresher.jobs.cli import UsageError
from thresher.jobs.common import (
    add_ray_options,
    add_read_options,
    check_out_reachable,
    parse_kv,
    prepare_out,
    print_outputs,
    say,
    split_list,
)

EXAMPLES = """examples:
  thresher score shards/ --out scored/
  thresher score 'crawl/*.jsonl.gz' --out scored/ --scorers gopher_quality,c4 --carry source
  thresher score data.parquet --out scored/ --scorer-option gopher_quality.min_doc_words=20
  thresher score shards/ --out scored/ --address ray://head:10001     # on a running cluster

A rerun with the same --out resumes: completed parts are skipped.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score documents; write sidecars keyed by doc id",
                       description="Score every document of INPUT (file, directory or glob of jsonl, jsonl.gz, "
                                   "parquet, or a saved Hugging Face dataset) and write Parquet sidecars.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="file, directory or glob of shards")
    p.add_argument("--out", required=True, help="output directory (sidecars/, ledger/, summary.json)")
    p.add_argument("--scorers", default=None, help="comma-separated scorer names (default: gopher_quality,gopher_repetition,c4)")
    p.add_argument("--scorer-option", action="append", metavar="NAME.KEY=VALUE", help="option for one scorer (repeatable)")
    p.add_argument("--list-scorers", action=_ListScorers, help="list available scorers and exit")
    p.add_argument("--overwrite", action="store_true", help="delete a previous job in --out instead of resuming it")
    add_read_options(p)
    add_ray_options(p)
    p.add_argument("--engine", choices=("auto", "tasks", "data"), default="auto",
                   help="how parts are scheduled: one Ray task per part, or a Ray Data stream with actor pools for "
                        "scorers that load a model (default auto: tasks unless a scorer loads a model); same outputs")
    p.set_defaults(handler=run)


class _ListScorers(argparse.Action):
    """Print the scorer names and exit 0 while parsing, as --help does: INPUT and --out are not needed for it."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.pop("nargs", None)
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        from thresher.pipeline.registry import scorer_names

        print("\n".join(scorer_names()))
        parser.exit(0)


def _shown(value: Any) -> str:
    """An option value as the user typed it (parse_kv turned it into a number, boolean or list)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(_shown(v) for v in value)
    return str(value)


def _scorer_message(name: str, exc: Exception) -> str:
    """A scorer's own error with the scorer named once (most messages already start with it)."""
    text = str(exc)
    for prefix in (f"scorer {name!r}: ", f"{name}: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    else:
        if text.startswith(f"scorer {name!r}"):
            return text
    return f"scorer {name!r}: {text}"


def build_stages(names: list[str], options: dict[str, dict]):
    from thresher.pipeline.registry import make_scorer, scorer_names
    from thresher.pipeline.stage_options import OptionError

    unknown = sorted(set(options) - set(names))
    if unknown:
        raise UsageError(f"--scorer-option given for scorer(s) not selected: {unknown}")
    stages = []
    for name in names:
        if name not in scorer_names():
            raise UsageError(f"unknown scorer {name!r}; available: {', '.join(scorer_names())}")
        try:
            stages.append(make_scorer(name, **options.get(name, {})))
        except OptionError as exc:  # named as the user wrote it, the value as typed
            raise UsageError(f"--scorer-option {name}.{exc.key}: expected {exc.expected}, got {_shown(exc.value)!r}") from None
        except (TypeError, ValueError) as exc:
            raise UsageError(_scorer_message(name, exc)) from None
    return stages


def run(args: argparse.Namespace) -> int:
    from thresher.pipeline.executor import MapJob, run_map_job
    from thresher.pipeline.ledger import format_counts
    from thresher.pipeline.reader import ReadOptions
    from thresher.pipeline.scorers import DEFAULT_SCORERS

    names = split_list(args.scorers) or list(DEFAULT_SCORERS)
    stages = build_stages(names, parse_kv(args.scorer_option, "--scorer-option"))
    out = prepare_out(args.out, args.overwrite, inputs=[args.input])
    out = check_out_reachable(out, args.address, args.shared_out, quiet=getattr(args, "quiet", False))
    read = ReadOptions(text_field=args.text_field, id_field=args.id_field, carry=tuple(split_list(args.carry)),
                       strict=args.strict)
    job = MapJob(input=args.input, out_dir=out, stages=stages, read=read, part_bytes=args.part_mb * 1024 * 1024,
                 workers=args.workers, address=args.address, quiet=args.quiet, engine=args.engine)
    summary = run_map_job(job)
    say(args, format_counts(summary["ledger"]))
    for name, st in summary["stages"].items():
        rate = f"{st['docs_per_second']:.0f} docs/s" if st["docs_per_second"] else "-"
        fails = ", ".join(f"{r}={n}" for r, n in st["fail_reasons"].items()) or "none"
        say(args, f"stage {name}: {st['rows_in']} rows, {rate}; would fail: {fails}")
    say(args, f"{summary['parts']} parts ({summary['parts_skipped_as_complete']} already complete), "
              f"{summary['wall_seconds']:.1f} s")
    print_outputs({"sidecars": out / "sidecars", "summary": out / "summary.json", "stats": out / "stats.json"})
    return 0
