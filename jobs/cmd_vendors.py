"""`thresher vendors SPEC.yaml --out DIR`: which data vendors to buy from, how much, and how sure we are."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from thresher.jobs.cli import UsageError
from thresher.jobs.common import print_outputs, say
from thresher.jobs.vendor_spec import Rows, Spec, SpecError, load_spec, read_rows, safe_output
from thresher.pipeline.outputs import write_text_atomic

EXAMPLES = """example spec (paths relative to the spec file):
  budget: 2000
  currency: USD
  owned:
    - {name: catalogue, path: owned.npz}     # x (n, d) and labels (n,)
  target: {path: validation.npz}
  proxy: {kind: classifier, model: logistic}
  vendors:
    - name: acme
      sample: acme_sample.jsonl            # {"embedding": [...], "label": 3} per line
      available: 20000
      price: 0.05                          # per sample
    - name: globex
      sample: globex_sample.npz
      available: 8000
      price: {unit: sample, tiers: [{upto: 1000, amount: 0.2}, {upto: null, amount: 0.1}]}
  ot: {solver: sinkhorn}                   # optional OT second opinion

examples:
  thresher vendors vendors.yaml --out vendor-report
  thresher vendors text-vendors.yaml --out out --quiet

Proxies: classifier (labelled embeddings, or labelled text embedded with the hashing embedder),
ngram (unlabelled text: n-gram LM perplexity on the target texts), pilot_csv (your own runs:
columns vendor, quantity, metric; quantity 0 for owned-only runs). Writes report.json,
report.html and quarantine/VENDOR.jsonl for rows set aside.
"""


class NgramProxy:
    """Minus bits per token on the target texts of an n-gram LM trained on a run's texts.

    Training words outside the target's vocabulary become one placeholder word first. Without
    that, text full of one-off words (gibberish) raises the LM's unknown-word probability and
    so "helps" on target words the owned data lacks; with it, such text only dilutes the model.
    """

    metric = "neg_bits_per_token"
    placeholder = "oovplaceholder"

    def __init__(self, target_texts: Sequence[str], *, order: int = 3, min_count: int = 2) -> None:
        from thresher.metrics.fluency import tokenize_lines

        self.target_texts = list(target_texts)
        self.order, self.min_count = int(order), int(min_count)
        self.vocab = {tok for t in self.target_texts for line in tokenize_lines(t) for tok in line}
        self.vocab.discard(self.placeholder)

    def _map(self, text: str) -> str:
        from thresher.metrics.fluency import tokenize_lines

        vocab, ph = self.vocab, self.placeholder
        return "\n".join(" ".join(tok if tok in vocab else ph for tok in line) for line in tokenize_lines(text))

    def score(self, train: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        from thresher.metrics.fluency import FluencyModel

        lm = FluencyModel(order=self.order, min_count=self.min_count).fit(self._map(str(t)) for t in train)
        log10p, tokens = lm.log10_prob(self.target_texts)
        return log10p * np.log2(10.0), tokens.astype(np.float64)


def _read(spec: Spec, path: Path) -> Rows:
    t = spec.text
    return read_rows(path, max_bytes=spec.max_file_bytes, max_rows=spec.max_rows, text_field=t["field"],
                     label_field=t["label_field"], embedding_field=t["embedding_field"])


def _kind(rows: Rows) -> str:
    return "text" if rows.texts is not None and rows.x is None else "embedding"


def _concat_rows(parts: list[Rows]) -> Rows:
    first = parts[0]
    labels = None
    if all(p.labels is not None for p in parts):
        labels = np.concatenate([p.labels for p in parts])
    if _kind(first) == "text":
        return Rows(first.source, None, [t for p in parts for t in p.texts], labels, [], sum(p.rows_read for p in parts))
    dims = {p.x.shape[1] for p in parts}
    if len(dims) != 1:
        raise UsageError(f"owned pools have different embedding sizes {sorted(dims)}")
    return Rows(first.source, np.vstack([p.x for p in parts]), None, labels, [], sum(p.rows_read for p in parts))


def _write_quarantine(out: Path, name: str, rows: Rows) -> Path | None:
    if not rows.quarantined:
        return None
    path = safe_output(out, "quarantine", f"{name}.jsonl")
    write_text_atomic("".join(json.dumps({"file": rows.source.name, **q}) + "\n" for q in rows.quarantined), path)
    return path


def evaluate_spec(spec: Spec, out: Path, args: argparse.Namespace | None = None) -> dict[str, Any]:
    """Load everything the spec names, run the evaluator, and return the report data."""
    from thresher.mixtures.transport import EmbeddingSet
    from thresher.mixtures.vendors import AcquisitionEvaluator, ClassifierProxy, VendorOffer, read_pilot_csv, text_duplicates
    from thresher.mixtures.vendors.ot_value import reduce_set

    quiet_args = args or argparse.Namespace(quiet=True)
    owned_parts = [_read(spec, p) for _, p in spec.owned]
    for (name, p), r in zip(spec.owned, owned_parts):
        if len(r) == 0:
            raise UsageError(f"{p}: owned pool {name!r} has no usable rows")
        if r.quarantined:
            raise UsageError(f"{p}, line {r.quarantined[0]['line']}: {r.quarantined[0]['reason']} (owned data must be clean)")
    owned = _concat_rows(owned_parts)
    target = _read(spec, spec.target)
    if len(target) == 0 or target.quarantined:
        raise UsageError(f"{spec.target}: target needs clean rows"
                         + (f"; line {target.quarantined[0]['line']}: {target.quarantined[0]['reason']}" if target.quarantined else ""))
    kind = _kind(owned)
    if _kind(target) != kind:
        raise UsageError(f"{spec.target}: target holds {_kind(target)} rows but owned data holds {kind} rows")

    samples: dict[str, Rows] = {}
    quarantine_files: dict[str, str] = {}
    for v in spec.vendors:
        rows = _read(spec, v.sample)
        qf = _write_quarantine(out, v.name, rows)
        if qf is not None:
            quarantine_files[v.name] = str(qf)
            say(quiet_args, f"vendor {v.name}: {len(rows.quarantined)} malformed rows quarantined -> {qf}")
        if len(rows) == 0:
            raise UsageError(f"{v.sample}: vendor {v.name!r} has no usable rows ({len(rows.quarantined)} quarantined)")
        if _kind(rows) != kind:
            raise UsageError(f"{v.sample}: vendor {v.name!r} holds {_kind(rows)} rows but owned data holds {kind} rows")
        samples[v.name] = rows

    proxy_kind = spec.proxy["kind"]
    embed = None
    if kind == "text":
        from thresher.metrics.embedders import HashingEmbedder

        embedder = HashingEmbedder(dim=spec.text["embedder_dim"], seed=spec.seed)
        embed = lambda texts: embedder.embed(list(texts)).astype(np.float64)  # noqa: E731
    elif proxy_kind == "ngram":
        raise UsageError("proxy.kind ngram needs text rows ({\"text\": ...} per line), not embeddings")

    def features(rows: Rows) -> np.ndarray:
        return rows.x if rows.x is not None else embed(rows.texts)

    owned_x = features(owned)
    dim = owned_x.shape[1]
    target_x = features(target)
    vendor_x = {n: features(r) for n, r in samples.items()}
    for n, x in [("target", target_x)] + list(vendor_x.items()):
        if x.shape[1] != dim:
            src = spec.target if n == "target" else samples[n].source
            raise UsageError(f"{src}: embeddings have {x.shape[1]} values per row, owned data has {dim}")

    needs_labels = proxy_kind == "classifier"
    if needs_labels:
        for what, rows in [("owned data", owned), ("target", target)] + [(f"vendor {n!r}", r) for n, r in samples.items()]:
            if rows.labels is None:
                raise UsageError(f"{rows.source}: {what} has no labels; the classifier proxy needs labels "
                                 "(or use proxy.kind ngram for unlabelled text)")

    offers = []
    for v in spec.vendors:
        price = v.price
        if price.unit == "token":
            rows = samples[v.name]
            if rows.texts is None:
                raise UsageError(f"{spec.path}: vendors: {v.name}: price.unit token needs text samples to count tokens")
            price = price.with_tokens_per_row(max(1.0, float(np.mean([len(t.split()) for t in rows.texts]))))
        offers.append(VendorOffer(v.name, len(samples[v.name]), v.available, price, v.max_quantity))

    duplicates = None
    if kind == "text":
        duplicates = {n: text_duplicates(r.texts, owned.texts) for n, r in samples.items()}
    pilot_runs = None
    proxy = None
    if proxy_kind == "pilot_csv":
        try:
            pilot_runs = read_pilot_csv(spec.proxy["path"], goal=spec.proxy["goal"])
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        missing = [v.name for v in spec.vendors if v.name not in pilot_runs]
        if missing:
            raise UsageError(f"{spec.proxy['path']}: no pilot runs for vendors {missing}")
        # Your runs added whole sample rows, duplicates included: their gains are already per row bought.
        duplicates = {n: np.zeros(len(r), dtype=bool) for n, r in samples.items()}
        owned_data: Any = np.zeros(1)
        sample_data: dict[str, Any] = {n: np.zeros(len(r)) for n, r in samples.items()}
    elif proxy_kind == "ngram":
        proxy = NgramProxy(target.texts, order=spec.proxy["order"])
        owned_data = np.array(owned.texts, dtype=object)
        sample_data = {n: np.array(r.texts, dtype=object) for n, r in samples.items()}
    else:
        proxy = ClassifierProxy(target_x, target.labels, model=spec.proxy["model"])
        owned_data = (owned_x, owned.labels)
        sample_data = {n: (vendor_x[n], samples[n].labels) for n, r in samples.items()}

    ot_sets = None
    ot_settings = None
    if spec.ot is not None:
        mp = spec.ot["max_points"]
        use_labels = needs_labels
        ot_settings = {k: spec.ot[k] for k in ("solver", "reg", "max_points", "n_boot")}
        ot_settings["label_cost"] = spec.ot["label_cost"] if use_labels else None
        ot_sets = {
            "owned": EmbeddingSet(owned_x, labels=owned.labels if use_labels else None, name="owned"),
            "target": reduce_set(target_x, target.labels if use_labels else None, mp, spec.seed, "target"),
            "vendors": {n: EmbeddingSet(vendor_x[n], labels=samples[n].labels if use_labels else None, name=n)
                        for n in samples},
        }
    ev = AcquisitionEvaluator(
        budget=spec.budget, min_gain=spec.min_gain, level=spec.level, fractions=spec.proxy["fractions"],
        repeats=spec.proxy["repeats"], max_train=spec.proxy["max_train"], n_boot=spec.evaluation["n_boot"],
        grid_points=spec.evaluation["grid_points"], max_extrapolation=spec.evaluation["max_extrapolation"],
        duplicate_radius=spec.evaluation["duplicate_radius"], ot=ot_settings, seed=spec.seed)
    say(quiet_args, f"evaluating {len(offers)} vendors against {len(owned)} owned rows with the {proxy_kind} proxy")
    try:
        ev.fit(proxy, owned_data, offers, sample_data, duplicates=duplicates, pilot_runs=pilot_runs,
               owned_embeddings=owned_x, sample_embeddings=vendor_x, ot_sets=ot_sets)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    result = ev.result_.to_dict()
    result["spec"] = {"name": spec.name, "file": spec.path.name, "currency": spec.currency, "proxy": proxy_kind,
                      "owned_rows": len(owned), "target_rows": len(target)}
    if spec.repetition is not None:
        _add_repetition(spec, result, offers)
    for v, offer in zip(result["vendors"], offers):
        rows = samples[v["name"]]
        v["revealed"] = len(rows)
        v["rows_read"] = rows.rows_read
        v["quarantined"] = len(rows.quarantined)
        v["quarantine_file"] = quarantine_files.get(v["name"])
        v["available"] = offer.available
        v["limit"] = offer.limit
        v["price"] = offer.price.to_dict()
    return result


def _add_repetition(spec: Spec, result: dict[str, Any], offers: list) -> None:
    """Utility-law value of each vendor at its evaluated quantity, for a run that repeats data."""
    from thresher.mixtures.fitting import FittedLaw
    from thresher.jobs.planning_files import load_pools
    from thresher.mixtures.vendors.repetition import repetition_value

    rep = spec.repetition
    try:
        fitted = FittedLaw.load(rep["fit"])
        pools, unit = load_pools(rep["pools"])
    except (ValueError, OSError, KeyError) as exc:
        raise UsageError(f"repetition: {exc}") from None
    for v, offer in zip(result["vendors"], offers):
        q = v["evaluated_quantity"] * (1.0 - v["duplicate_fraction"])
        unique = q * offer.price.tokens_per_row if unit == "tokens" and offer.price.unit == "token" else q
        try:
            v["repetition"] = repetition_value(fitted, pools, v["name"], unique, rep["budget"], params=rep["params"],
                                               level=spec.level)
        except ValueError as exc:
            raise UsageError(f"repetition, vendor {v['name']}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from thresher.jobs.vendor_report import write_reports

    try:
        spec = load_spec(args.spec)
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    try:
        result = evaluate_spec(spec, out, args)
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    paths = write_reports(out, result)
    if not getattr(args, "quiet", False):
        cur = result["spec"]["currency"]
        for v in result["vendors"]:
            g = v["gain"]
            extra = f", ask for ~{v['more_samples']} more rows" if v.get("more_samples") else ""
            print(f"  {v['name']:<16} {v['decision']:<4} qty {v['quantity']:>8.0f}  cost {v['cost']:>10.2f} {cur}  "
                  f"gain {g['mean']:+.4f} [{g['low']:+.4f}, {g['high']:+.4f}]  P(helps) {g['p_helps']:.2f}{extra}")
        p = result["purchase"]
        print(f"  purchase: {p['total_cost']:.2f} {cur} of budget {result['budget']}, "
              f"predicted {result['metric']} gain {p['predicted_gain']['mean']:+.4f}")
    print_outputs(paths)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "vendors",
        help="evaluate data vendors from revealed samples and prices: buy, skip or ask for more",
        description="Value each vendor's revealed sample against owned data and a target set with a proxy "
                    "(or your pilot runs), predict the metric change with an interval, and choose the best "
                    "purchase under the budget.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("spec", help="vendor spec (YAML)")
    p.add_argument("--out", required=True, help="output folder for report.json, report.html and quarantine/")
    p.set_defaults(handler=run)
