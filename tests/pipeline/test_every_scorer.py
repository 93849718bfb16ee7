"""Every registered scorer, end to end through `thresher score`, under both engines.

No scorer is covered only by unit tests: each runs in Ray workers (tasks, and Ray
Data with actor pools), its sidecar columns have the types it declares, its values
equal the scorer run on the same texts in this process, and both engines write the
same bytes.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from tests.conftest import tree_bytes
from tests.pipeline.model_files import classifier_model, fluency_model, write_corpus
from thresher.jobs.cli import main
from thresher.pipeline.registry import make_scorer, scorer_names
from thresher.pipeline.shards import iter_documents

ENGINES = ("tasks", "data")


def option_args(options: dict[str, dict[str, str]]) -> list[str]:
    return [a for name, kv in options.items() for k, v in kv.items() for a in ("--scorer-option", f"{name}.{k}={v}")]


def score(inp: Path, out: Path, names: list[str], options: dict, engine: str) -> None:
    argv = ["score", str(inp), "--out", str(out), "--scorers", ",".join(names), *option_args(options),
            "--engine", engine, "--carry", "source", "--quiet"]
    assert main(argv) == 0, f"thresher {' '.join(argv)} failed"


@pytest.fixture(scope="module")
def every(tmp_path_factory, ray_session):
    root = tmp_path_factory.mktemp("every_scorer")
    write_corpus(root / "in")
    options = {"fluency": {"model": fluency_model(root / "ref.npz")},
               "classifier": {"model": classifier_model(root / "quality.json")}}
    names = scorer_names()
    for engine in ENGINES:
        score(root / "in", root / engine, names, options, engine)
    return {"root": root, "names": names, "options": options}


def sidecars(out: Path) -> pa.Table:
    return pads.dataset(out / "sidecars", format="parquet").to_table()


@pytest.mark.parametrize("engine", ENGINES)
def test_every_registered_scorer_writes_the_columns_and_types_it_declares(every, engine):
    stages = [make_scorer(n, **every["options"].get(n, {})) for n in every["names"]]
    table = sidecars(every["root"] / engine)
    expected = pa.schema([pa.field("id", pa.string()), pa.field("source", pa.string())]
                         + [f for s in stages for f in s.output_schema()])
    assert table.schema.remove_metadata() == expected
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 256)  # the type that used to be lost
    assert {"fluency", "classifier", "embedding", "langid", "c4"} <= set(every["names"])
    summary = json.loads((every["root"] / engine / "summary.json").read_text())
    assert summary["ledger"]["malformed"] == 1 and summary["ledger"]["kept"] == table.num_rows


@pytest.mark.parametrize("engine", ENGINES)
def test_sidecar_values_equal_each_scorer_run_on_the_same_texts(every, engine):
    table = sidecars(every["root"] / engine)
    docs = pa.concat_tables(list(iter_documents(every["root"] / "in")))
    order = pa.compute.index_in(table["id"], value_set=docs["id"])
    batch = pa.table({"id": table["id"], "text": docs["text"].take(order)})
    for name in every["names"]:
        stage = make_scorer(name, **every["options"].get(name, {}))
        want = stage.run_checked(batch)
        for col in want.column_names:
            got, ref = table[col].combine_chunks(), want[col].combine_chunks()
            assert got.null_count == ref.null_count, f"{name}.{col}"
            if pa.types.is_floating(ref.type) or pa.types.is_fixed_size_list(ref.type):
                flat = (lambda a: a.flatten()) if pa.types.is_fixed_size_list(ref.type) else (lambda a: a)
                assert np.allclose(flat(got).to_numpy(zero_copy_only=False), flat(ref).to_numpy(zero_copy_only=False),
                                   rtol=1e-12, atol=0, equal_nan=True), f"{name}.{col}"
            else:
                assert got.equals(ref), f"{name}.{col}"


def test_both_engines_write_identical_bytes_for_every_scorer(every):
    tasks, data = every["root"] / "tasks", every["root"] / "data"
    assert tree_bytes(tasks) and tree_bytes(tasks) == tree_bytes(data)
    hashes = [json.loads((d / "summary.json").read_text())["content_hash"] for d in (tasks, data)]
    assert hashes[0] == hashes[1]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_weight_loading_embedder_alone(tmp_path, ray_session, engine):
    pytest.importorskip("wordllama", reason="optional: pip install wordllama")
    write_corpus(tmp_path / "in", n_files=2)
    score(tmp_path / "in", tmp_path / "out", ["embedding"], {"embedding": {"embedder": "wordllama", "dim": "64"}}, engine)
    table = sidecars(tmp_path / "out")
    assert table.column_names == ["id", "source", "embedding"]
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 64)
    vectors = np.asarray(table["embedding"].combine_chunks().flatten(), np.float32).reshape(-1, 64)
    norms = np.linalg.norm(vectors, axis=1)
    assert np.all((np.abs(norms - 1) < 1e-4) | (norms == 0)) and (norms > 0).sum() >= table.num_rows - 2
