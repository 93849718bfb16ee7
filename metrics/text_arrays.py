"""Batch text primitives over Arrow arrays: words, lines and per-document sums.

Everything works on a whole batch of documents at once: a split gives a list
array, the flattened pieces are processed with Arrow kernels, and per-document
statistics come back with `np.bincount` over the parent indices. No Python loop
touches individual documents or words.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# A token made only of these is a "symbol", not a word (Unicode punctuation, symbols, controls).
SYMBOL_ONLY = r"^[\p{P}\p{S}\p{Cc}]+$"
HAS_LETTER = r"\p{L}"
_PUNCT = r"[\p{P}\p{S}]"

# Python's str.splitlines() boundaries, so line counts match what users expect.
LINE_BREAK = r"\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x{85}\x{2028}\x{2029}]"

# Word rules, following the usual English tokenizer conventions (as in spaCy's
# English defaults): split on whitespace, then peel punctuation off the start and
# the end of each chunk one character at a time, then split a few infix patterns
# (hyphens and slashes between letters, commas between letters, a period between
# a lowercase and an uppercase letter). Inner punctuation otherwise stays in the
# word (3.14, file.txt, f(x), os.path). Clitics (n't, 's, 're, ...) split off.
_PREFIX_CHARS = "§%=—–!?¿¡()[]{}<>_#*&,:;'\"”“`‘´’‚„»«$£€¥+"
_SUFFIX_CHARS = "!?¿¡()[]{}<>_#*&,:;'\"”“`‘´’‚„»«—–"
_PREFIX = r"(?:\.\.+|…|[§%=—–!?¿¡()\[\]{}<>_#*&,:;'\"”“`‘´’‚„»«$£€¥+])"
_SUFFIX = r"(?:…|['’][sS]|[!?¿¡()\[\]{}<>_#*&,:;'\"”“`‘´’‚„»«—–])"
_PEELS = 3  # punctuation peeled per chunk end by regex; longer all-punctuation runs are exploded after
_KEEP_DOT = "\x01"  # a period that belongs to an abbreviation (e.g., U.S., Mr.)
_KEEP_APOS = "\x02"  # the apostrophe of a clitic ('re, 'll, ...)
_REWRITES: tuple[tuple[str, str], ...] = (
    (r"\b([Cc])annot\b", "\\1an not"),
    (r"(?i)(\w)(n)['’](t)(\s|$|\p{P})", "\\1 \\2" + _KEEP_APOS + "\\3\\4"),
    (r"(?i)(\w)['’](re|ve|ll|d|m)(\s|$|\p{P})", "\\1 " + _KEEP_APOS + "\\2\\3"),
    *(((r"(^|\s|\p{Ps}|\p{Pi})((?:\p{L}\.)*\p{L})\.([^.]|$)", "\\1\\2" + _KEEP_DOT + "\\3"),) * 2),
    (r"\b(Mr|Mrs|Ms|Dr|Prof|Jr|Sr|St|vs)\.", "\\1" + _KEEP_DOT),
    *(((r"(^|\s)(" + _PREFIX + r")(\S)", "\\1\\2 \\3"),) * _PEELS),
    *(((r"(\S)(" + _SUFFIX + r")(\s|$)", "\\1 \\2\\3"),
       (r"([^\s.])(\.\.+)(\s|$)", "\\1 \\2\\3"),
       (r"([0-9\p{Ll}!\"#$%&'()*+,\-/:;<=>?@\[\\\]^_`{|}~´])(\.)(\s|$)", "\\1 \\2\\3"),
       (r"(\p{Lu}\p{Lu})(\.)(\s|$)", "\\1 \\2\\3"),
       (r"([0-9])([%+])(\s|$)", "\\1 \\2\\3")) * _PEELS),
    (r"(\S)(\.\.+|…)(\S)", "\\1 \\2 \\3"),
    *(((r"([\p{L}0-9])(-|–|—|--+|~)(\p{L})", "\\1 \\2 \\3"),
       (r"([\p{L}0-9])([:<>=/])(\p{L})", "\\1 \\2 \\3"),
       (r"(\p{L})(,)(\p{L})", "\\1 \\2 \\3"),
       (r"([0-9])([-+*^])([0-9-])", "\\1 \\2 \\3")) * 2),
    (r"(\p{Ll})(\.)(\p{Lu})", "\\1 \\2 \\3"),
    ("[" + _KEEP_DOT + "]", "."),
    ("[" + _KEEP_APOS + "]", "'"),
)
_ALL_PUNCT = r"^[\p{P}\p{S}]{2,}$"
_PREFIX_SET = frozenset(_PREFIX_CHARS)
_SUFFIX_SET = frozenset(_SUFFIX_CHARS)


def _peel(chunk: str) -> list[str]:
    """Peel an all-punctuation chunk to the end, as the regex passes would with no depth limit."""
    head: list[str] = []
    while chunk:
        if chunk.startswith(".."):
            run = len(chunk) - len(chunk.lstrip("."))
            head.append(chunk[:run])
            chunk = chunk[run:]
        elif chunk[0] in _PREFIX_SET or chunk[0] == "…":
            head.append(chunk[0])
            chunk = chunk[1:]
        else:
            break
    tail: list[str] = []
    while chunk:
        if chunk.endswith("..") and chunk.strip("."):
            run = len(chunk) - len(chunk.rstrip("."))
            tail.append(chunk[-run:])
            chunk = chunk[:-run]
        elif chunk[-1] in _SUFFIX_SET or chunk[-1] == "…" or (chunk[-1] == "." and len(chunk) > 1):
            tail.append(chunk[-1])
            chunk = chunk[:-1]
        else:
            break
    return head + ([chunk] if chunk else []) + tail[::-1]


def _peel_punct_runs(tokens: pa.Array, parents: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """Finish peeling all-punctuation tokens such as '=====' or '-~~-.___.'.

    The regex passes peel a few characters from each end; such tokens (rare
    outside ASCII art and separator lines) are peeled to the end here.
    """
    runs = pc.match_substring_regex(tokens, _ALL_PUNCT).to_numpy(zero_copy_only=False)
    if not runs.any():
        return tokens, parents
    run_idx = np.nonzero(runs)[0]
    pieces = [_peel(tok) for tok in tokens.take(pa.array(run_idx)).to_pylist()]
    lens = np.array([len(p) for p in pieces], dtype=np.int64)
    counts = np.ones(len(tokens), dtype=np.int64)
    counts[run_idx] = lens
    chars = pa.array([c for p in pieces for c in p], pa.string())
    # index into concat(tokens, pieces): other tokens keep their position, peeled ones point at their pieces
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    within = np.arange(counts.sum()) - starts
    owner = np.repeat(np.arange(len(tokens)), counts)
    piece_base = np.zeros(len(tokens), dtype=np.int64)
    piece_base[run_idx] = np.cumsum(lens) - lens
    index = np.where(runs[owner], len(tokens) + piece_base[owner] + within, owner)
    merged = pa.concat_arrays([tokens.cast(pa.string()), chars]).take(pa.array(index))
    return merged, parents[owner]


def as_string_array(texts: pa.Array | pa.ChunkedArray | list[str]) -> pa.Array:
    if isinstance(texts, list):
        return pa.array(texts, pa.string())
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if pa.types.is_large_string(texts.type):
        return texts
    return texts.cast(pa.string())


def doc_sum(values: np.ndarray, parents: np.ndarray, n_docs: int) -> np.ndarray:
    """Sum of `values` per document, given each value's document index."""
    if len(values) == 0:
        return np.zeros(n_docs, dtype=np.float64)
    return np.bincount(parents, weights=values, minlength=n_docs)


def doc_count(mask: np.ndarray, parents: np.ndarray, n_docs: int) -> np.ndarray:
    return np.bincount(parents[mask], minlength=n_docs).astype(np.int64)


def split_lines(texts: pa.Array) -> pa.ListArray:
    """Like `str.splitlines()`: no empty trailing line after a final line break."""
    trimmed = pc.replace_substring_regex(texts, pattern=f"(?:{LINE_BREAK})$", replacement="")
    return pc.split_pattern_regex(trimmed, pattern=LINE_BREAK)


def flatten(lists: pa.ListArray) -> tuple[pa.Array, np.ndarray]:
    """Flattened values and, for each, the index of the list it came from."""
    values = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    return values, parents


def words(texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Tokens of every document in the batch, flattened, with their document index."""
    t = as_string_array(texts)
    for pattern, repl in _REWRITES:
        t = pc.replace_substring_regex(t, pattern=pattern, replacement=repl)
    tokens, parents = flatten(pc.utf8_split_whitespace(pc.utf8_trim_whitespace(t)))
    nonempty = pc.greater(pc.utf8_length(tokens), 0)
    if not pc.all(nonempty).as_py():
        tokens = tokens.filter(nonempty)
        parents = parents[nonempty.to_numpy(zero_copy_only=False)]
    return _peel_punct_runs(tokens, parents)
