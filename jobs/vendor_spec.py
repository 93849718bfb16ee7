"""The `thresher vendors` spec: YAML in, validated settings out.

The spec is checked with the spec kit (`spec_kit`): every problem is a `SpecError` that
names the file and the key, e.g. `vendors.yaml: vendors[1].price.unit: ...`. The data
files it names (owned pools, target, vendor samples) must exist and have a known type;
they are read later, as untrusted data, by `vendor_rows`.

The spec and the files it names may be local paths or URIs. A relative path in the spec is
relative to the spec's folder, a local one or one in a store; a URI stands for itself.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thresher.jobs.embedding_files import Where, place, shown
from thresher.jobs.spec_kit import (
    REQUIRED,
    At,
    Check,
    Field,
    anything,
    defaults,
    existing_file,
    fields,
    integer,
    list_of,
    load_yaml,
    name,
    number,
    one_of,
    optional,
    section,
    text,
    unique,
)
from thresher.mixtures.vendors.prices import PRICE_UNITS, PriceSchedule, PriceTier
from thresher.pipeline.storage import is_remote

PROXY_KINDS = ("classifier", "ngram", "pilot_csv")
CLASSIFIER_MODELS = ("logistic", "ridge", "knn", "nearest_centroid")
DATA_SUFFIXES = (".jsonl", ".npz", ".npy")
MAX_SPEC_BYTES = 1_000_000


@dataclass
class VendorSpec:
    name: str
    sample: Where
    available: int
    price: PriceSchedule
    max_quantity: int | None = None


@dataclass
class Spec:
    path: Where
    name: str
    budget: float | None
    currency: str
    min_gain: float
    level: float
    seed: int
    owned: list[tuple[str, Where]]
    target: Where
    proxy: dict[str, Any]
    vendors: list[VendorSpec]
    ot: dict[str, Any] | None
    max_file_bytes: int
    max_rows: int
    evaluation: dict[str, Any]
    text: dict[str, Any] = field(default_factory=dict)
    repetition: dict[str, Any] | None = None


def local_file(suffixes: tuple[str, ...], handler: str) -> Check:
    """An existing local file (`existing_file`), for a key whose reader takes local paths only so far."""
    local = existing_file(suffixes)

    def check(at: At, value: Any) -> Path:
        if isinstance(value, str) and (is_remote(value) or (is_remote(at.file) and not os.path.isabs(value))):
            raise at.error(f"{value!r}: this file is read by {handler}, which takes local paths only so far; "
                           "give an absolute local path")
        return local(at, value)

    return check


data_file = existing_file(DATA_SUFFIXES)
json_file = existing_file((".json",))
pools_file = local_file((".json",), "thresher.jobs.planning_files.load_pools")


def _currency(at: At, value: Any) -> str:
    if not isinstance(value, str) or len(value) > 16:
        raise at.error(f"must be a short label such as USD, got {value!r}")
    return value


_POOL: dict[str, Field] = {"name": (optional(name), None), "path": (data_file, REQUIRED)}
_PROXY: dict[str, Field] = {
    "kind": (one_of(*PROXY_KINDS), "classifier"), "model": (one_of(*CLASSIFIER_MODELS), "logistic"),
    "goal": (one_of("min", "max"), "max"), "order": (integer(1, 8), 3), "repeats": (integer(1, 100), 4),
    "max_train": (integer(10), 5000),
    "fractions": (list_of(number(0, 1, open_lo=True), what="numbers in (0, 1]"), [0.25, 0.5, 1.0]),
    "path": (anything, None),  # checked with the kind: only pilot_csv takes it
}
_TIER: dict[str, Field] = {"upto": (optional(number()), None), "amount": (number(0), REQUIRED)}
_PRICE: dict[str, Field] = {
    "unit": (one_of(*PRICE_UNITS), "sample"), "amount": (number(0), None),
    "tiers": (list_of(section(_TIER), what="tiers ({upto, amount})"), None),
}
_VENDOR: dict[str, Field] = {
    "name": (name, REQUIRED), "sample": (data_file, REQUIRED), "available": (integer(0), REQUIRED),
    "max_quantity": (optional(integer(0)), None), "price": (anything, REQUIRED),  # checked with the vendor's name
}
_OT: dict[str, Field] = {
    "solver": (one_of("sinkhorn", "exact", "sliced"), "sinkhorn"), "reg": (number(0, open_lo=True), 0.05),
    "max_points": (integer(10, 4000), 400), "n_boot": (integer(0, 500), 20),
    "label_cost": (one_of("gaussian", "onehot", None), "gaussian"),
}
_LIMITS: dict[str, Field] = {"max_file_mb": (number(0, open_lo=True), 256.0), "max_rows": (integer(1), 200_000)}
_EVAL: dict[str, Field] = {
    "n_boot": (integer(10, 10_000), 300), "grid_points": (integer(2, 200), 24),
    "max_extrapolation": (number(1), 20.0), "duplicate_radius": (number(0), 0.05),
}
_TEXT: dict[str, Field] = {
    "field": (text, "text"), "label_field": (text, "label"), "embedding_field": (text, "embedding"),
    "embedder_dim": (integer(2, 4096), 256),
}
_REPEAT: dict[str, Field] = {
    "fit": (json_file, REQUIRED), "pools": (pools_file, REQUIRED), "budget": (number(0, open_lo=True), REQUIRED),
    "params": (optional(number(0, open_lo=True)), None),
}


def _owned(at: At, value: Any) -> list[tuple[str, Where]]:
    """Owned pools: a list of {name, path}, or one such mapping."""
    pools = list_of(section(_POOL), what="pools ({name, path})")(at, [value] if isinstance(value, Mapping) else value)
    owned = [(p["name"] or f"owned{i}", p["path"]) for i, p in enumerate(pools)]
    unique(at, [n for n, _ in owned], "pool")
    return owned


_TOP: dict[str, Field] = {
    "name": (optional(text), None), "budget": (optional(number(0)), REQUIRED), "currency": (_currency, ""),
    "min_gain": (number(), 0.0), "level": (number(0, 0.999, open_lo=True), 0.9), "seed": (integer(0), 0),
    "owned": (_owned, REQUIRED), "target": (section({"path": (data_file, REQUIRED)}), REQUIRED),
    "proxy": (section(_PROXY), defaults(_PROXY)), "vendors": (list_of(section(_VENDOR), what="vendors"), REQUIRED),
    "ot": (optional(section(_OT)), None), "limits": (section(_LIMITS), defaults(_LIMITS)),
    "evaluation": (section(_EVAL), defaults(_EVAL)), "text": (section(_TEXT), defaults(_TEXT)),
    "repetition": (optional(section(_REPEAT)), None),
}


def _price(at: At, value: Any, vendor: str) -> PriceSchedule:
    """A flat price per sample (a number), or {unit, amount} or {unit, tiers: [{upto, amount}, ...]}."""
    if not isinstance(value, Mapping):
        return PriceSchedule.flat(number(0)(at, value), "sample", name=vendor)
    if ("amount" in value) == ("tiers" in value):
        raise at.error("give exactly one of 'amount' (flat price) or 'tiers'")
    p = fields(at, value, _PRICE)
    if p["amount"] is not None:
        return PriceSchedule.flat(p["amount"], p["unit"], name=vendor)
    tiers = [PriceTier(t["upto"], t["amount"]) for t in p["tiers"]]
    last = 0.0
    for i, t in enumerate(tiers):
        where = at.child("tiers").item(i).child("upto")
        if t.upto is None and i != len(tiers) - 1:
            raise where.error("only the last tier may be open-ended (null)")
        if t.upto is not None:
            if t.upto <= last:
                raise where.error(f"must be > {last:g}, got {t.upto:g}")
            last = t.upto
    if tiers[-1].upto is not None:
        raise at.child("tiers").item(len(tiers) - 1).child("upto").error(
            "the last tier must be open-ended (upto: null)")
    return PriceSchedule(p["unit"], tuple(tiers), 1.0, vendor)


def _vendors(at: At, items: list[dict[str, Any]]) -> list[VendorSpec]:
    vendors = [VendorSpec(name=v["name"], sample=v["sample"], available=v["available"],
                          price=_price(at.item(i).child("price"), v["price"], v["name"]),
                          max_quantity=v["max_quantity"]) for i, v in enumerate(items)]
    unique(at, [v.name for v in vendors], "vendor")
    return vendors


def _proxy(at: At, proxy: dict[str, Any]) -> dict[str, Any]:
    """The proxy settings; `path` (the CSV of your pilot runs) goes with kind pilot_csv only."""
    if proxy["kind"] == "pilot_csv":
        if proxy["path"] is None:
            raise at.child("path").error("is required with kind pilot_csv (the CSV of your pilot runs)")
        proxy["path"] = existing_file()(at.child("path"), proxy["path"])
    elif proxy["path"] is not None:
        raise at.child("path").error("only used with kind: pilot_csv")
    return proxy


def load_spec(path: str | os.PathLike) -> Spec:
    """Parse and validate a spec file (a path or a URI); raises SpecError naming the offending key."""
    path = place(path)
    at = At(shown(path))
    s = fields(at, load_yaml(path, "vendor spec", MAX_SPEC_BYTES), _TOP)
    limits = s["limits"]
    return Spec(path=path, name=s["name"] if s["name"] is not None else Path(path.name).stem, budget=s["budget"],
                currency=s["currency"], min_gain=s["min_gain"], level=s["level"], seed=s["seed"], owned=s["owned"],
                target=s["target"]["path"], proxy=_proxy(at.child("proxy"), s["proxy"]),
                vendors=_vendors(at.child("vendors"), s["vendors"]), ot=s["ot"],
                max_file_bytes=int(limits["max_file_mb"] * 1024 * 1024), max_rows=limits["max_rows"],
                evaluation=s["evaluation"], text=s["text"], repetition=s["repetition"])


