"""`thresher run` with a spec whose input, output and storage settings are on S3: every stage, the same bytes."""
from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

from thresher.jobs.cli import main

WORDS = ("river stone market bridge winter garden letter window harbor meadow lantern orchard candle valley "
         "thunder silver forest school engine ladder violin").split()


def _corpus(root: Path, shards: int = 6, docs: int = 60) -> Path:
    """Documents of mixed quality (clean prose, short scraps, repeated spam), a few near-copies."""
    rng = random.Random(7)
    root.mkdir(parents=True)
    for s in range(shards):
        with open(root / f"s{s}.jsonl", "w") as fh:
            for i in range(docs):
                if i % 9 == 0:
                    text = "click here buy now " * (3 + i % 4)
                elif i % 5 == 0:
                    text = " ".join(rng.choice(WORDS) for _ in range(6))
                else:
                    sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."
                                 for _ in range(rng.randint(4, 9))]
                    text = " ".join(sentences)
                fh.write(json.dumps({"text": text, "source": f"site{s % 3}"}) + "\n")
    return root


def _spec(path: Path, input: str, out: str, storage: dict | None) -> Path:
    spec = {
        "name": "s3-run", "input": input, "out": out, "read": {"carry": ["source"]}, "report": True,
        "score": {"scorers": ["gopher_quality", "gopher_repetition"]},
        "dedupe": {"method": "exact"},
        "pools": {"score": "gopher_alpha_words_ratio", "method": "quantiles", "edges": [0.5], "names": ["low", "high"],
                  "tokens": "gopher_words"},
        "fit": {"law": "goyal", "grid": "small", "max_starts": 4,
                "pilots": {"fractions": [0.25, 0.5, 1.0, 2.0], "holdout": 0.2, "order": 3, "max_docs": 80}},
        "plan": {"budgets": [2000.0, 6000.0]},
        "materialize": {},
    }
    if storage:
        spec["storage"] = storage
    path.write_text(yaml.safe_dump(spec))
    return path


def _data(files: dict[str, bytes]) -> dict[str, bytes]:
    """The data a run writes (Parquet and materialized shards), without scratch."""
    return {k: v for k, v in files.items() if k.endswith((".parquet", ".jsonl.gz")) and "/_work/" not in f"/{k}"}


def test_a_spec_on_s3_runs_every_stage_and_matches_a_local_run(tmp_path, s3_root, s3_server, ray_session, capsys):
    local_in = _corpus(tmp_path / "in")
    for f in sorted(local_in.iterdir()):
        (s3_root / "in" / f.name).write_bytes(f.read_bytes())
    remote = _spec(tmp_path / "remote.yaml", str(s3_root / "in"), str(s3_root / "out"),
                   {"endpoint_override": s3_server.endpoint})
    local = _spec(tmp_path / "local.yaml", str(local_in), str(tmp_path / "out"), None)

    assert main(["run", str(remote), "--quiet"]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert f"summary: {s3_root / 'out' / 'summary.json'}" in printed and "report:" in printed
    assert main(["run", str(local), "--quiet"]) == 0, capsys.readouterr().err

    on_s3 = {e.relative: e.location.read_bytes() for e in (s3_root / "out").files()}
    here = {p.relative_to(tmp_path / "out").as_posix(): p.read_bytes() for p in (tmp_path / "out").rglob("*")
            if p.is_file()}
    assert set(on_s3) == set(here)
    for stage in ("score/", "dedupe/", "pools/", "materialize/"):
        assert any(k.startswith(stage) for k in _data(here)), stage
    assert _data(on_s3) == _data(here)
    summary = json.loads(on_s3["summary.json"])
    assert set(summary["stages"]) == {"score", "dedupe", "pools", "fit", "plan", "materialize"}
    assert summary["plan"]["plans"] and all(p["path"].startswith("s3://") for p in summary["plan"]["plans"].values())
    assert b"<html" in on_s3["report.html"][:200].lower()


def test_corpus_build_writes_its_shards_to_s3(tmp_path, s3_root, s3_server):
    """Text files on this machine, shards on a store: the same bytes as shards on a local disk."""
    tree = tmp_path / "tree"
    (tree / "notes").mkdir(parents=True)
    for i in range(3):
        (tree / "notes" / f"n{i}.txt").write_text(f"Note {i}.\n\nA second paragraph of note {i}.\n")
    store = ["--storage-option", f"endpoint_override={s3_server.endpoint}", "--quiet"]
    assert main(["corpus", "build", "--from", str(tree), "--out", str(s3_root / "shards"), *store]) == 0
    assert main(["corpus", "build", "--from", str(tree), "--out", str(tmp_path / "shards"), "--quiet"]) == 0
    remote = {e.relative: e.location.read_bytes() for e in (s3_root / "shards").files()}
    local = {p.relative_to(tmp_path / "shards").as_posix(): p.read_bytes() for p in (tmp_path / "shards").rglob("*")
             if p.is_file()}
    assert remote and remote == local
