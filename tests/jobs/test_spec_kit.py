"""The spec kit: typed checks whose errors name the spec file and the key path, for job and vendor specs alike."""
from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import yaml

from thresher.jobs.cli import main
from thresher.jobs.spec_kit import (
    MAX_YAML_DEPTH,
    MAX_YAML_TEXT,
    MAX_YAML_VALUES,
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
from thresher.pipeline.safety import MAX_SPEC_BYTES

AT = At("spec.yaml")
EXAMPLES = Path(__file__).resolve().parents[2] / "jobs" / "examples"


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


def _laughs(levels: int = 9, width: int = 9) -> str:
    """The "billion laughs" spec: each level repeats the one before `width` times (9**9 values from 396 bytes)."""
    lines = [f"l0: &l0 [{','.join('x' * width)}]"]
    lines += [f"l{i}: &l{i} [{','.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _refusal(path, max_bytes: int = MAX_SPEC_BYTES) -> str:
    with pytest.raises(SpecError) as exc:
        load_yaml(path, "job spec", max_bytes)
    assert isinstance(exc.value, InputError) and "\n" not in str(exc.value)
    return str(exc.value)


def test_yaml_aliases_cannot_expand_a_small_spec_into_a_huge_one(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(_laughs())
    assert path.stat().st_size < 500
    t0 = time.perf_counter()
    assert _refusal(path) == (f"{path}: expands to more than {MAX_YAML_VALUES:,} values (YAML aliases nested too "
                              "deeply); a job spec holds settings, data belongs in separate files")
    assert time.perf_counter() - t0 < 1.0  # refused from the composed graph, nothing is expanded
    # the count is exact: every scalar, list, mapping and key is one value, each alias counts its whole value again
    words = MAX_YAML_VALUES - 1 - 1000 - 1
    path.write_text("- &w [" + ",".join("x" * 999) + "]\n- [" + ",".join(["*w"] * (words // 1000)) + "]\n"
                    + "- x\n" * (words % 1000))
    data = load_yaml(path, "job spec", MAX_SPEC_BYTES)
    assert len(data) == 2 + words % 1000 and len(data[1]) == words // 1000 and data[1][0] is data[0]
    path.write_text(path.read_text() + "- x\n")
    assert f"expands to more than {MAX_YAML_VALUES:,} values" in _refusal(path)
    # a long string repeated through aliases is bounded by its bytes, not by its count
    path.write_text(f"a: &a '{'x' * 1000}'\n" + _laughs(levels=6, width=10).replace("[x,x,x,x,x,x,x,x,x,x]", "[*a]"))
    assert f"expands to more than {MAX_YAML_TEXT:,} bytes of text (YAML aliases repeat long strings)" in _refusal(path)
    path.write_text("a: &a [1, *a]\n")  # a list that holds itself: endless when written out
    assert _refusal(path) == (f"{path}: line 1: a YAML alias refers back to the value that holds it (an endless "
                              "structure); a job spec holds plain nested settings")


def test_deeply_nested_yaml_is_refused_before_python_recursion_runs_out(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("[" * 100_000)
    assert _refusal(path) == (f"{path}: line 1: nested more than {MAX_YAML_DEPTH} levels deep; a job spec holds "
                              "settings, not deeply nested data")
    path.write_text("a:\n" + "".join(" " * i + "-\n" for i in range(1, 1000)))  # block style, one level a line
    assert f"line {MAX_YAML_DEPTH + 1}: nested more than {MAX_YAML_DEPTH} levels deep" in _refusal(path)
    path.write_text("[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH)  # the limit itself is fine
    data = load_yaml(path, "job spec", MAX_SPEC_BYTES)
    for _ in range(MAX_YAML_DEPTH - 1):
        (data,) = data
    assert data == []
    path.write_text("[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1))
    assert "line 1: nested more than" in _refusal(path)
    # aliases cannot stack nesting past the limit either: each half is under it, together they are not
    half = MAX_YAML_DEPTH // 2 + 1
    path.write_text(f"a: &a {'[' * half}1{']' * half}\nb: {'[' * half}*a{']' * half}\n")
    assert f"nested more than {MAX_YAML_DEPTH} levels deep once YAML aliases are expanded" in _refusal(path)


def test_aliases_and_nesting_used_normally_load_as_before(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("defaults: &d {min_words: 50, max_words: 100000}\n"
                    "score:\n  scorers: &s [gopher_quality, c4]\n"
                    "  options:\n    gopher_quality: {<<: *d, max_words: 5000}\n    c4: *d\n"
                    "pools: {names: *s, edges: [0.5]}\n")
    text = path.read_text()
    assert load_yaml(path, "job spec", MAX_SPEC_BYTES) == yaml.safe_load(text) == {
        "defaults": {"min_words": 50, "max_words": 100000},
        "score": {"scorers": ["gopher_quality", "c4"],
                  "options": {"gopher_quality": {"min_words": 50, "max_words": 5000},
                              "c4": {"min_words": 50, "max_words": 100000}}},
        "pools": {"names": ["gopher_quality", "c4"], "edges": [0.5]}}
    for example in sorted(EXAMPLES.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(example.read_text()) if d is not None]
        if len(docs) == 1:  # rayjob.yaml is a Kubernetes manifest of several documents, not a spec
            assert load_yaml(example, "job spec", MAX_SPEC_BYTES) == docs[0]
    assert MAX_YAML_DEPTH >= 16 and MAX_YAML_VALUES >= 1_000_000  # far beyond any real spec


def _run_spec(tmp_path, options: str) -> str:
    """A job spec that would run (one fit stage), with `options` as its fit options."""
    (tmp_path / "runs.csv").write_text("run,seen,value\nr1,100,2.5\n")
    return f"out: out\nreport: false\nfit:\n  observations: runs.csv\n  options: {options}\n"


@pytest.mark.parametrize("options, message", ids=["deep", "recursive", "laughs"], argvalues=[
    ("[" * 100_000, f"nested more than {MAX_YAML_DEPTH} levels deep"),
    ("&o {again: *o}", "a YAML alias refers back to the value that holds it"),
    ("\n" + "".join("    " + line + "\n" for line in _laughs().splitlines()),
     f"expands to more than {MAX_YAML_VALUES:,} values"),
])
def test_thresher_run_refuses_a_yaml_bomb_in_one_line(tmp_path, capsys, options, message):
    spec = tmp_path / "job.yaml"
    spec.write_text(_run_spec(tmp_path, options))
    assert main(["run", str(spec)]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith(f"thresher run: error: {spec}: ") and message in captured.err
    assert not (tmp_path / "out").exists()  # refused before anything is written
