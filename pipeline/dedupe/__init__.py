"""Deduplication at scale: exact hashes, MinHash-LSH near-duplicates and semantic (SemDeDup) groups.

`run_dedupe(DedupeJob(...))` runs a resumable signature map job, then global
phases as checkpointed Ray tasks, and writes sidecars with `duplicate_of` and a
ledger that marks duplicates.
"""
from thresher.pipeline.dedupe.job import METHODS, DedupeError, DedupeJob, run_dedupe
from thresher.pipeline.dedupe.lsh import LSHParams, choose_bands
from thresher.pipeline.dedupe.minhash import MinHasher, band_keys, estimate_jaccard, text_signatures
from thresher.pipeline.dedupe.shingles import shingle_sets, shingles

__all__ = ["METHODS", "DedupeError", "DedupeJob", "run_dedupe", "LSHParams", "choose_bands", "MinHasher", "band_keys",
           "estimate_jaccard", "text_signatures", "shingle_sets", "shingles"]
