"""`thresher fit | predict | plan | frontier`: utility laws from pilot runs to a curation plan.

Observation tables, fit files, pools, plans, frontiers and plots may be local paths or URIs:
they are read and written here through `thresher.pipeline.storage` (`embedding_files`,
`planning_files`), and the maths rooms get bytes, tables or a file object and give bytes back.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

from thresher.jobs.cli import UsageError
from thresher.jobs.common import positive_int, print_outputs, say
from thresher.jobs.job_spec import suffixed_number

FIT_EXAMPLES = """examples:
  thresher fit runs.csv --law overfit --out fit.json \\
      --columns params=params,seen=tokens,unique=unique_tokens,value=val_loss
  thresher fit runs.csv --columns datablations-final --law muennighoff --out fit.json \\
      --fix E=1.869 --fix A=520.8 --fix B=1487.7 --fix alpha=0.3527 --where in_paper_fit_subset=1
  thresher fit pilots.parquet --law goyal --unit samples --bootstrap 200 --out fit.json \\
      --columns run=run,pool=pool,seen=samples,unique=pool_size,value=error

--columns maps KEY=COLUMN (keys: run, pool, seen, unique, params, value, final, seed; for
mixtures weight.POOL and unique.POOL) or names a preset: datablations-final, datablations-curves.
Laws: goyal (per-pool utility and half-life), muennighoff (data-constrained), overfit (ours:
data-constrained plus a price for memorising repeated data; loss can rise with epochs).
"""

PREDICT_EXAMPLES = """examples:
  thresher predict --fit fit.json runs.csv --out predictions.csv
  thresher predict --fit fit.json heldout.parquet --columns datablations-curves --out pred.parquet

Writes the input rows plus a `predicted` column (and predicted_low/predicted_high when the fit
has bootstrap draws).
"""

PLAN_EXAMPLES = """examples:
  thresher plan --fit fit.json --pools pools.json --budget 640M --out plan.json --plot plan.png
  thresher plan --fit fit.json --pools pools.json --budget 1.2e11 --params 1.1e9 --max-epochs 16 --out plan.json

pools.json: {"unit": "tokens", "pools": [{"name": "top10", "unique": 1.2e9, "documents": 950000}, ...]}
Pool names must match the pools of the fit. The budget is samples or tokens seen (K, M, B, T
suffixes allowed); laws with a model-size term need --params (compute = 6 x params x budget).
"""

FRONTIER_EXAMPLES = """examples:
  thresher frontier --fit fit.json --pools pools.json --budgets 32M,64M,128M,640M --out frontier.json --plot frontier.png
"""

def parse_amount(text: str, what: str = "budget") -> float:
    """'640M', '1.2e11', '2.5B' -> float."""
    value = suffixed_number(text)
    if value is None:
        raise UsageError(f"{what} {text!r} is not a number (examples: 640M, 1.2e11, 2.5B)")
    if not value > 0:
        raise UsageError(f"{what} must be positive, got {text!r}")
    return value


def _pairs(items: list[str] | None, flag: str, numeric: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} {item!r} must look like NAME=VALUE")
        value = value.strip()
        if numeric:
            try:
                out[key.strip()] = float(value)
            except ValueError:
                raise UsageError(f"{flag} {item!r}: {value!r} is not a number") from None
        else:
            low = value.lower()
            out[key.strip()] = low == "true" if low in ("true", "false") else _number_or_text(value)
    return out


def _number_or_text(value: str) -> Any:
    try:
        return float(value)
    except ValueError:
        return value


def _add_table_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("observation table")
    g.add_argument("--columns", help="column mapping KEY=COLUMN,... or a preset name (see examples)")
    g.add_argument("--pool", help="pool name for a table without pool columns (default: all)")
    g.add_argument("--unit", choices=("tokens", "samples"), default="tokens", help="unit of seen and unique (default tokens)")
    g.add_argument("--where", action="append", metavar="COLUMN=VALUE", help="keep rows where COLUMN equals VALUE (repeatable)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="fit a utility law to pilot runs (observations)",
                       description="Fit a repetition-aware utility law to an observation table (CSV or Parquet) "
                                   "and save it as JSON.",
                       epilog=FIT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("observations", help="CSV or Parquet table of training runs (a path or a URI)")
    p.add_argument("--law", default="overfit", help="law name: goyal, muennighoff, overfit (default overfit)")
    p.add_argument("--out", required=True, help="where to write the fit (JSON): a path or a URI")
    _add_table_options(p)
    g = p.add_argument_group("fitting")
    g.add_argument("--law-option", action="append", metavar="KEY=VALUE",
                   help="law option, e.g. tau_scaling=by_pool_count (goyal) or penalty=power (overfit)")
    g.add_argument("--fix", action="append", metavar="NAME=VALUE", help="hold a parameter at a value (repeatable)")
    g.add_argument("--init", action="append", metavar="NAME=VALUE", help="an extra start value (repeatable)")
    g.add_argument("--grid", choices=("full", "small", "none"), default="full", help="start grid (default full)")
    g.add_argument("--max-starts", type=positive_int, default=64, help="L-BFGS-B starts after screening the grid (default 64)")
    g.add_argument("--two-stage", action="store_true", help="fit base parameters on rows without repetition first")
    g.add_argument("--drop-early", type=float, default=0.0, metavar="FRAC",
                   help="drop checkpoints before FRAC of their run's final seen (default 0)")
    g.add_argument("--bootstrap", type=int, default=0, metavar="N", help="run-resampled refits for intervals (default 0)")
    g.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=run_fit)

    p = sub.add_parser("predict", help="predict values of runs with a saved fit",
                       description="Add a `predicted` column to an observation table using a saved fit.",
                       epilog=PREDICT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("observations", help="CSV or Parquet table of runs (value column optional; a path or a URI)")
    p.add_argument("--fit", required=True, help="fit JSON written by `thresher fit` (a path or a URI)")
    p.add_argument("--out", required=True, help="output table (.csv or .parquet; a path or a URI)")
    p.add_argument("--level", type=float, default=0.9, help="interval level with bootstrap draws (default 0.9)")
    _add_table_options(p)
    p.set_defaults(handler=run_predict)

    p = sub.add_parser("plan", help="best pools, weights and epochs for a budget",
                       description="Choose pool weights and epochs that minimise the fitted law's predicted value "
                                   "for a budget, and write plan.json.",
                       epilog=PLAN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_plan_options(p)
    p.add_argument("--budget", required=True, help="samples or tokens seen, e.g. 640M")
    p.add_argument("--runner-ups", type=int, default=3, help="alternative plans to list (default 3)")
    p.set_defaults(handler=run_plan)

    p = sub.add_parser("frontier", help="best plan for each of several budgets",
                       description="Plan for several budgets and write the frontier (best plan per budget, every "
                                   "nested union's predicted value, and the budgets where the best union flips).",
                       epilog=FRONTIER_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_plan_options(p)
    p.add_argument("--budgets", required=True, help="comma-separated budgets, e.g. 32M,64M,128M,640M")
    p.set_defaults(handler=run_frontier)


def _add_plan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fit", required=True, help="fit JSON written by `thresher fit` (a path or a URI)")
    p.add_argument("--pools", required=True,
                   help="output directory of `thresher pools`, or a pools.json: {\"unit\": ..., \"pools\": "
                        "[{\"name\", \"unique\"}, ...]}")
    p.add_argument("--out", required=True, help="output JSON")
    p.add_argument("--params", help="model parameters (needed by laws with a model-size term)")
    p.add_argument("--max-epochs", type=float, help="cap on any pool's epochs")
    p.add_argument("--level", type=float, default=0.9, help="interval level with bootstrap draws (default 0.9)")
    p.add_argument("--link-fit", action="store_true", help="record the fit's path and hash instead of embedding it")
    p.add_argument("--plot", help="also write a PNG figure here")


def _load_obs(args: argparse.Namespace, require_value: bool = True):
    """The observation table named on the command line (a path or a URI), through the column mapping."""
    where = _pairs(args.where, "--where", numeric=False)
    where = {k: (int(v) if isinstance(v, float) and v.is_integer() else v) for k, v in where.items()}
    return load_run_table(args.observations, args.columns, pool=args.pool, unit=args.unit, where=where,
                          require_value=require_value)


def load_run_table(path: str, columns: Any, *, pool: str | None = None, unit: str = "tokens",
                   where: dict | None = None, require_value: bool = True):
    """Observations from a run table at a path or a URI: read here within its size limit, mapped by `mixtures`."""
    from thresher.jobs.embedding_files import place, read_capped, shown
    from thresher.metrics.errors import InputError
    from thresher.mixtures.observation_files import MAX_BYTES, ObservationError, is_parquet_name, read_table_data
    from thresher.mixtures.observations import observations_from_run_table
    from thresher.pipeline.storage import StorageError

    file = place(path)
    source = shown(file)
    parquet = is_parquet_name(file.name)
    try:
        data = read_capped(file, MAX_BYTES, "observation table")
    except FileNotFoundError:
        raise ObservationError(f"{source}: no such file") from None
    except InputError as exc:  # over the size limit
        raise ObservationError(str(exc)) from None
    except StorageError:
        raise  # the store failed (throttled, unreachable): not a problem of the table
    except OSError as exc:
        raise ObservationError(f"{source}: cannot read as {'Parquet' if parquet else 'CSV'}: {exc}") from exc
    return observations_from_run_table(read_table_data(data, source, parquet), source, columns, pool=pool, unit=unit,
                                       where=where, require_value=require_value)


def _load_fit(path: str):
    """A fit file (a path or a URI), within the fit format's size limit."""
    from thresher.jobs.embedding_files import place, read_capped, shown
    from thresher.mixtures.fitted_law import FORMAT, MISSING, FittedLaw

    where = place(path)
    return FittedLaw.from_bytes(read_capped(where, FORMAT.max_bytes, FORMAT.what, missing=MISSING), shown(where))


def _fit_path(args: argparse.Namespace) -> str | None:
    """What a plan records of its fit with --link-fit: the absolute path, or the URI."""
    from thresher.jobs.embedding_files import place, shown

    if not args.link_fit:
        return None
    where = place(args.fit)
    return str(where.resolve()) if isinstance(where, Path) else shown(where)



def run_fit(args: argparse.Namespace) -> int:
    from thresher.jobs.embedding_files import commit, place
    from thresher.mixtures.fitting import fit

    out_path = place(args.out)
    obs = _load_obs(args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the fit's notes are printed below
        fitted = fit(obs, args.law, law_options=_pairs(args.law_option, "--law-option", numeric=False),
                     fixed=_pairs(args.fix, "--fix"), init=_pairs(args.init, "--init"), grid=args.grid,
                     max_starts=args.max_starts, two_stage=args.two_stage, drop_early_frac=args.drop_early,
                     bootstrap=args.bootstrap, seed=args.seed)
    out = commit(out_path, fitted.to_bytes())
    m = fitted.metrics
    say(args, f"law {fitted.law_name} on {fitted.n_obs} rows ({fitted.n_runs} runs, pools: {', '.join(fitted.pools)}); "
              f"{fitted.n_starts} starts, {fitted.share_at_best:.0%} reached the best; {fitted.seconds:.1f}s")
    say(args, f"in-sample MAPE {m['mape']:.2%}, median APE {m['median_ape']:.2%}, R2 {m['r2']:.3f}")
    for name, value in fitted.params.items():
        ival = ""
        if fitted.bootstrap is not None and name not in fitted.fixed:
            lo, hi = fitted.interval(name)
            ival = f"  [{lo:.6g}, {hi:.6g}]"
        say(args, f"  {name:>12} = {value:.6g}{' (fixed)' if name in fitted.fixed else ''}{ival}")
    for note in fitted.notes:
        say(args, f"note: {note}")
    print_outputs({"fit": out})
    return 0


def run_predict(args: argparse.Namespace) -> int:
    import numpy as np
    import pyarrow as pa

    from thresher.jobs.embedding_files import commit, place
    from thresher.mixtures.observation_files import is_parquet_name, table_bytes

    out_path = place(args.out)
    fitted = _load_fit(args.fit)
    if args.unit != fitted.unit:
        say(args, f"note: the fit's unit is {fitted.unit}, the table's is {args.unit}")
    obs = _load_obs(args, require_value=False)
    pred = fitted.predict(obs)
    table = obs.table.append_column("predicted", pa.array(pred))
    if fitted.bootstrap is not None:
        lo, hi = fitted.predict_interval(obs, args.level)
        table = table.append_column("predicted_low", pa.array(lo)).append_column("predicted_high", pa.array(hi))
    out = commit(out_path, table_bytes(table, is_parquet_name(out_path.name)))
    if not np.isnan(obs.value).all():
        ok = ~np.isnan(obs.value)
        mape = float(np.mean(np.abs(pred[ok] - obs.value[ok]) / obs.value[ok]))
        say(args, f"{len(obs)} rows; MAPE against the value column {mape:.2%}")
    print_outputs({"predictions": out})
    return 0


def _pools_and_params(args: argparse.Namespace):
    from thresher.jobs.planning_files import load_pools

    pools, unit = load_pools(args.pools)
    params = parse_amount(args.params, "--params") if args.params else None
    return pools, unit, params


def _plan_outputs(args: argparse.Namespace) -> tuple[str, str | None]:
    """--out and --plot of plan and frontier: local paths or URIs."""
    return args.out, args.plot


def _plot_to(draw, target: str):
    """Draw a figure to a local path, or to memory and then up to a URI (the plotting room takes no URIs)."""
    import io

    from thresher.jobs.embedding_files import commit, place

    where = place(target)
    if isinstance(where, Path):
        return draw(where)
    buf = io.BytesIO()
    draw(buf)
    return commit(where, buf.getvalue())


def run_plan(args: argparse.Namespace) -> int:
    from thresher.jobs.planning_files import save_plan
    from thresher.mixtures.planning import plan

    out_path, plot_path = _plan_outputs(args)
    fitted = _load_fit(args.fit)
    pools, unit, params = _pools_and_params(args)
    budget = parse_amount(args.budget)
    p = plan(fitted, pools, budget, params=params, max_epochs=args.max_epochs, unit=unit, level=args.level,
             n_runner_ups=args.runner_ups, fit_path=_fit_path(args))
    out = save_plan(p, out_path)
    ival = f" [{p.interval[0]:.4g}, {p.interval[1]:.4g}]" if p.interval else ""
    say(args, f"budget {budget:.4g} {unit}: predicted {p.predicted:.4g}{ival} ({p.label}, {p.candidates} candidates)")
    for row in p.pool_rows():
        say(args, f"  {row['name']:>16}  weight {row['weight']:.3f}  epochs {row['epochs']:.2f}  "
                  f"unique used {row['unique_used']:.4g} of {row['unique']:.4g}")
    for r in p.runner_ups:
        mix = ", ".join(f"{x['name']} {x['weight']:.2f}" for x in r["pools"])
        say(args, f"  runner-up {r['predicted']:.4g}: {mix} ({r['label']})")
    outputs: dict[str, Path] = {"plan": out}
    if args.plot:
        from thresher.mixtures.plots import plot_plan

        outputs["plot"] = _plot_to(lambda where: plot_plan(p, where), plot_path)
    print_outputs(outputs)
    return 0


def run_frontier(args: argparse.Namespace) -> int:
    from thresher.jobs.planning_files import save_frontier
    from thresher.mixtures.planning import frontier

    out_path, plot_path = _plan_outputs(args)
    fitted = _load_fit(args.fit)
    pools, unit, params = _pools_and_params(args)
    budgets = [parse_amount(b) for b in args.budgets.split(",") if b.strip()]
    if not budgets:
        raise UsageError("--budgets lists no budget")
    fr = frontier(fitted, pools, budgets, params=params, max_epochs=args.max_epochs, level=args.level,
                  fit_path=_fit_path(args))
    for p in fr.plans:
        p.unit = unit
    out = save_frontier(fr, out_path)
    for b, p in zip(fr.budgets, fr.plans):
        mix = ", ".join(f"{r['name']} {r['weight']:.2f}x{r['epochs']:.1f}ep" for r in p.pool_rows())
        say(args, f"  {b:>12.4g}  predicted {p.predicted:.4g}  {mix}")
    for flip in fr.flips():
        say(args, f"best union flips at {flip['budget']:.4g}: {flip['from']} -> {flip['to']}")
    outputs: dict[str, Path] = {"frontier": out}
    if args.plot:
        from thresher.mixtures.plots import plot_frontier

        outputs["plot"] = _plot_to(lambda where: plot_frontier(fr, where), plot_path)
    print_outputs(outputs)
    return 0
