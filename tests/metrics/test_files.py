"""The one atomic writer and the format checks every model, plan and pools file goes through."""
from __future__ import annotations

import errno
import os

import pytest

from thresher.metrics.files import (
    FormatError,
    JsonFormat,
    MissingFile,
    WriteError,
    read_limited,
    write_atomic,
    write_bytes_atomic,
)

PLAN = JsonFormat("thresher.test_plan", 1, "test plan", max_bytes=200, legacy=True)
MODEL = JsonFormat("thresher.test_model", 1, "test model", max_bytes=200, version_field=True)


def test_atomic_write_replaces_whole_and_cleans_up_after_a_failure(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "f.bin"
    write_bytes_atomic(b"one", target)
    write_bytes_atomic(b"two", target)
    assert target.read_bytes() == b"two" and os.listdir(target.parent) == ["f.bin"]

    def half(tmp):
        tmp.write_bytes(b"x")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(WriteError, match=r"cannot write .*f\.bin: No space left on device \(the disk is full"):
        write_atomic(target, half)
    assert target.read_bytes() == b"two" and os.listdir(target.parent) == ["f.bin"]


def test_reads_stop_at_the_limit_and_name_the_file(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(b" " * 201)
    with pytest.raises(FormatError, match=r"big\.json: 201 bytes is over the 200 bytes limit for test plan files"):
        PLAN.load(path)
    assert read_limited(path, 201, "test plan") == b" " * 201
    with pytest.raises(MissingFile, match=r"nope\.json: no such test plan file; make one") as err:
        PLAN.load(tmp_path / "nope.json", missing="make one")
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    "fmt,doc,match",
    [
        (PLAN, '{"format": "thresher.test_plan/2"}', r"f\.json: test plan format version '2' is not one this Thresher reads"),
        (PLAN, '{"format": "thresher.other/1"}', r"f\.json: not a test plan \(format 'thresher.other/1'"),
        (PLAN, "[1, 2]", r"f\.json: not a test plan \(expected a JSON object, got list\)"),
        (PLAN, "{", r"f\.json: not JSON"),
        (MODEL, '{"format": "thresher.test_model", "version": 3}', r"f\.json: test model format version 3"),
        (MODEL, '{"budget": 1}', r"f\.json: not a test model \(format None"),
    ],
)
def test_format_and_version_are_checked(tmp_path, fmt, doc, match):
    path = tmp_path / "f.json"
    path.write_text(doc)
    with pytest.raises(FormatError, match=match):
        fmt.load(path)


def test_stamps_and_legacy_files(tmp_path):
    assert PLAN.stamp() == {"format": "thresher.test_plan/1"}
    assert MODEL.stamp() == {"format": "thresher.test_model", "version": 1}
    path = tmp_path / "old.json"
    path.write_text('{"budget": 1}')  # written before the format field existed
    assert PLAN.load(path) == {"budget": 1}
    path.write_text('{"format": "thresher.test_model", "version": 1, "x": 2}')
    assert MODEL.load(path)["x"] == 2


def test_a_format_error_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(FormatError("a.json", "not a plan")))
    assert str(err) == "a.json: not a plan" and isinstance(err, ValueError)
