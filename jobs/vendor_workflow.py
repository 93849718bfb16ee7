"""Evaluating a vendor spec: read the files it names, build the proxy's inputs, run the acquisition evaluator.

The valuation itself (gain curves, decisions, the purchase under the budget) is
`thresher.mixtures.vendors`; this module is the file-facing part: it reads the owned
pools, the target and each vendor's revealed sample (quarantining malformed rows to
`out/quarantine/VENDOR.jsonl`), checks that they fit together, and returns the report
data that `vendor_report.write_reports` renders. The files and the output folder may be local
paths or URIs (`embedding_files`).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from thresher.jobs.embedding_files import Where, commit, local_copy, read_capped, shown
from thresher.jobs.vendor_rows import Rows, read_rows
from thresher.jobs.vendor_spec import Spec
from thresher.metrics.errors import InputError

Log = Callable[[str], None]


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


@dataclass
class SpecData:
    """Everything the spec's files hold: owned rows, target rows and each vendor's sample, all of one kind."""

    kind: str  # "text" or "embedding"
    owned: Rows
    target: Rows
    samples: dict[str, Rows]
    quarantine_files: dict[str, str]


@dataclass
class Features:
    """Embeddings of every row (texts are embedded with the seeded hashing embedder)."""

    owned: np.ndarray
    target: np.ndarray
    vendors: dict[str, np.ndarray]


def _read(spec: Spec, path: Where) -> Rows:
    t = spec.text
    return read_rows(path, max_bytes=spec.max_file_bytes, max_rows=spec.max_rows, text_field=t["field"],
                     label_field=t["label_field"], embedding_field=t["embedding_field"])


def _concat_rows(parts: list[Rows]) -> Rows:
    first = parts[0]
    labels = None
    if all(p.labels is not None for p in parts):
        labels = np.concatenate([p.labels for p in parts])
    if first.kind == "text":
        return Rows(first.source, None, [t for p in parts for t in p.texts], labels, [], sum(p.rows_read for p in parts))
    dims = {p.x.shape[1] for p in parts}
    if len(dims) != 1:
        raise InputError(f"owned pools have different embedding sizes {sorted(dims)}")
    return Rows(first.source, np.vstack([p.x for p in parts]), None, labels, [], sum(p.rows_read for p in parts))


def _write_quarantine(out: Where, name: str, rows: Rows) -> Where | None:
    from thresher.pipeline.outputs import write_bytes_atomic
    from thresher.pipeline.safety import safe_join

    if not rows.quarantined:
        return None
    path = safe_join(out, f"quarantine/{name}.jsonl")
    text = "".join(json.dumps({"file": rows.source.name, **q}) + "\n" for q in rows.quarantined)
    commit(path, text.encode("utf-8"), local=write_bytes_atomic)
    return path


def _owned_and_target(spec: Spec) -> tuple[Rows, Rows]:
    """Owned pools (concatenated) and the target: both must be clean, non-empty and of one kind."""
    owned_parts = [_read(spec, p) for _, p in spec.owned]
    for (name, p), r in zip(spec.owned, owned_parts):
        if len(r) == 0:
            raise InputError(f"{p}: owned pool {name!r} has no usable rows")
        if r.quarantined:
            q = r.quarantined[0]
            raise InputError(f"{p}, line {q['line']}: {q['reason']} (owned data must be clean)")
    owned = _concat_rows(owned_parts)
    target = _read(spec, spec.target)
    if len(target) == 0 or target.quarantined:
        q = target.quarantined[0] if target.quarantined else None
        raise InputError(f"{spec.target}: target needs clean rows" + (f"; line {q['line']}: {q['reason']}" if q else ""))
    if target.kind != owned.kind:
        raise InputError(f"{spec.target}: target holds {target.kind} rows but owned data holds {owned.kind} rows")
    return owned, target


def load_data(spec: Spec, out: Where, log: Log) -> SpecData:
    """Read every file of the spec; each vendor's malformed rows are written to out/quarantine/VENDOR.jsonl."""
    owned, target = _owned_and_target(spec)
    samples: dict[str, Rows] = {}
    quarantine_files: dict[str, str] = {}
    for v in spec.vendors:
        rows = _read(spec, v.sample)
        qf = _write_quarantine(out, v.name, rows)
        if qf is not None:
            quarantine_files[v.name] = shown(qf)
            log(f"vendor {v.name}: {len(rows.quarantined)} malformed rows quarantined -> {qf}")
        if len(rows) == 0:
            raise InputError(f"{v.sample}: vendor {v.name!r} has no usable rows ({len(rows.quarantined)} quarantined)")
        if rows.kind != owned.kind:
            raise InputError(f"{v.sample}: vendor {v.name!r} holds {rows.kind} rows but owned data holds {owned.kind} rows")
        samples[v.name] = rows
    return SpecData(owned.kind, owned, target, samples, quarantine_files)


def features(spec: Spec, data: SpecData) -> Features:
    """Embeddings of owned, target and vendor rows, all of the owned data's width; labels checked for the classifier."""
    embed = None
    if data.kind == "text":
        from thresher.metrics.embedders import HashingEmbedder

        embedder = HashingEmbedder(dim=spec.text["embedder_dim"], seed=spec.seed)
        embed = lambda texts: embedder.embed(list(texts)).astype(np.float64)  # noqa: E731
    elif spec.proxy["kind"] == "ngram":
        raise InputError("proxy.kind ngram needs text rows ({\"text\": ...} per line), not embeddings")

    def of(rows: Rows) -> np.ndarray:
        return rows.x if rows.x is not None else embed(rows.texts)

    feats = Features(of(data.owned), of(data.target), {n: of(r) for n, r in data.samples.items()})
    dim = feats.owned.shape[1]
    for n, x in [("target", feats.target)] + list(feats.vendors.items()):
        if x.shape[1] != dim:
            src = spec.target if n == "target" else data.samples[n].source
            raise InputError(f"{src}: embeddings have {x.shape[1]} values per row, owned data has {dim}")
    if spec.proxy["kind"] == "classifier":
        named = [("owned data", data.owned), ("target", data.target)] + [(f"vendor {n!r}", r) for n, r in
                                                                         data.samples.items()]
        for what, rows in named:
            if rows.labels is None:
                raise InputError(f"{rows.source}: {what} has no labels; the classifier proxy needs labels "
                                 "(or use proxy.kind ngram for unlabelled text)")
    return feats


def offers(spec: Spec, samples: dict[str, Rows]) -> list:
    """One offer per vendor; a price per token counts the sample's mean words per row."""
    from thresher.mixtures.vendors import VendorOffer

    out = []
    for v in spec.vendors:
        price = v.price
        if price.unit == "token":
            rows = samples[v.name]
            if rows.texts is None:
                raise InputError(f"{spec.path}: vendors: {v.name}: price.unit token needs text samples to count tokens")
            price = price.with_tokens_per_row(max(1.0, float(np.mean([len(t.split()) for t in rows.texts]))))
        out.append(VendorOffer(v.name, len(samples[v.name]), v.available, price, v.max_quantity))
    return out


def proxy_inputs(spec: Spec, data: SpecData, feats: Features) -> dict[str, Any]:
    """The evaluator's proxy and the data it trains on, by proxy kind (keyword arguments of `fit`)."""
    from thresher.mixtures.vendors import ClassifierProxy, read_pilot_csv, text_duplicates

    kind, samples = spec.proxy["kind"], data.samples
    duplicates = None
    if data.kind == "text":
        duplicates = {n: text_duplicates(r.texts, data.owned.texts) for n, r in samples.items()}
    if kind == "pilot_csv":
        from thresher.mixtures.observation_files import MAX_BYTES

        # read_pilot_csv takes a path: a remote table is read from a local copy (errors name the URI)
        with local_copy(spec.proxy["path"], MAX_BYTES, "observation table") as local:
            pilot_runs = read_pilot_csv(local, goal=spec.proxy["goal"])
        missing = [v.name for v in spec.vendors if v.name not in pilot_runs]
        if missing:
            raise InputError(f"{spec.proxy['path']}: no pilot runs for vendors {missing}")
        # Your runs added whole sample rows, duplicates included: their gains are already per row bought.
        return {"proxy": None, "owned_data": np.zeros(1), "pilot_runs": pilot_runs,
                "sample_data": {n: np.zeros(len(r)) for n, r in samples.items()},
                "duplicates": {n: np.zeros(len(r), dtype=bool) for n, r in samples.items()}}
    if kind == "ngram":
        return {"proxy": NgramProxy(data.target.texts, order=spec.proxy["order"]), "pilot_runs": None,
                "owned_data": np.array(data.owned.texts, dtype=object), "duplicates": duplicates,
                "sample_data": {n: np.array(r.texts, dtype=object) for n, r in samples.items()}}
    return {"proxy": ClassifierProxy(feats.target, data.target.labels, model=spec.proxy["model"]), "pilot_runs": None,
            "owned_data": (feats.owned, data.owned.labels), "duplicates": duplicates,
            "sample_data": {n: (feats.vendors[n], samples[n].labels) for n in samples}}


def ot_inputs(spec: Spec, data: SpecData, feats: Features) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(OT settings, embedding sets) for the optional OT second opinion; labels join the cost for the classifier."""
    from thresher.mixtures.transport import EmbeddingSet
    from thresher.mixtures.vendors.ot_value import reduce_set

    if spec.ot is None:
        return None, None
    use_labels = spec.proxy["kind"] == "classifier"
    settings = {k: spec.ot[k] for k in ("solver", "reg", "max_points", "n_boot")}
    settings["label_cost"] = spec.ot["label_cost"] if use_labels else None

    def labels(rows: Rows) -> np.ndarray | None:
        return rows.labels if use_labels else None

    sets = {
        "owned": EmbeddingSet(feats.owned, labels=labels(data.owned), name="owned"),
        "target": reduce_set(feats.target, labels(data.target), spec.ot["max_points"], spec.seed, "target"),
        "vendors": {n: EmbeddingSet(feats.vendors[n], labels=labels(data.samples[n]), name=n) for n in data.samples},
    }
    return settings, sets


def evaluate_spec(spec: Spec, out: Where, log: Log | None = None) -> dict[str, Any]:
    """Load everything the spec names, run the evaluator, and return the report data."""
    from thresher.mixtures.vendors import AcquisitionEvaluator

    log = log or (lambda _: None)
    data = load_data(spec, out, log)
    feats = features(spec, data)
    vendor_offers = offers(spec, data.samples)
    inputs = proxy_inputs(spec, data, feats)
    ot_settings, ot_sets = ot_inputs(spec, data, feats)
    ev = AcquisitionEvaluator(
        budget=spec.budget, min_gain=spec.min_gain, level=spec.level, fractions=spec.proxy["fractions"],
        repeats=spec.proxy["repeats"], max_train=spec.proxy["max_train"], n_boot=spec.evaluation["n_boot"],
        grid_points=spec.evaluation["grid_points"], max_extrapolation=spec.evaluation["max_extrapolation"],
        duplicate_radius=spec.evaluation["duplicate_radius"], ot=ot_settings, seed=spec.seed)
    log(f"evaluating {len(vendor_offers)} vendors against {len(data.owned)} owned rows with the "
        f"{spec.proxy['kind']} proxy")
    ev.fit(inputs["proxy"], inputs["owned_data"], vendor_offers, inputs["sample_data"],
           duplicates=inputs["duplicates"], pilot_runs=inputs["pilot_runs"], owned_embeddings=feats.owned,
           sample_embeddings=feats.vendors, ot_sets=ot_sets)
    result = ev.result_.to_dict()
    result["spec"] = {"name": spec.name, "file": spec.path.name, "currency": spec.currency,
                      "proxy": spec.proxy["kind"], "owned_rows": len(data.owned), "target_rows": len(data.target)}
    if spec.repetition is not None:
        add_repetition(spec, result, vendor_offers)
    for v, offer in zip(result["vendors"], vendor_offers):
        rows = data.samples[v["name"]]
        v.update(revealed=len(rows), rows_read=rows.rows_read, quarantined=len(rows.quarantined),
                 quarantine_file=data.quarantine_files.get(v["name"]), available=offer.available, limit=offer.limit,
                 price=offer.price.to_dict())
    return result


def add_repetition(spec: Spec, result: dict[str, Any], vendor_offers: list) -> None:
    """Utility-law value of each vendor at its evaluated quantity, for a run that repeats data."""
    from thresher.jobs.planning_files import load_pools
    from thresher.mixtures.fitted_law import FORMAT, MISSING
    from thresher.mixtures.fitting import FittedLaw
    from thresher.mixtures.vendors.repetition import repetition_value

    rep = spec.repetition
    try:
        fitted = FittedLaw.from_bytes(read_capped(rep["fit"], FORMAT.max_bytes, FORMAT.what, missing=MISSING),
                                      shown(rep["fit"]))
        pools, unit = load_pools(rep["pools"])
    except (ValueError, OSError, KeyError) as exc:
        raise InputError(f"repetition: {exc}") from None
    for v, offer in zip(result["vendors"], vendor_offers):
        q = v["evaluated_quantity"] * (1.0 - v["duplicate_fraction"])
        unique = q * offer.price.tokens_per_row if unit == "tokens" and offer.price.unit == "token" else q
        try:
            v["repetition"] = repetition_value(fitted, pools, v["name"], unique, rep["budget"], params=rep["params"],
                                               level=spec.level)
        except ValueError as exc:
            raise InputError(f"repetition, vendor {v['name']}: {exc}") from None
