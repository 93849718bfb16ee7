"""The spec kit: typed checks whose errors name the spec file and the key path, for job and vendor specs alike."""
from __future__ import annotations

import math

import pytest

from thresher.jobs.spec_kit import (
    REQUIRED,
    At,
    Required,
    SpecError,
    existing_file,
    fields,
    integer,
    list_of,
    load_yaml,
    number,
    one_of,
    optional,
    section,
    text,
)
from thresher.metrics.errors import InputError

AT = At("spec.yaml")


def _message(check, value, at=AT) -> str:
    with pytest.raises(SpecError) as exc:
        check(at, value)
    return str(exc.value)


def test_key_paths_and_messages_name_the_file_and_the_key():
    at = AT.child("vendors").item(1).child("price").child("unit")
    assert str(at) == "spec.yaml: vendors[1].price.unit"
    assert str(at.error("bad")) == "spec.yaml: vendors[1].price.unit: bad"
    assert str(AT.error("empty")) == "spec.yaml: empty"
    assert isinstance(at.error("x"), InputError)  # exit code 2 at the CLI


def test_numbers_are_finite_and_in_range():
    assert number(0, 1)(AT, 1) == 1.0 and isinstance(number()(AT, 3), float)
    for bad in (math.nan, math.inf, True, "1"):
        assert "must be a finite number" in _message(number(), bad)
    assert _message(number(0, open_lo=True), 0) == "spec.yaml: must be > 0, got 0"
    assert _message(number(hi=0.5), 0.75) == "spec.yaml: must be <= 0.5, got 0.75"


def test_integers_accept_whole_floats_only():
    assert integer(1)(AT, 5.0) == 5 and type(integer()(AT, 5.0)) is int
    assert "must be a whole number, got 2.5" in _message(integer(), 2.5)
    assert "must be >= 2, got 1" in _message(integer(2), 1)
    assert "finite number" in _message(integer(), False)


def test_choices_do_not_confuse_true_with_one():
    assert one_of(1)(AT, 1) == 1 and one_of("a", None)(AT, None) is None
    assert _message(one_of(1), True) == "spec.yaml: must be one of 1, got True"
    assert "must be one of a, null, got 'b'" in _message(one_of("a", None), "b")


def test_lists_check_every_item_at_its_index():
    assert list_of(number())(AT.child("edges"), [1, 2]) == [1.0, 2.0]
    assert _message(list_of(number()), [1, "x"], AT.child("edges")).startswith("spec.yaml: edges[1]: must be a finite")
    assert "must be a non-empty list of pools, got []" in _message(list_of(text, what="pools"), [])
    assert "needs at least 2 items, got 1" in _message(list_of(number(), 2), [1])
    assert "must be a non-empty list" in _message(list_of(text), "abc")  # a string is not a list of characters


def test_fields_refuse_unknown_keys_and_fill_defaults():
    schema = {"method": (one_of("a", "b"), "a"), "edges": (list_of(number()), [0.5]),
              "score": (text, Required("the column to cut")), "where": (optional(text), None)}
    at = AT.child("pools")
    assert _message(section(schema), {"score": "s", "edgez": [1]}, at) == (
        "spec.yaml: pools.edgez: unknown key (known keys of pools: method, edges, score, where)")
    assert _message(section(schema), {}, at) == "spec.yaml: pools.score: is required (the column to cut)"
    first = fields(at, {"score": "s"}, schema)
    assert first == {"method": "a", "edges": [0.5], "score": "s", "where": None}
    first["edges"].append(9.0)  # a caller changing its copy must not change the schema's default
    assert fields(at, {"score": "s"}, schema)["edges"] == [0.5]
    assert fields(at, None, {"k": (text, "v")}) == {"k": "v"}  # an empty section (null in YAML) takes the defaults
    assert "must be a mapping" in _message(section(schema), ["score"], at)
    with pytest.raises(SpecError, match="spec.yaml: pools.k: is required$"):
        fields(at, {}, {"k": (text, REQUIRED)})


def test_files_resolve_against_the_spec_folder(tmp_path):
    (tmp_path / "data.npz").write_bytes(b"")
    at = At(str(tmp_path / "spec.yaml"), "owned[0].path")
    assert existing_file((".npz",))(at, "data.npz") == tmp_path / "data.npz"
    assert "unsupported file type '.csv'; use one of .npz, .npy" in _message(existing_file((".npz", ".npy")), "d.csv", at)
    assert f"no such file: {tmp_path / 'gone.npz'}" in _message(existing_file((".npz",)), "gone.npz", at)
    assert "must be a file path" in _message(existing_file(), 3, at)


def test_yaml_is_loaded_safely_with_line_numbers_and_a_size_cap(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("a: 1\nb: [2\n")
    with pytest.raises(SpecError, match=r"s.yaml: line 3: not valid YAML"):
        load_yaml(path, "job spec", 10_000)
    path.write_text("a: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(SpecError, match="not valid YAML: could not determine a constructor"):
        load_yaml(path, "job spec", 10_000)
    path.write_text("# nothing\n")
    with pytest.raises(SpecError, match="s.yaml: the job spec is empty"):
        load_yaml(path, "job spec", 10_000)
    path.write_text("a: " + "x" * 200 + "\n")
    with pytest.raises(SpecError, match="larger than 100 bytes"):
        load_yaml(path, "vendor spec", 100)
    with pytest.raises(SpecError, match="no such vendor spec"):
        load_yaml(tmp_path / "missing.yaml", "vendor spec", 100)
    path.write_text("a: 1\n")
    assert load_yaml(path, "job spec", 100) == {"a": 1}
