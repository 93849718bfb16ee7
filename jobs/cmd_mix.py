"""`thresher mix fit | predict | optimize | exponent | ot`: the optimal-transport mixer from pilot runs to mixture weights."""
from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from thresher.jobs.cli import UsageError
from thresher.jobs.common import print_outputs, say
from thresher.pipeline.outputs import write_text_atomic

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
`label` and `weight` columns. A pool is NAME=PATH or PATH (name = file stem).
Solvers: sinkhorn (debiased Sinkhorn divergence, default; exact gradients), exact (network
simplex; up to ~4k points per side), sliced (tens of thousands of points).
"""

MAX_EMBEDDING_ROWS = 5_000_000


# ---- embedding files -------------------------------------------------------------------------
def _pool_spec(item: str) -> tuple[str, Path]:
    name, sep, path = item.partition("=")
    if sep:
        if not name.strip() or not path.strip():
            raise UsageError(f"--pools {item!r} must look like NAME=PATH or PATH")
        return name.strip(), Path(path.strip())
    p = Path(item)
    return p.stem, p


def load_embeddings(path: Path, name: str | None = None, embedding_column: str = "embedding"):
    """An `EmbeddingSet` from .npy, .npz or .parquet (format in `thresher mix ot --help`)."""
    from thresher.mixtures.transport import EmbeddingSet

    if not path.is_file():
        raise UsageError(f"{path}: no such embedding file")
    suffix = path.suffix.lower()
    labels = weights = None
    try:
        if suffix == ".npy":
            x = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                key = "x" if "x" in z.files else "embeddings" if "embeddings" in z.files else None
                if key is None:
                    raise UsageError(f"{path}: .npz needs an array named 'x' (found {z.files})")
                x = z[key]
                labels = z["labels"] if "labels" in z.files else None
                weights = z["weights"] if "weights" in z.files else None
        elif suffix == ".parquet":
            x, labels, weights = _read_parquet(path, embedding_column)
        else:
            raise UsageError(f"{path}: unknown embedding format {suffix!r}; use .npy, .npz or .parquet")
    except (ValueError, OSError) as exc:
        raise UsageError(f"{path}: cannot read embeddings ({exc})") from None
    x = np.asarray(x)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        raise UsageError(f"{path}: embeddings must be a numeric (n, d) array, got {x.dtype} with shape {x.shape}")
    if x.shape[0] > MAX_EMBEDDING_ROWS:
        raise UsageError(f"{path}: {x.shape[0]} rows exceeds the limit of {MAX_EMBEDDING_ROWS}; subsample first")
    try:
        return EmbeddingSet(x, labels=labels, weights=weights, name=str(name or path))
    except ValueError as exc:
        raise UsageError(f"{path}: {exc}") from None


def _read_parquet(path: Path, column: str):
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if column not in table.column_names:
        raise UsageError(f"{path}: no {column!r} column (have {table.column_names})")
    col = table.column(column).combine_chunks()
    nulls = np.flatnonzero(np.asarray(col.is_null()))
    if nulls.size:
        raise UsageError(f"{path}, row {nulls[0]}: missing embedding")
    lengths = np.asarray(col.value_lengths()) if hasattr(col, "value_lengths") else None
    if lengths is not None and lengths.size and (lengths != lengths[0]).any():
        bad = int(np.flatnonzero(lengths != lengths[0])[0])
        raise UsageError(f"{path}, row {bad}: embedding has {lengths[bad]} values, row 0 has {lengths[0]}")
    flat = np.asarray(col.flatten(), dtype=np.float64)
    x = flat.reshape(len(col), -1) if len(col) else flat.reshape(0, 0)
    labels = np.asarray(table.column("label").to_pylist()) if "label" in table.column_names else None
    weights = np.asarray(table.column("weight").to_numpy(), dtype=np.float64) if "weight" in table.column_names else None
    return x, labels, weights


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
    g.add_argument("--max-per-pool", type=int, default=1000, help="k-means coreset above this many points per pool (default 1000)")
    g.add_argument("--projections", type=int, default=200, help="directions for the sliced solver (default 200)")
    g.add_argument("--embedding-column", default="embedding", help="parquet column holding embeddings (default embedding)")


def _ot_path_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("optimal transport (OT forms only)")
    g.add_argument("--pools", nargs="+", metavar="NAME=PATH", help="pool embedding files (default: those the model was fitted with)")
    g.add_argument("--target", help="target embeddings (default: the file the model was fitted with)")


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
        "pools": {n: str(path) for n, path in specs},
        "target": str(args.target),
        "solver": args.solver,
        "reg": args.reg,
        "label_cost": None if args.label_cost == "none" else args.label_cost,
        "label_weight": args.label_weight,
        "max_per_pool": args.max_per_pool,
        "n_projections": args.projections,
        "embedding_column": args.embedding_column,
    }


def _load_sets(config: dict[str, Any], base: Path | None = None, pool_order: list[str] | None = None):
    """Pool and target embedding sets named by an OT config (paths also tried relative to `base`)."""

    def resolve(path: str) -> Path:
        p = Path(path)
        if not p.exists() and base is not None and (base / p).exists():
            return base / p
        return p

    column = config.get("embedding_column", "embedding")
    names = pool_order or list(config["pools"])
    missing = [n for n in names if n not in config["pools"]]
    if missing:
        raise UsageError(f"no embedding file for pools {missing}; give --pools for every pool {names}")
    pools = {n: load_embeddings(resolve(config["pools"][n]), n, column) for n in names}
    target = load_embeddings(resolve(config["target"]), "target", column)
    return pools, target


def _build_ot(config: dict[str, Any], base: Path | None = None, pool_order: list[str] | None = None):
    from thresher.mixtures.transport import MixtureOT

    if config["label_weight"] == "auto":
        raise UsageError("--label-weight auto needs pilot runs: use it with `mix fit`")
    pools, target = _load_sets(config, base, pool_order)
    try:
        return MixtureOT(
            pools, target, solver=config["solver"], reg=config["reg"], label_cost=config["label_cost"],
            label_weight=config["label_weight"], max_per_pool=config["max_per_pool"],
            n_projections=config.get("n_projections", 200),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# ---- observations ----------------------------------------------------------------------------
def _read_obs(path: str, args: argparse.Namespace, value_columns: list[str] | None):
    from thresher.mixtures.mixture_observations import read_mixture_csv

    try:
        return read_mixture_csv(
            path, weight_prefix=args.weight_prefix, value_columns=value_columns,
            size_column=args.size_column, values_path=getattr(args, "values", None), join=getattr(args, "join", None),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _align(obs, pools: list[str], source: str) -> np.ndarray:
    missing = [p for p in pools if p not in obs.pools]
    extra = [p for p in obs.pools if p not in pools]
    if missing or extra:
        raise UsageError(f"{source}: weight columns must match the model's pools {pools} (missing {missing}, extra {extra})")
    return obs.weights[:, [obs.pools.index(p) for p in pools]]


def _load_model(args: argparse.Namespace):
    from thresher.mixtures.performance import PerformanceModel

    path = Path(args.model)
    try:
        model = PerformanceModel.load(path)
    except (OSError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if model.uses_ot:
        config = dict(model.ot_config or {})
        if args.pools:
            config["pools"] = {n: str(p) for n, p in (_pool_spec(item) for item in args.pools)}
        if args.target:
            config["target"] = str(args.target)
        if not config.get("pools") or not config.get("target"):
            raise UsageError(f"{path}: form {model.form!r} needs OT; give --pools and --target")
        # Solver settings stay those the model was fitted with: its coefficients depend on them.
        model.ot = _build_ot(config, base=path.parent, pool_order=model.pools)
    return model


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


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(json.dumps(data, indent=2), path)


def _choose_label_weight(args: argparse.Namespace, config: dict[str, Any], obs):
    """`--label-weight auto`: the candidate whose OT best predicts the pilot metric (leave-one-out)."""
    from thresher.mixtures.transport import select_label_weight

    if config["label_cost"] is None:
        raise UsageError("--label-weight auto needs a label cost (--label-cost gaussian or onehot)")
    pools, target = _load_sets(config, pool_order=obs.pools)
    try:
        choice = select_label_weight(
            pools, target, obs.weights, obs.value(args.value_column), sizes=obs.sizes,
            solver=config["solver"], reg=config["reg"], label_cost=config["label_cost"],
            max_per_pool=config["max_per_pool"], n_projections=config.get("n_projections", 200),
        )
    except ValueError as exc:
        raise UsageError(f"{args.observations}: {exc}") from None
    config["label_weight"] = choice.label_weight
    say(args, "label weight (pilot leave-one-out MAE): "
        + ", ".join(f"{c:g}: {e:.4g}" for c, e in choice.scores.items()) + f"; chose {choice.label_weight:g}")
    return choice.ot


# ---- handlers --------------------------------------------------------------------------------
def run_fit(args: argparse.Namespace) -> int:
    from thresher.mixtures.performance import PerformanceModel
    from thresher.mixtures.performance_forms import OT_FORMS

    size_prior = _size_prior(args.size_prior)
    if size_prior is not None and args.size_law in ("log", "none"):
        raise UsageError(f"--size-prior is a prior on the power law's exponent; it cannot go with --size-law {args.size_law}")
    obs = _read_obs(args.observations, args, [args.value_column])
    config = _ot_config_from_args(args)
    ot_fn = None
    if args.form in OT_FORMS:
        if config is None:
            raise UsageError(f"form {args.form!r} needs --pools and --target (embedding files) to compute OT")
        if config["label_weight"] == "auto":
            ot_fn = _choose_label_weight(args, config, obs)
        else:
            ot_fn = _build_ot(config, pool_order=obs.pools)
        say(args, f"OT: {ot_fn.solver}, {ot_fn.n_points[0]} pool points vs {ot_fn.n_points[1]} target points")
    try:
        model = PerformanceModel(
            args.form, ot=ot_fn, size_law=args.size_law, size_prior=size_prior, goal=args.goal, alpha=args.alpha,
            n_boot=args.n_boot, seed=args.seed,
        ).fit(obs, args.value_column)
    except ValueError as exc:
        raise UsageError(f"{args.observations}: {exc}") from None
    model.ot_config = config if args.form in OT_FORMS else None
    out = model.save(args.out)
    sizes = ", ".join(f"{s:g}" for s in model.sizes_) or "one size"
    law = model.law_ + (f", exponent {model.size_alpha_:.3f}" if model.law_ == "power" else "")
    say(args, f"fitted {args.form} on {len(obs)} runs ({sizes}; size law {law}); in-sample RMSE {model.residual_sd_:.4g}")
    print_outputs({"model": out})
    return 0


def run_predict(args: argparse.Namespace) -> int:
    model = _load_model(args)
    obs = _read_obs(args.mixtures, args, [])
    weights = _align(obs, model.pools, args.mixtures)
    n = args.size if args.size is not None else obs.sizes
    try:
        mean, lo, hi = model.predict_interval(weights, n, level=args.level, kind=args.interval)
    except ValueError as exc:
        raise UsageError(f"{args.mixtures}: {exc}") from None
    with open(args.mixtures, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    header, body = rows[0], rows[1:]
    out = Path(args.out)
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(header + ["predicted", "predicted_low", "predicted_high"])
    for row, m, l, h in zip(body, mean, lo, hi):
        writer.writerow(row + [repr(float(m)), repr(float(l)), repr(float(h))])
    write_text_atomic(buf.getvalue(), out)
    say(args, f"predicted {len(mean)} mixtures with {model.form}")
    print_outputs({"predictions": out})
    return 0


def _size_prior(text: str | None) -> tuple[float, float] | None:
    """--size-prior: MEAN,SD, or a JSON file from `thresher mix exponent`."""
    if text is None:
        return None
    if text.lower().endswith(".json"):
        path = Path(text)
        try:
            prior = json.loads(path.read_text(encoding="utf-8"))["size_prior"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path}: not a size prior from `thresher mix exponent` ({exc})") from None
    else:
        prior = text.split(",")
        if len(prior) != 2:
            raise UsageError(f"--size-prior {text!r} must be MEAN,SD or a .json file")
    from thresher.mixtures.size_laws import check_prior

    try:
        return check_prior(prior)
    except ValueError as exc:
        raise UsageError(f"--size-prior {text!r}: {exc}") from None


def run_exponent(args: argparse.Namespace) -> int:
    from thresher.mixtures.size_laws import exponent_prior, observed_means, sweep_exponent

    rows = []
    for path in args.sweeps:
        obs = _read_obs(path, args, [args.value_column])
        if obs.sizes is None:
            raise UsageError(f"{path}: no {args.size_column!r} column; a sweep needs three or more sizes")
        sizes, groups = np.unique(obs.sizes, return_inverse=True)
        listed = ", ".join(f"{s:g}" for s in sizes)
        if sizes.size < 3:
            raise UsageError(f"{path}: {sizes.size} size(s) ({listed}); a sweep needs three or more")
        table = observed_means(obs.weights, obs.value(args.value_column), groups.ravel(), sizes.size)
        if not table.shape[0]:
            raise UsageError(f"{path}: no mixture was run at every size ({listed})")
        alpha = sweep_exponent(table, sizes)
        rows.append({"path": str(path), "exponent": alpha, "sizes": sizes.tolist(), "mixtures": int(table.shape[0])})
        say(args, f"{path}: exponent {alpha:.3f} from {table.shape[0]} mixtures at sizes {listed}")
    try:
        mean, sd = exponent_prior([r["exponent"] for r in rows])
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    say(args, f"size prior: {mean:.3f},{sd:.3f} (mean, SD over {len(rows)} sweeps)")
    if args.out:
        out = Path(args.out)
        write_text_atomic(json.dumps({"size_prior": [mean, sd], "sweeps": rows}, indent=1), out)
        print_outputs({"size_prior": out})
    return 0


def run_optimize(args: argparse.Namespace) -> int:
    from thresher.mixtures.optimize import optimize_mixture

    model = _load_model(args)
    caps = _pairs(args.caps, "--caps", model.pools)
    available = _pairs(args.available, "--available", model.pools)
    prices = _pairs(args.prices, "--prices", model.pools)
    if (prices is None) != (args.budget is None):
        raise UsageError("--prices and --budget go together")
    try:
        choice = optimize_mixture(
            model, args.size, caps=caps, available=available, prices=prices, budget=args.budget,
            starts=args.starts, level=args.level, interval=args.interval, seed=args.seed,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    data = {"model": str(args.model), "form": model.form, **choice.to_dict()}
    out = Path(args.out)
    _write_json(out, data)
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
    from thresher.mixtures.mixture_observations import read_mixture_csv

    config = _ot_config_from_args(args)
    model = _build_ot(config)
    names = model.pool_names
    mixtures: list[np.ndarray] = []
    if args.mixtures:
        try:
            obs = read_mixture_csv(args.mixtures, weight_prefix=args.weight_prefix, value_columns=[], size_column=None)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        mixtures.extend(_align(obs, names, args.mixtures))
    for item in args.weights or []:
        given = _pairs([item], "--weights", names)
        w = np.array([given.get(n, 0.0) for n in names])
        if abs(w.sum() - 1.0) > 1e-6:
            raise UsageError(f"--weights {item!r} sums to {w.sum():.6g}, expected 1")
        mixtures.append(w)
    vertices = model.vertex_values()
    rows = []
    for w in mixtures:
        value, grad = model.value_and_grad(w)
        rows.append({"weights": dict(zip(names, map(float, w))), "ot": value, "gradient": dict(zip(names, map(float, grad)))})
    data = {
        "config": {**model.config(), "pools": config["pools"], "target": config["target"]},
        "pool_ot": dict(zip(names, map(float, vertices))),
        "mixtures": rows,
        "note": "gradient: dOT/dp projected on the simplex (sums to zero); OT(p + h d) ~ OT(p) + h gradient.d",
    }
    out = Path(args.out)
    _write_json(out, data)
    if not getattr(args, "quiet", False):
        for n, v in data["pool_ot"].items():
            print(f"  OT({n} alone) = {v:.6g}")
        print(f"{len(rows)} mixtures evaluated with {model.solver}")
    print_outputs({"ot": out})
    return 0


# ---- registration ----------------------------------------------------------------------------
def _obs_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weight-prefix", default="weight_", help="prefix of weight columns (default weight_)")
    p.add_argument("--size-column", default="size", help="training-size column (default size; absent = one size)")


def _interval_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--level", type=float, default=0.9, help="interval level (default 0.9)")
    p.add_argument("--interval", choices=("mean", "mixture"), default="mean",
                   help="mean: the fitted surface; mixture: also one mixture's own misfit (default mean)")


def register(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    mix = sub.add_parser("mix", help="OT mixer: fit a performance model on pilot mixtures, predict, optimise weights",
                         description="Optimal-transport mixer: predict a metric from mixture weights (and OT to a "
                                     "target), extrapolate in training size, and choose weights under caps and a budget.",
                         epilog=MIX_EXAMPLES, formatter_class=fmt)
    msub = mix.add_subparsers(dest="mix_command", metavar="STEP")
    mix.set_defaults(handler=lambda a: (mix.print_help(), 2)[1])

    p = msub.add_parser("fit", help="fit a performance model on pilot runs", epilog=FIT_EXAMPLES, formatter_class=fmt)
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

    p = msub.add_parser("predict", help="predict the metric of mixtures", epilog=PREDICT_EXAMPLES, formatter_class=fmt)
    p.add_argument("mixtures", metavar="MIXTURES", help="wide CSV of mixtures (weight columns; a size column optional)")
    p.add_argument("--model", required=True, help="model JSON from `thresher mix fit`")
    p.add_argument("--out", required=True, help="CSV to write")
    p.add_argument("--size", type=float, help="training size to predict at (default: the size column)")
    _interval_options(p)
    _obs_options(p)
    _ot_path_options(p)
    p.set_defaults(handler=run_predict)

    p = msub.add_parser("optimize", help="choose mixture weights under caps and a budget", epilog=OPTIMIZE_EXAMPLES,
                        formatter_class=fmt)
    p.add_argument("--model", required=True, help="model JSON from `thresher mix fit`")
    p.add_argument("--out", required=True, help="mixture JSON to write")
    p.add_argument("--size", type=float, help="training size N (needed for --available and models fitted at several sizes)")
    p.add_argument("--caps", nargs="+", metavar="POOL=W", help="maximum weight per pool")
    p.add_argument("--available", nargs="+", metavar="POOL=COUNT", help="unique samples per pool (cap = count / size)")
    p.add_argument("--prices", nargs="+", metavar="POOL=PRICE", help="price per sample (unlisted pools are free)")
    p.add_argument("--budget", type=float, help="money available for the size samples")
    p.add_argument("--starts", type=int, default=8, help="optimiser starts (default 8)")
    _interval_options(p)
    p.add_argument("--seed", type=int, default=0)
    _ot_path_options(p)
    p.set_defaults(handler=run_optimize)

    p = msub.add_parser("exponent", help="size-exponent prior from earlier sweeps with three or more sizes",
                        epilog=EXPONENT_EXAMPLES, formatter_class=fmt)
    p.add_argument("sweeps", metavar="SWEEP", nargs="+", help="wide CSV of an earlier sweep (two or more)")
    p.add_argument("--value-column", required=True, help="metric column")
    p.add_argument("--out", help="JSON to write (the prior and each sweep's exponent)")
    _obs_options(p)
    p.set_defaults(handler=run_exponent)

    p = msub.add_parser("ot", help="OT distances and gradients between pool mixtures and a target", epilog=OT_EXAMPLES,
                        formatter_class=fmt)
    p.add_argument("--out", required=True, help="JSON to write")
    p.add_argument("--mixtures", help="wide CSV of mixtures to evaluate")
    p.add_argument("--weights", action="append", metavar="POOL=W,...", help="one mixture (repeatable)")
    p.add_argument("--weight-prefix", default="weight_", help="prefix of weight columns in --mixtures (default weight_)")
    _ot_options(p, required=True)
    p.set_defaults(handler=run_ot)
