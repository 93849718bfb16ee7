"""The dedupe job: a resumable signature map job, then checkpointed global phases, then per-part outputs.

Layout of the output directory:
    job.json                 what was asked (a rerun with other options is refused)
    signatures/              the map job (its own sidecars, ledger and markers; resumes like `score`)
    _work/<phase>/...        bin files of each global phase and its task markers
    sidecars/<part>.parquet  id, duplicate_of (doc id of the kept representative, null if kept), dup_group
    ledger/<part>.parquet    the input ledger with duplicates marked `duplicate` (of the representative)
    summary.json, stats.json ledger counts; group-size histogram, LSH parameters, pair counts, phase times
A crash redoes only the unfinished tasks of the unfinished phase; every phase's
inputs are files written and marked by the phase before it.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from thresher.metrics.errors import InputError
from thresher.pipeline.dedupe import components, exact, fuzzy, groups, semantic
from thresher.pipeline.dedupe.lsh import choose_bands
from thresher.pipeline.dedupe.phases import bin_name, forget_task, run_phase
from thresher.pipeline.dedupe.stages import EmbedStage, ExactHashStage, MinHashStage
from thresher.pipeline.executor import MapJob, run_map_job
from thresher.pipeline.manifest import (
    RUNTIME,
    as_json,
    complete_parts,
    input_setting,
    job_settings,
    open_manifest,
    read_setting,
)
from thresher.pipeline.outputs import write_json_atomic
from thresher.pipeline.reader import ReadOptions
from thresher.pipeline.shards import DEFAULT_PART_BYTES, DEFAULT_PART_ROWS
from thresher.pipeline.storage import at, place
from thresher.pipeline.tasks import summarize_markers

METHODS = ("exact", "minhash", "semantic")
DEFAULT_THRESHOLD = {"minhash": 0.8, "semantic": 0.95, "exact": None}
MAX_ROUNDS = 64


class DedupeError(InputError):
    """Bad dedupe options or input: the message says what to change."""


@dataclass
class DedupeJob:
    """What to deduplicate and how; see `run_dedupe`.

    Fields marked `RUNTIME` change how the job runs, not what it writes; every other
    field is part of the fingerprint a rerun must match.
    """

    input: str
    out_dir: Path = field(metadata=RUNTIME)
    method: str = "minhash"
    threshold: float | None = None  # minhash: Jaccard; semantic: cosine similarity (1 - eps)
    num_perm: int = 128
    ngram: int = 5
    bands: int | None = None
    rows: int | None = None
    verify: bool = True
    keep_by: str | None = None
    seed: int = 1
    bins: int | None = None
    clusters: int | None = None
    sample: int = 50_000
    embedder: str = "hashing"
    dim: int = 256
    read: ReadOptions = field(default_factory=ReadOptions)
    part_bytes: int = DEFAULT_PART_BYTES
    part_rows: int = DEFAULT_PART_ROWS
    batch_rows: int = field(default=4096, metadata=RUNTIME)
    workers: int | None = field(default=None, metadata=RUNTIME)
    address: str | None = field(default=None, metadata=RUNTIME)
    quiet: bool = field(default=True, metadata=RUNTIME)
    # tests and drills: the signature phase dies midway, or the global phases die after this one
    stop_after_parts: int | None = field(default=None, metadata=RUNTIME)
    stop_after_phase: str | None = field(default=None, metadata=RUNTIME)

    def validate(self) -> None:
        if self.method not in METHODS:
            raise DedupeError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.threshold is None:
            self.threshold = DEFAULT_THRESHOLD[self.method]
        if self.method != "exact" and not 0.0 < float(self.threshold) < 1.0:
            raise DedupeError(f"--threshold must be in (0, 1), got {self.threshold}")
        if self.num_perm < 2 or self.ngram < 1:
            raise DedupeError(f"need --num-perm >= 2 and --ngram >= 1, got {self.num_perm} and {self.ngram}")
        if (self.bands is None) != (self.rows is None):
            raise DedupeError("give both bands and rows, or neither (they are then chosen from the threshold)")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise DedupeError(f"bands x rows = {self.bands * self.rows} exceeds --num-perm {self.num_perm}")
        if self.bins is not None and self.bins < 1:
            raise DedupeError(f"bins must be positive, got {self.bins}")
        if self.clusters is not None and self.clusters < 1:
            raise DedupeError(f"clusters must be positive, got {self.clusters}")


def lsh_params(job: DedupeJob) -> tuple[int, int]:
    if job.bands is not None:
        return int(job.bands), int(job.rows)
    # verification removes false positives exactly, so the candidate curve leans towards recall
    weights = (0.05, 0.95) if job.verify else (0.5, 0.5)
    p = choose_bands(float(job.threshold), job.num_perm, *weights)
    return p.bands, p.rows


def _resolve_input(job: DedupeJob) -> tuple[str, ReadOptions, int, int, Path | None]:
    """A `thresher score` output stands for its input; its sidecars then provide --keep-by columns."""
    path = place(job.input)
    manifest = path / "job.json"
    if path.is_dir() and manifest.exists():
        spec = json.loads(manifest.read_text())
        fp = spec.get("fingerprint", {})
        if fp.get("kind") != "score" or "read" not in spec:
            raise DedupeError(f"{path}: job.json is not from `thresher score`; pass raw shards or a score output")
        read = dict(spec["read"])
        read["carry"] = tuple(read.get("carry", ()))
        return spec["input"], ReadOptions(**read), int(fp["part_bytes"]), int(fp["part_rows"]), path
    read = job.read
    if job.keep_by and job.keep_by not in read.carry:
        read = ReadOptions(**{**asdict(read), "carry": tuple(read.carry) + (job.keep_by,)})
    return job.input, read, job.part_bytes, job.part_rows, None


def _stage(job: DedupeJob, bands: int, rows: int):
    if job.method == "exact":
        return ExactHashStage()
    if job.method == "minhash":
        return MinHashStage(job.num_perm, job.ngram, bands, rows, job.seed)
    return EmbedStage(job.embedder, job.dim)


def fingerprint(job: DedupeJob, src: str, read: ReadOptions, part_bytes: int, part_rows: int, score_dir: Path | None,
                bands: int, rows: int) -> dict:
    """The job's settings with the input resolved (a score output stands for its input) and LSH bands chosen."""
    settings = job_settings(job)
    settings.update(input=input_setting(src), read=read_setting(read), part_bytes=part_bytes, part_rows=part_rows,
                    score_dir=str(score_dir.resolve()) if score_dir else None, bands=bands, rows=rows)
    return as_json(settings)


def _plan(work: Path, docs: int, job: DedupeJob) -> dict:
    """Bin and cluster counts, fixed at the first run so a resumed run reads the same bins."""
    path = work / "plan.json"
    if path.exists():
        return json.loads(path.read_text())
    plan = {
        "bins": int(job.bins or min(4096, max(4, math.ceil(docs / 50_000)))),
        "clusters": int(job.clusters or max(1, math.ceil(docs / 1000))),
    }
    write_json_atomic(plan, path)
    return plan


class _Phases:
    """Runs named phases in order, records their times, and honours stop_after_phase."""

    def __init__(self, job: DedupeJob, work: Path, ctx: dict, workers: int):
        self.job, self.work, self.ctx, self.workers = job, work, ctx, workers
        self.stats: dict[str, dict] = {}

    def run(self, name: str, keys: list[str], fn, **kwargs) -> list[dict]:
        t0 = time.perf_counter()
        markers = run_phase(self.work, name, keys, fn, {"ctx": self.ctx, **kwargs}, self.workers, self.job.quiet)
        self.stats[name] = {"tasks": len(keys), "wall_seconds": round(time.perf_counter() - t0, 3),
                            "task_seconds": round(sum(m.get("seconds", 0.0) for m in markers), 3)}
        if self.job.stop_after_phase == name:
            raise RuntimeError(f"stopped after phase {name} (stop_after_phase); rerun to resume")
        return markers


def _components(ph: _Phases, bins: list[str]) -> int:
    """Large-star / small-star rounds until a round leaves the graph unchanged; returns the last round."""
    cc = str(place(ph.ctx["work"]) / "cc")
    last = None
    for r in range(1, MAX_ROUNDS + 1):
        ph.run(f"cc-r{r:03d}-large", bins, components.large_star, cc=cc, r=r, n_bins=ph.ctx["bins"])
        ss = ph.run(f"cc-r{r:03d}-small", bins, components.small_star, cc=cc, r=r, n_bins=ph.ctx["bins"])
        state = (sum(m["edges"] for m in ss), sum(m["checksum"] for m in ss) % (1 << 64))
        if state == last:
            return r + 1
        last = state
    raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")


def _check_keep_by(job: DedupeJob, score_dir: Path | None) -> None:
    """--keep-by must name a column of the score output's sidecars, checked before any work."""
    if not job.keep_by or score_dir is None:
        return
    import pyarrow.parquet as pq

    side = score_dir / "sidecars"
    first = next((e.location for e in at(side).files() if e.relative.endswith(".parquet")), None) if side.is_dir() else None
    if first is None:
        names = []
    else:
        with first.open_native() as fh:
            names = pq.read_schema(fh).names
    if job.keep_by not in names:
        raise DedupeError(f"--keep-by {job.keep_by!r} is not a column of {side} (columns: {', '.join(names)})")


def _signatures(job: DedupeJob, out: Path, src: str, read: ReadOptions, part_bytes: int, part_rows: int,
                score_dir: Path | None, bands: int, rows: int) -> tuple[dict, dict, float]:
    """The map phase: one signature (or hash, or embedding) per document; (summary, its manifest, seconds)."""
    sig_dir = out / "signatures"
    map_job = MapJob(input=src, out_dir=sig_dir, stages=[_stage(job, bands, rows)], read=read, part_bytes=part_bytes,
                     part_rows=part_rows, batch_rows=job.batch_rows, workers=job.workers, address=job.address,
                     quiet=job.quiet, kind=f"dedupe-{job.method}", stop_after_parts=job.stop_after_parts)
    t0 = time.perf_counter()
    sig_summary = run_map_job(map_job)
    seconds = time.perf_counter() - t0
    manifest = json.loads((sig_dir / "job.json").read_text())
    if score_dir is not None:
        score_parts = json.loads((score_dir / "job.json").read_text())["parts"]
        if score_parts != manifest["parts"]:
            raise DedupeError(f"{score_dir}: its parts differ from the input's now; was the input changed?")
    return sig_summary, manifest, seconds


def _method_phases(job: DedupeJob, ph: _Phases, parts: list[str], bins: list[str]) -> tuple[list[dict], dict]:
    """The global phases of the chosen method, up to duplicate groups; (group markers, extra stats)."""
    extra: dict = {}
    group_markers: list[dict] = []
    if job.method == "exact":
        ph.run("exact-hashes", parts, exact.hashes_task)
        group_markers = ph.run("exact-groups", bins, exact.groups_task)
    elif job.method == "minhash":
        ph.run("bands", parts, fuzzy.bands_task)
        bm = ph.run("buckets", bins, fuzzy.buckets_task)
        extra["candidate_pairs"] = sum(m["pairs"] for m in bm)
        extra["largest_bucket"] = max((m["largest_bucket"] for m in bm), default=0)
        if job.verify:
            ph.run("shingles", parts, fuzzy.shingles_task)
            vm = ph.run("verify", parts, fuzzy.verify_task)
            extra["verified_pairs"] = sum(m["verified"] for m in vm)
        edges = extra["verified_pairs"] if job.verify else extra["candidate_pairs"]
        if edges:
            rounds = _components(ph, bins)
            extra["component_rounds"] = rounds - 1
            ph.run("labels", bins, groups.labels_task, rounds=rounds)
            if job.keep_by:
                ph.run("scores", parts, groups.attach_scores_task)
            group_markers = ph.run("groups", bins, groups.groups_task)
    else:
        fit = ph.run("semantic-fit", [bin_name(0)], semantic.fit_task)
        extra["clusters"] = fit[0].get("clusters", 0)
        extra["kmeans_sample"] = fit[0].get("sample", 0)
        if extra["clusters"]:
            ph.run("semantic-assign", parts, semantic.assign_task)
            group_markers = ph.run("semantic-within", bins, semantic.within_task)
    return group_markers, extra


def _group_sizes(group_markers: list[dict], docs: int) -> dict[int, int]:
    """Group size -> number of groups, documents in no group counted as groups of one."""
    hist = groups.merge_histograms(group_markers)
    in_groups = sum(size * n for size, n in hist.items())
    if docs - in_groups > 0:
        hist[1] = hist.get(1, 0) + docs - in_groups
    return {k: hist[k] for k in sorted(hist)}


def _params(job: DedupeJob, bands: int, rows: int) -> dict:
    """The settings the summary and stats report for the chosen method."""
    params = {"method": job.method, "threshold": job.threshold, "keep_by": job.keep_by}
    if job.method == "minhash":
        params.update({"num_perm": job.num_perm, "ngram": job.ngram, "bands": bands, "rows": rows, "verify": job.verify})
    if job.method == "semantic":
        params.update({"embedder": job.embedder, "dim": job.dim})
    return params


def run_dedupe(job: DedupeJob) -> dict:
    """Run (or resume) a dedupe job; returns the summary (also written to summary.json)."""
    job.validate()
    out = place(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    src, read, part_bytes, part_rows, score_dir = _resolve_input(job)
    _check_keep_by(job, score_dir)
    bands, rows = lsh_params(job) if job.method == "minhash" else (0, 0)
    open_manifest(out, {"fingerprint": fingerprint(job, src, read, part_bytes, part_rows, score_dir, bands, rows),
                        "kind": "dedupe"}, what="dedupe job")
    sig_summary, manifest, signature_seconds = _signatures(job, out, src, read, part_bytes, part_rows, score_dir, bands, rows)
    part_keys = manifest["parts"]

    from thresher.pipeline.cluster import cluster_cpus, ensure_ray

    ensure_ray(job.address, quiet=job.quiet)
    work = out / "_work"
    docs = int(sig_summary["ledger"]["kept"])
    plan = _plan(work, docs, job)
    ctx = {
        "out": str(out), "work": str(work), "sig_dir": str(out / "signatures"),
        "score_dir": str(score_dir) if score_dir else None, "base_dir": str(score_dir or out / "signatures"),
        "parts": part_keys, "part_specs": [json.dumps(p, sort_keys=True) for p in manifest["part_specs"]],
        "read": asdict(read), "keep_by": job.keep_by, "bins": plan["bins"], "method": job.method,
        "threshold": job.threshold, "ngram": job.ngram, "lsh_bands": bands, "verify": job.verify, "docs": docs,
        "seed": job.seed, "clusters": plan["clusters"], "sample": job.sample,
    }
    ph = _Phases(job, work, ctx, job.workers or cluster_cpus())
    parts = [groups.pkey(i) for i in range(len(part_keys))]
    intact = complete_parts(out, part_keys)  # a finished part whose outputs were damaged since is finished again
    for task, key in zip(parts, part_keys):
        if key not in intact:
            forget_task(work, "finish", task)
    group_markers, extra = _method_phases(job, ph, parts, [bin_name(k) for k in range(plan["bins"])])
    ph.run("rep-ids", parts, groups.rep_ids_task)
    ph.run("finish", parts, groups.finish_task)

    from thresher.pipeline.outputs import read_marker

    markers = [read_marker(out, k) for k in part_keys]
    hist = _group_sizes(group_markers, docs)
    params = _params(job, bands, rows)
    wall = time.perf_counter() - t_start
    summary = summarize_markers(out, markers, {
        **params, "documents": docs, "groups": sum(n for s, n in hist.items() if s > 1),
        "wall_seconds": round(wall, 3), "docs_per_second": round(docs / wall, 1) if wall > 0 else None,
    })
    stats = {"params": params, "group_sizes": {str(k): n for k, n in hist.items()}, **extra, "bins": plan["bins"],
             "signature": {"wall_seconds": round(signature_seconds, 3), "parts": sig_summary["parts"],
                           "parts_skipped_as_complete": sig_summary["parts_skipped_as_complete"]},
             "phases": ph.stats}
    write_json_atomic(stats, out / "stats.json")
    summary["stats"] = stats
    return summary
