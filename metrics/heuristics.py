"""Gopher quality, Gopher repetition and C4 rules, vectorised over a batch.

Each rule set returns its raw statistics as columns plus `<set>_pass` and
`<set>_reason` (the first failing rule, in the published order; null when the
document passes), so users can re-threshold without re-scoring. Thresholds are
the published ones (Rae et al. 2021, Table A1; Raffel et al. 2020 for C4).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.metrics.text_arrays import (
    HAS_LETTER,
    SYMBOL_ONLY,
    as_string_array,
    doc_count,
    doc_sum,
    flatten,
    split_lines,
    words,
)

_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xC2B2AE3D27D4EB4F)


def _first_reason(checks: list[tuple[str, np.ndarray]], n: int) -> tuple[np.ndarray, pa.Array]:
    reason = np.full(n, None, dtype=object)
    undecided = np.ones(n, dtype=bool)
    for name, failed in checks:
        hit = undecided & failed
        reason[hit] = name
        undecided &= ~hit
    return undecided, pa.array(reason.tolist(), pa.string())


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), 0.0)


def _bool(a) -> np.ndarray:
    return np.asarray(a.to_numpy(zero_copy_only=False), dtype=bool)


# ---------------------------------------------------------------- Gopher quality


@dataclass(frozen=True)
class GopherQualityRules:
    min_doc_words: int = 50
    max_doc_words: int = 100_000
    min_mean_word_length: float = 3.0
    max_mean_word_length: float = 10.0
    max_symbol_word_ratio: float = 0.1
    max_bullet_lines_ratio: float = 0.9
    max_ellipsis_lines_ratio: float = 0.3
    min_alpha_words_ratio: float = 0.8
    min_stop_words: int = 2
    stop_words: tuple[str, ...] = ("the", "be", "to", "of", "and", "that", "have", "with")


GOPHER_QUALITY_COLUMNS: dict[str, pa.DataType] = {
    "gopher_words": pa.int64(),
    "gopher_mean_word_length": pa.float64(),
    "gopher_hash_ratio": pa.float64(),
    "gopher_ellipsis_ratio": pa.float64(),
    "gopher_bullet_lines_ratio": pa.float64(),
    "gopher_ellipsis_lines_ratio": pa.float64(),
    "gopher_alpha_words_ratio": pa.float64(),
    "gopher_stop_words": pa.int64(),
    "gopher_quality_pass": pa.bool_(),
    "gopher_quality_reason": pa.string(),
}


def gopher_quality(texts, rules: GopherQualityRules = GopherQualityRules()) -> pa.Table:
    t = as_string_array(texts)
    n = len(t)
    tokens, parents = words(t)
    n_tokens = np.bincount(parents, minlength=n).astype(np.int64)
    symbol = _bool(pc.match_substring_regex(tokens, SYMBOL_ONLY))
    lengths = pc.utf8_length(tokens).to_numpy(zero_copy_only=False).astype(np.float64)
    n_words = doc_count(~symbol, parents, n)
    mean_len = _ratio(doc_sum(np.where(symbol, 0.0, lengths), parents, n), n_words)
    hashes = pc.count_substring(t, "#").to_numpy(zero_copy_only=False)
    ellipses = (pc.count_substring(t, "...").to_numpy(zero_copy_only=False)
                + pc.count_substring(t, "…").to_numpy(zero_copy_only=False))
    hash_ratio = _ratio(hashes, n_tokens)
    ellipsis_ratio = _ratio(ellipses, n_tokens)

    lines, lparents = flatten(split_lines(t))
    n_lines = np.bincount(lparents, minlength=n)
    left = pc.utf8_ltrim_whitespace(lines)
    bullet = _bool(pc.or_(pc.starts_with(left, "•"), pc.starts_with(left, "-")))
    right = pc.utf8_rtrim_whitespace(lines)
    ell_line = _bool(pc.or_(pc.ends_with(right, "..."), pc.ends_with(right, "…")))
    bullet_ratio = _ratio(doc_count(bullet, lparents, n), n_lines)
    ell_lines_ratio = _ratio(doc_count(ell_line, lparents, n), n_lines)

    alpha = _bool(pc.match_substring_regex(tokens, HAS_LETTER))
    alpha_ratio = _ratio(doc_count(alpha, parents, n), n_tokens)

    stop_idx = pc.index_in(tokens, value_set=pa.array(list(rules.stop_words), pa.string()))
    found = pc.is_valid(stop_idx).to_numpy(zero_copy_only=False)
    if found.any():
        k = len(rules.stop_words)
        pairs = np.unique(parents[found] * k + stop_idx.to_numpy(zero_copy_only=False)[found].astype(np.int64))
        stop_count = np.bincount(pairs // k, minlength=n).astype(np.int64)
    else:
        stop_count = np.zeros(n, dtype=np.int64)

    checks = [
        ("short_doc", n_words < rules.min_doc_words),
        ("long_doc", n_words > rules.max_doc_words),
        ("mean_word_length_low", mean_len < rules.min_mean_word_length),
        ("mean_word_length_high", mean_len > rules.max_mean_word_length),
        ("too_many_hashes", hash_ratio > rules.max_symbol_word_ratio),
        ("too_many_ellipses", ellipsis_ratio > rules.max_symbol_word_ratio),
        ("too_many_bullet_lines", bullet_ratio > rules.max_bullet_lines_ratio),
        ("too_many_ellipsis_lines", ell_lines_ratio > rules.max_ellipsis_lines_ratio),
        ("too_few_alpha_words", alpha_ratio < rules.min_alpha_words_ratio),
        ("too_few_stop_words", stop_count < rules.min_stop_words),
    ]
    passed, reason = _first_reason(checks, n)
    cols = [n_words, mean_len, hash_ratio, ellipsis_ratio, bullet_ratio, ell_lines_ratio, alpha_ratio, stop_count, passed, reason]
    return pa.table(dict(zip(GOPHER_QUALITY_COLUMNS, cols)), schema=pa.schema(GOPHER_QUALITY_COLUMNS.items()))


# ---------------------------------------------------------------- Gopher repetition


@dataclass(frozen=True)
class GopherRepetitionRules:
    max_dup_para_frac: float = 0.30
    max_dup_para_char_frac: float = 0.20
    max_dup_line_frac: float = 0.30
    max_dup_line_char_frac: float = 0.20
    top_ngram_char_frac: tuple[tuple[int, float], ...] = ((2, 0.20), (3, 0.18), (4, 0.16))
    dup_ngram_char_frac: tuple[tuple[int, float], ...] = (
        (5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10),
    )


def _repetition_columns(rules: GopherRepetitionRules) -> dict[str, pa.DataType]:
    cols = {
        "gopher_dup_para_frac": pa.float64(),
        "gopher_dup_para_char_frac": pa.float64(),
        "gopher_dup_line_frac": pa.float64(),
        "gopher_dup_line_char_frac": pa.float64(),
    }
    cols.update({f"gopher_top_{k}_gram_char_frac": pa.float64() for k, _ in rules.top_ngram_char_frac})
    cols.update({f"gopher_dup_{k}_gram_char_frac": pa.float64() for k, _ in rules.dup_ngram_char_frac})
    cols.update({"gopher_repetition_pass": pa.bool_(), "gopher_repetition_reason": pa.string()})
    return cols


GOPHER_REPETITION_COLUMNS = _repetition_columns(GopherRepetitionRules())


def _repeats(values: pa.Array, parents: np.ndarray) -> np.ndarray:
    """True for every element equal to an earlier element of the same document."""
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    codes = pc.dictionary_encode(values).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    keys = parents * (int(codes.max()) + 1) + codes
    _, first = np.unique(keys, return_index=True)
    dup = np.ones(len(keys), dtype=bool)
    dup[first] = False
    return dup


def _duplicate_elements(values: pa.Array, parents: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dup = _repeats(values, parents)
    lengths = pc.utf8_length(values).to_numpy(zero_copy_only=False).astype(np.float64)
    count = np.bincount(parents, minlength=n)
    return count, doc_count(dup, parents, n), doc_sum(np.where(dup, lengths, 0.0), parents, n)


def _ngram_keys(codes: np.ndarray, parents: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Hash keys of all k-grams that lie inside one document, and their start positions."""
    m = len(codes) - k + 1
    if m <= 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    starts = np.nonzero(parents[:m] == parents[k - 1 :])[0]
    h = codes[starts].astype(np.uint64) * _K1
    with np.errstate(over="ignore"):
        for j in range(1, k):
            h = (h ^ codes[starts + j].astype(np.uint64)) * _K1
            h ^= h >> np.uint64(29)
        h ^= parents[starts].astype(np.uint64) * _K2
    return h, starts


def _duplicate_ngram_chars(
    keys: np.ndarray, starts: np.ndarray, parents: np.ndarray, csum: np.ndarray, k: int, n: int
) -> np.ndarray:
    """Characters in repeated k-grams per document, scanning left to right.

    A k-gram seen before counts its characters and the scan jumps past it;
    k-grams jumped over are not remembered. Documents with no repeated k-gram
    at all (found vectorised) skip the scan.
    """
    out = np.zeros(n)
    if len(keys) == 0:
        return out
    _, first = np.unique(keys, return_index=True)
    repeat = np.ones(len(keys), dtype=bool)
    repeat[first] = False
    if not repeat.any():
        return out
    doc_of = parents[starts]
    bounds = np.searchsorted(doc_of, np.arange(n + 1))
    first_repeat = np.full(n, -1)
    rep_idx = np.nonzero(repeat)[0]
    rep_docs = doc_of[rep_idx]
    lead = np.ones(len(rep_idx), dtype=bool)
    lead[1:] = rep_docs[1:] != rep_docs[:-1]
    first_repeat[rep_docs[lead]] = rep_idx[lead]
    for d in np.nonzero(first_repeat >= 0)[0]:
        lo, hi, i = bounds[d], bounds[d + 1], first_repeat[d]
        seg = keys[lo:hi].tolist()
        seen = set(seg[: i - lo])
        pos0 = int(starts[lo])
        total, j, m = 0, i - lo, hi - lo
        while j < m:
            g = seg[j]
            if g in seen:
                total += int(csum[pos0 + j + k] - csum[pos0 + j])
                j += k
            else:
                seen.add(g)
                j += 1
        out[d] = total
    return out


def gopher_repetition(texts, rules: GopherRepetitionRules = GopherRepetitionRules()) -> pa.Table:
    t = as_string_array(texts)
    n = len(t)
    text_len = pc.utf8_length(t).to_numpy(zero_copy_only=False).astype(np.float64)

    paras, pparents = flatten(pc.split_pattern_regex(pc.utf8_trim_whitespace(t), pattern=r"\n{2,}"))
    p_count, p_dup, p_dup_chars = _duplicate_elements(paras, pparents, n)
    lines, lparents = flatten(pc.split_pattern_regex(t, pattern=r"\n+"))
    l_count, l_dup, l_dup_chars = _duplicate_elements(lines, lparents, n)

    stats: dict[str, np.ndarray] = {
        "gopher_dup_para_frac": _ratio(p_dup, p_count),
        "gopher_dup_para_char_frac": _ratio(p_dup_chars, text_len),
        "gopher_dup_line_frac": _ratio(l_dup, l_count),
        "gopher_dup_line_char_frac": _ratio(l_dup_chars, text_len),
    }
    tokens, parents = words(t)
    if len(tokens):
        codes = pc.dictionary_encode(tokens).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    else:
        codes = np.zeros(0, np.int64)
    tok_len = pc.utf8_length(tokens).to_numpy(zero_copy_only=False).astype(np.int64)
    csum = np.concatenate([[0], np.cumsum(tok_len)])

    for k, _ in rules.top_ngram_char_frac:
        keys, starts = _ngram_keys(codes, parents, k)
        frac = np.zeros(n)
        if len(keys):
            uniq, first, counts = np.unique(keys, return_index=True, return_counts=True)
            first_pos = starts[first]
            docs = parents[first_pos]
            # most frequent k-gram per document; ties go to the one seen first
            order = np.lexsort((first_pos, -counts, docs))
            docs_sorted = docs[order]
            lead = np.ones(len(order), dtype=bool)
            lead[1:] = docs_sorted[1:] != docs_sorted[:-1]
            best = order[lead]
            pos = first_pos[best]
            chars = (csum[pos + k] - csum[pos]) + (k - 1)  # joined with spaces
            frac[docs[best]] = chars * counts[best] / np.maximum(text_len[docs[best]], 1)
        stats[f"gopher_top_{k}_gram_char_frac"] = frac

    for k, _ in rules.dup_ngram_char_frac:
        keys, starts = _ngram_keys(codes, parents, k)
        stats[f"gopher_dup_{k}_gram_char_frac"] = _ratio(_duplicate_ngram_chars(keys, starts, parents, csum, k, n), text_len)

    checks: list[tuple[str, np.ndarray]] = [
        ("empty", text_len == 0),
        ("dup_para_frac", stats["gopher_dup_para_frac"] > rules.max_dup_para_frac),
        ("dup_para_char_frac", stats["gopher_dup_para_char_frac"] > rules.max_dup_para_char_frac),
        ("dup_line_frac", stats["gopher_dup_line_frac"] > rules.max_dup_line_frac),
        ("dup_line_char_frac", stats["gopher_dup_line_char_frac"] > rules.max_dup_line_char_frac),
    ]
    checks += [(f"top_{k}_gram", stats[f"gopher_top_{k}_gram_char_frac"] > f) for k, f in rules.top_ngram_char_frac]
    checks += [(f"dup_{k}_gram", stats[f"gopher_dup_{k}_gram_char_frac"] > f) for k, f in rules.dup_ngram_char_frac]
    passed, reason = _first_reason(checks, n)
    schema = pa.schema(_repetition_columns(rules).items())
    return pa.table({**stats, "gopher_repetition_pass": passed, "gopher_repetition_reason": reason}, schema=schema)


# ---------------------------------------------------------------- C4


@dataclass(frozen=True)
class C4Rules:
    min_sentences: int = 5
    min_words_per_line: int = 3
    max_word_length: int = 1000
    terminal_punctuation: tuple[str, ...] = (".", "?", "!", '"', "'")
    policy_phrases: tuple[str, ...] = (
        "terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies",
    )
    remove_citations: bool = True


C4_COLUMNS: dict[str, pa.DataType] = {
    "c4_lines": pa.int64(),
    "c4_kept_lines": pa.int64(),
    "c4_sentences": pa.int64(),
    "c4_pass": pa.bool_(),
    "c4_reason": pa.string(),
}
_CITATION = r"\[\d*\]|\[edit\]|\[citation needed\]"
# A sentence ends at terminal punctuation (plus closing quotes/brackets) followed by more text,
# unless the period closes an initial or dotted abbreviation (B., e.g., U.S.) or a title (Mr., Dr.).
_SENTENCE_BREAK = r"[.!?]+[\"'”’)\]]*\s+\S"
_NOT_A_BREAK = r"(?:\b(?:\p{L}\.)+|\b(?:Mr|Mrs|Ms|Dr|Prof|Jr|Sr|St)\.)\s+\S"


def c4(texts, rules: C4Rules = C4Rules()) -> pa.Table:
    t = as_string_array(texts)
    n = len(t)
    lines, parents = flatten(split_lines(t))
    lines = pc.utf8_trim_whitespace(lines)
    line_words = pc.utf8_split_whitespace(lines)
    n_words = pc.list_value_length(line_words).to_numpy(zero_copy_only=False).astype(np.int64)
    flat_words, wparents = flatten(line_words)
    too_long = np.zeros(len(lines), dtype=bool)
    if len(flat_words):
        long_word = pc.greater(pc.utf8_length(flat_words), rules.max_word_length).to_numpy(zero_copy_only=False)
        too_long = np.bincount(wparents[long_word], minlength=len(lines)) > 0
    if rules.remove_citations:
        lines = pc.replace_substring_regex(lines, pattern=_CITATION, replacement="")
    ends = np.zeros(len(lines), dtype=bool)
    for p in rules.terminal_punctuation:
        ends |= _bool(pc.ends_with(lines, p))
    ends &= ~_bool(pc.ends_with(lines, "..."))
    eligible = ~too_long & ends & (n_words >= rules.min_words_per_line)
    lower = pc.utf8_lower(lines)
    lorem = eligible & _bool(pc.match_substring(lower, "lorem ipsum"))
    javascript = eligible & ~lorem & _bool(pc.match_substring(lower, "javascript"))
    curly = eligible & ~lorem & ~javascript & _bool(pc.match_substring(lines, "{"))
    policy = np.zeros(len(lines), dtype=bool)
    for phrase in rules.policy_phrases:
        policy |= _bool(pc.match_substring(lower, phrase))
    kept = eligible & ~lorem & ~javascript & ~curly & ~policy
    breaks = (pc.count_substring_regex(lines, _SENTENCE_BREAK).to_numpy(zero_copy_only=False)
              - pc.count_substring_regex(lines, _NOT_A_BREAK).to_numpy(zero_copy_only=False))
    sentences = doc_sum(np.where(kept, 1 + np.maximum(breaks, 0), 0).astype(np.float64), parents, n).astype(np.int64)

    # a document fails at the first line that carries "lorem ipsum" or a curly bracket
    reason_line = np.full(n, np.iinfo(np.int64).max)
    reason_kind = np.full(n, None, dtype=object)
    idx = np.arange(len(lines))
    for kind, mask in (("lorem_ipsum", lorem), ("curly_bracket", curly)):
        if mask.any():
            first = np.full(n, np.iinfo(np.int64).max)
            np.minimum.at(first, parents[mask], idx[mask])
            better = first < reason_line
            reason_line[better] = first[better]
            reason_kind[better] = kind
    has_doc_fail = reason_kind != None  # noqa: E711 (elementwise on an object array)
    checks = [
        ("lorem_ipsum", has_doc_fail & (reason_kind == "lorem_ipsum")),
        ("curly_bracket", has_doc_fail & (reason_kind == "curly_bracket")),
        ("too_few_sentences", sentences < rules.min_sentences),
    ]
    passed, reason = _first_reason(checks, n)
    cols = [np.bincount(parents, minlength=n).astype(np.int64), doc_count(kept, parents, n), sentences, passed, reason]
    return pa.table(dict(zip(C4_COLUMNS, cols)), schema=pa.schema(C4_COLUMNS.items()))
