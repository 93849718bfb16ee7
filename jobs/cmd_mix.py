"""`thresher mix fit | predict | optimize | exponent | ot`: the optimal-transport mixer from pilot runs to mixture weights.

Arguments become calls of `mix_workflow` (the steps) and `mix_inputs` (the files). Every file
argument (tables, embeddings, models, priors, outputs) may be a local path or a URI.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from thresher.jobs.cli import UsageError
from thresher.jobs.common import positive_int, print_outputs, say

MIX_EXAMPLES = """examples:
  thresher mix ot --pools web=web.npz code=code.npz books=books.npz --target val.npz --out ot.json
  thresher mix fit pilots.csv --value-column accuracy --goal max --form linear_ot \\
      --pools web=web.npz code=code.npz books=books.npz --target val.npz --out model.json
  thresher mix predict --model model.json mixtures.csv --size 20000 --out predictions.csv
  thresher mix optimize --model model.json --size 20000 --available web=9000 --prices code=0.02 \\
      --budget 300 --out mix.json
"""

FIT_EXAMPLES = """examples:
  thresher mix fit pilots.csv --value-column accuracy --goal max --form linear_ot \\
      --pools web=web.npz code=code.npz --target val.npz --out model.json
  thresher mix fit pilots.csv --value-column accuracy --goal max --form linear_ot \\
      --pools web=web.npz code=code.npz --target val.npz --label-cost onehot --label-weight auto \\
      --out model.json
  thresher mix fit train_mixture_1m.csv --values train_pile_loss_1m.csv --join index \\
      --weight-prefix train_the_pile_ --value-column metric/the_pile_pile_cc_val_loss \\
      --form mixing_law_log --out model.json

OBS is a wide CSV: one weight column per pool (named PREFIX + pool, default prefix weight_),
an optional `size` column (training size; two sizes give projektor's log-size projection,
three or more a power law), and value columns. Forms: linear_ot, pq_ot (need --pools and
--target), p_linear, p_quadratic, mixing_law, mixing_law_log, gbm. `--label-weight auto` tries
0.25, 1, 4, 16 and 64 and keeps the weight whose OT predicts the pilot metric best
(leave-one-out error of a line in OT within each pilot size). `--size-prior` takes MEAN,SD or
the JSON written by `thresher mix exponent`: a prior on the power law's size exponent from
earlier sweeps that reached larger sizes (see that command).
"""

EXPONENT_EXAMPLES = """examples:
  thresher mix exponent sweep_a.csv sweep_b.csv sweep_c.csv --value-column accuracy --out prior.json
  thresher mix fit pilots.csv --value-column accuracy --goal max --form p_quadratic \
      --size-prior prior.json --out model.json

Each SWEEP is a wide CSV like OBS with three or more sizes, from an earlier study with the same
kind of proxy model that went at least as far as you will project. Per sweep, E + A N^-alpha
(E and A per mixture, alpha shared) is fitted to the means of the mixtures run at every size;
the prior is the mean and SD of those exponents. Three pilot sizes pin the exponent down
poorly, so a prior from sweeps that reached larger sizes steadies far projections.
"""

PREDICT_EXAMPLES = """examples:
  thresher mix predict --model model.json mixtures.csv --out predictions.csv
  thresher mix predict --model model.json mixtures.csv --size 50000 --level 0.8 --out predictions.csv

Writes the input rows plus `predicted`, `predicted_low` and `predicted_high` (bootstrap interval).
"""

OPTIMIZE_EXAMPLES = """examples:
  thresher mix optimize --model model.json --out mix.json
  thresher mix optimize --model model.json --size 20000 --caps web=0.5 --available code=3000 \\
      --prices web=0.001,code=0.02,books=0.01 --budget 250 --out mix.json

--caps limit a pool's weight; --available gives unique samples per pool (cap = available / size);
--prices are per sample and --budget is money for size samples (without --size, prices are per
unit of weight). The output lists the weights, the predicted metric with an interval, and the
binding constraints with shadow prices.
"""

OT_EXAMPLES = """examples:
  thresher mix ot --pools web=web.npz code=code.parquet --target val.npz --out ot.json
  thresher mix ot --pools a.npy b.npy --target t.npy --mixtures mixtures.csv --solver exact --out ot.json
  thresher mix ot --pools a.npz b.npz --target t.npz --weights a=0.3,b=0.7 --out ot.json

Embedding files: .npy holds an (n, d) float array; .npz holds `x` (n, d) and optionally
`labels` (n,) and `weights` (n,); .parquet holds an `embedding` list column and optionally
`label` and `weight` columns. A pool is NAME=PATH or PATH (name = file stem). Any file may be a URI (s3://, gs://, ...).
Solvers: sinkhorn (debiased Sinkhorn divergence, default; exact gradients), exact (network
simplex; up to ~4k points per side), sliced (tens of thousands of points).
"""


# ---- arguments -------------------------------------------------------------------------------
def _pool_spec(item: str) -> tuple[str, str]:
    """(pool name, file) of `NAME=PATH` or `PATH` (the name is the file's stem); PATH may be a URI."""
    from thresher.jobs.embedding_files import place, shown

    name, sep, path = item.partition("=")
    if sep:
        if not name.strip() or not path.strip():
            raise UsageError(f"--pools {item!r} must look like NAME=PATH or PATH")
        return name.strip(), shown(place(path.strip()))
    where = place(item)
    return Path(where.name).stem, shown(where)


def _pool_files(items: list[str] | None) -> dict[str, str] | None:
    return dict(_pool_spec(item) for item in items) if items else None


def _label_weight(text: str) -> float | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number nor 'auto'") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"label weight must be positive, got {text}")
    return value


def _ot_config_from_args(args: argparse.Namespace) -> dict[str, Any] | None:
    if not args.pools and not args.target:
        return None
    if not args.pools or not args.target:
        raise UsageError("give both --pools and --target")
    specs = [_pool_spec(item) for item in args.pools]
    names = [n for n, _ in specs]
    if len(set(names)) != len(names):
        raise UsageError(f"pool names must be unique, got {names}")
    return {
        "pools": dict(specs),
        "target": str(args.target),
        "solver": args.solver,
        "reg": args.reg,
        "label_cost": None if args.label_cost == "none" else args.label_cost,
        "label_weight": args.label_weight,
        "max_per_pool": args.max_per_pool,
        "n_projections": args.projections,
        "embedding_column": args.embedding_column,
    }


def _pairs(text: list[str] | None, flag: str, pools: list[str]) -> dict[str, float] | None:
    if not text:
        return None
    out: dict[str, float] = {}
    for chunk in text:
        for item in chunk.split(","):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            if not sep:
                raise UsageError(f"{flag} {item!r} must look like POOL=NUMBER")
            if key.strip() not in pools:
                raise UsageError(f"{flag}: unknown pool {key.strip()!r}; pools are {pools}")
            try:
                out[key.strip()] = float(value)
            except ValueError:
                raise UsageError(f"{flag} {item!r}: {value!r} is not a number") from None
    return out


def _layout(args: argparse.Namespace):
    from thresher.jobs.mix_inputs import TableLayout

    return TableLayout(weight_prefix=args.weight_prefix, size_column=args.size_column,
                       values_path=getattr(args, "values", None), join=getattr(args, "join", None))


def _model(args: argparse.Namespace):
    from thresher.jobs.embedding_files import place
    from thresher.jobs.mix_inputs import load_model

    return load_model(place(args.model), pools=_pool_files(args.pools), target=args.target)


# ---- handlers --------------------------------------------------------------------------------
def run_fit(args: argparse.Namespace) -> int:
    from thresher.jobs.embedding_files import commit, place
    from thresher.jobs.mix_workflow import fit_model, read_size_prior
    from thresher.mixtures import performance_file

    size_prior = read_size_prior(args.size_prior)
    model = fit_model(args.observations, args.value_column, args.form, _layout(args),
                      ot_config=_ot_config_from_args(args), size_law=args.size_law, size_prior=size_prior,
                      goal=args.goal, alpha=args.alpha, n_boot=args.n_boot, seed=args.seed, log=lambda s: say(args, s))
    print_outputs({"model": commit(place(args.out), performance_file.to_bytes(model))})
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from thresher.jobs.embedding_files import place, shown
    from thresher.jobs.mix_workflow import predict_csv

    model = _model(args)
    out = place(args.out)
    n = predict_csv(model, args.mixtures, out, _layout(args), size=args.size, level=args.level, interval=args.interval)
    say(args, f"predicted {n} mixtures with {model.form}")
    print_outputs({"predictions": shown(out)})
    return 0


def run_exponent(args: argparse.Namespace) -> int:
    from thresher.jobs.embedding_files import place
    from thresher.jobs.mix_workflow import exponent_prior, write_json

    data = exponent_prior(args.sweeps, args.value_column, _layout(args), log=lambda s: say(args, s))
    if args.out:
        print_outputs({"size_prior": write_json(place(args.out), data, indent=1)})
    return 0


def run_optimize(args: argparse.Namespace) -> int:
    from thresher.jobs.embedding_files import place
    from thresher.jobs.mix_workflow import optimize, write_json

    model = _model(args)
    choice, data = optimize(
        model, args.model, size=args.size, caps=_pairs(args.caps, "--caps", model.pools),
        available=_pairs(args.available, "--available", model.pools),
        prices=_pairs(args.prices, "--prices", model.pools), budget=args.budget, starts=args.starts,
        level=args.level, interval=args.interval, seed=args.seed)
    out = write_json(place(args.out), data)
    if not getattr(args, "quiet", False):
        lo, hi = data["interval"]
        interval = f" [{lo:.4g}, {hi:.4g}]" if lo is not None else ""
        print(f"predicted {model.goal} metric {choice.predicted:.4g}{interval} with")
        for name, w in sorted(data["weights"].items(), key=lambda kv: -kv[1]):
            if w > 1e-4:
                print(f"  {name:<24} {w:.4f}")
        for c in choice.active:
            print(f"  binding: {c['constraint']} {c.get('pool', '')}".rstrip())
    print_outputs({"mixture": out})
    return 0


def run_ot(args: argparse.Namespace) -> int:
    import numpy as np

    from thresher.jobs.embedding_files import place
    from thresher.jobs.mix_inputs import TableLayout, align, build_ot, read_table
    from thresher.jobs.mix_workflow import ot_report, write_json

    config = _ot_config_from_args(args)
    model = build_ot(config)
    names = model.pool_names
    mixtures = []
    if args.mixtures:
        obs = read_table(args.mixtures, TableLayout(weight_prefix=args.weight_prefix, size_column=None), [])
        mixtures.extend(align(obs, names, args.mixtures))
    for item in args.weights or []:
        given = _pairs([item], "--weights", names)
        w = np.array([given.get(n, 0.0) for n in names])
        if abs(w.sum() - 1.0) > 1e-6:
            raise UsageError(f"--weights {item!r} sums to {w.sum():.6g}, expected 1")
        mixtures.append(w)
    data = ot_report(model, config, mixtures)
    out = write_json(place(args.out), data)
    if not getattr(args, "quiet", False):
        for n, v in data["pool_ot"].items():
            print(f"  OT({n} alone) = {v:.6g}")
        print(f"{len(data['mixtures'])} mixtures evaluated with {model.solver}")
    print_outputs({"ot": out})
    return 0


# ---- registration ----------------------------------------------------------------------------
def _ot_options(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("optimal transport (OT forms and `mix ot`)")
    g.add_argument("--pools", nargs="+", metavar="NAME=PATH", required=required, help="pool sample embeddings, one file per pool")
    g.add_argument("--target", required=required, help="target (validation) embeddings")
    g.add_argument("--solver", choices=("sinkhorn", "exact", "sliced"), default="sinkhorn", help="OT solver (default sinkhorn)")
    g.add_argument("--reg", type=float, default=0.05, help="entropic regularisation relative to the mean cost (default 0.05)")
    g.add_argument("--label-cost", choices=("gaussian", "onehot", "none"), default="gaussian",
                   help="cost between labels when files carry labels (default gaussian, OTDD-style)")
    g.add_argument("--label-weight", type=_label_weight, default=1.0,
                   help="weight of the label cost (default 1); `auto` (mix fit only) picks it from the pilot runs")
    g.add_argument("--max-per-pool", type=positive_int, default=1000, help="k-means coreset above this many points per pool (default 1000)")
    g.add_argument("--projections", type=positive_int, default=200, help="directions for the sliced solver (default 200)")
    g.add_argument("--embedding-column", default="embedding", help="parquet column holding embeddings (default embedding)")


def _ot_path_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("optimal transport (OT forms only)")
    g.add_argument("--pools", nargs="+", metavar="NAME=PATH", help="pool embedding files (default: those the model was fitted with)")
    g.add_argument("--target", help="target embeddings (default: the file the model was fitted with)")


def _obs_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weight-prefix", default="weight_", help="prefix of weight columns (default weight_)")
    p.add_argument("--size-column", default="size", help="training-size column (default size; absent = one size)")


def _interval_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--level", type=float, default=0.9, help="interval level (default 0.9)")
    p.add_argument("--interval", choices=("mean", "mixture"), default="mean",
                   help="mean: the fitted surface; mixture: also one mixture's own misfit (default mean)")


FMT = argparse.RawDescriptionHelpFormatter


def register(sub: argparse._SubParsersAction) -> None:
    mix = sub.add_parser("mix", help="OT mixer: fit a performance model on pilot mixtures, predict, optimise weights",
                         description="Optimal-transport mixer: predict a metric from mixture weights (and OT to a "
                                     "target), extrapolate in training size, and choose weights under caps and a budget.",
                         epilog=MIX_EXAMPLES, formatter_class=FMT)
    msub = mix.add_subparsers(dest="mix_command", metavar="STEP")
    mix.set_defaults(handler=lambda a: (mix.print_help(), 2)[1])
    for add in (_register_fit, _register_predict, _register_optimize, _register_exponent, _register_ot):
        add(msub)


def _register_fit(msub: argparse._SubParsersAction) -> None:
    p = msub.add_parser("fit", help="fit a performance model on pilot runs", epilog=FIT_EXAMPLES, formatter_class=FMT)
    p.add_argument("observations", metavar="OBS", help="wide CSV of pilot runs")
    p.add_argument("--value-column", required=True, help="metric column to model")
    p.add_argument("--out", required=True, help="model JSON to write")
    p.add_argument("--form", default="linear_ot",
                   choices=("linear_ot", "pq_ot", "p_linear", "p_quadratic", "mixing_law", "mixing_law_log", "gbm"),
                   help="performance form (default linear_ot)")
    p.add_argument("--goal", choices=("min", "max"), default="min", help="min for losses, max for accuracies (default min)")
    p.add_argument("--size-law", choices=("auto", "log", "power", "none"), default="auto",
                   help="extrapolation in size (default auto: log for 2 sizes, power for 3+ or with --size-prior)")
    p.add_argument("--size-prior", metavar="MEAN,SD|PRIOR.json",
                   help="prior on the power law's size exponent, e.g. from `thresher mix exponent`")
    p.add_argument("--values", help="second CSV with the value columns, joined on --join (RegMix layout)")
    p.add_argument("--join", help="key column shared by OBS and --values, e.g. index")
    p.add_argument("--n-boot", type=int, default=100, help="bootstrap replicates for intervals (default 100)")
    p.add_argument("--alpha", type=float, default=1e-3, help="ridge strength of the linear forms (default 1e-3)")
    p.add_argument("--seed", type=int, default=0)
    _obs_options(p)
    _ot_options(p)
    p.set_defaults(handler=run_fit)


def _register_predict(msub: argparse._SubParsersAction) -> None:
    p = msub.add_parser("predict", help="predict the metric of mixtures", epilog=PREDICT_EXAMPLES, formatter_class=FMT)
    p.add_argument("mixtures", metavar="MIXTURES", help="wide CSV of mixtures (weight columns; a size column optional)")
    p.add_argument("--model", required=True, help="model JSON from `thresher mix fit`")
    p.add_argument("--out", required=True, help="CSV to write")
    p.add_argument("--size", type=float, help="training size to predict at (default: the size column)")
    _interval_options(p)
    _obs_options(p)
    _ot_path_options(p)
    p.set_defaults(handler=run_predict)


def _register_optimize(msub: argparse._SubParsersAction) -> None:
    p = msub.add_parser("optimize", help="choose mixture weights under caps and a budget", epilog=OPTIMIZE_EXAMPLES,
                        formatter_class=FMT)
    p.add_argument("--model", required=True, help="model JSON from `thresher mix fit`")
    p.add_argument("--out", required=True, help="mixture JSON to write")
    p.add_argument("--size", type=float, help="training size N (needed for --available and models fitted at several sizes)")
    p.add_argument("--caps", nargs="+", metavar="POOL=W", help="maximum weight per pool")
    p.add_argument("--available", nargs="+", metavar="POOL=COUNT", help="unique samples per pool (cap = count / size)")
    p.add_argument("--prices", nargs="+", metavar="POOL=PRICE", help="price per sample (unlisted pools are free)")
    p.add_argument("--budget", type=float, help="money available for the size samples")
    p.add_argument("--starts", type=positive_int, default=8, help="optimiser starts (default 8)")
    _interval_options(p)
    p.add_argument("--seed", type=int, default=0)
    _ot_path_options(p)
    p.set_defaults(handler=run_optimize)


def _register_exponent(msub: argparse._SubParsersAction) -> None:
    p = msub.add_parser("exponent", help="size-exponent prior from earlier sweeps with three or more sizes",
                        epilog=EXPONENT_EXAMPLES, formatter_class=FMT)
    p.add_argument("sweeps", metavar="SWEEP", nargs="+", help="wide CSV of an earlier sweep (two or more)")
    p.add_argument("--value-column", required=True, help="metric column")
    p.add_argument("--out", help="JSON to write (the prior and each sweep's exponent)")
    _obs_options(p)
    p.set_defaults(handler=run_exponent)


def _register_ot(msub: argparse._SubParsersAction) -> None:
    p = msub.add_parser("ot", help="OT distances and gradients between pool mixtures and a target", epilog=OT_EXAMPLES,
                        formatter_class=FMT)
    p.add_argument("--out", required=True, help="JSON to write")
    p.add_argument("--mixtures", help="wide CSV of mixtures to evaluate")
    p.add_argument("--weights", action="append", metavar="POOL=W,...", help="one mixture (repeatable)")
    p.add_argument("--weight-prefix", default="weight_", help="prefix of weight columns in --mixtures (default weight_)")
    _ot_options(p, required=True)
    p.set_defaults(handler=run_ot)
