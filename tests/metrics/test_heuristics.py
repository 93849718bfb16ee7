"""Each rule on hand-made documents: breaking exactly one rule gives exactly that reason."""
from __future__ import annotations

import pyarrow as pa
import pytest

from tests.docs import CLEAN
from thresher.metrics import heuristics as H
from thresher.metrics.text_arrays import words


def quality(text: str, **rules) -> dict:
    return H.gopher_quality(pa.array([text]), H.GopherQualityRules(**rules)).to_pylist()[0]


def repetition(text: str) -> dict:
    return H.gopher_repetition(pa.array([text])).to_pylist()[0]


def c4(text: str) -> dict:
    return H.c4(pa.array([text])).to_pylist()[0]


def test_clean_document_passes_every_rule():
    assert quality(CLEAN)["gopher_quality_pass"]
    assert repetition(CLEAN)["gopher_repetition_pass"]
    row = c4(CLEAN)
    assert row["c4_pass"] and row["c4_sentences"] == 6


def test_tokens_follow_english_conventions():
    toks, parents = words(pa.array(["Don't split 3.14 or file.txt, but split well-known (words)!", ""]))
    assert toks.to_pylist() == ["Do", "n't", "split", "3.14", "or", "file.txt", ",", "but", "split", "well", "-",
                                "known", "(", "words", ")", "!"]
    assert set(parents.tolist()) == {0}


@pytest.mark.parametrize(
    "text, reason",
    [
        ("The cat sat on the mat with the dog.", "short_doc"),
        (" ".join(["the and"] + ["xyzzyxyzzyxyzzy"] * 60), "mean_word_length_high"),
        (" ".join(["the and of"] + ["ab"] * 60), "mean_word_length_low"),
        (CLEAN + "\n" + " ".join(["#tag"] * 20), "too_many_hashes"),
        (CLEAN + "\n" + " ".join(["wait..."] * 20), "too_many_ellipses"),
        ("\n".join("- " + line for line in CLEAN.split("\n")), "too_many_bullet_lines"),
        ("\n".join(line.rstrip(".") + " and so on…" for line in CLEAN.split("\n")), "too_many_ellipsis_lines"),
        (CLEAN + "\n" + " ".join(["1234"] * 40), "too_few_alpha_words"),
        (CLEAN.replace(" the ", " a ").replace("The ", "A ").replace(" and ", " plus ").replace(" with ", " by ")
         .replace(" to ", " toward ").replace(" of ", " from "), "too_few_stop_words"),
    ],
)
def test_gopher_quality_single_rule(text, reason):
    row = quality(text)
    assert row["gopher_quality_reason"] == reason
    assert row["gopher_quality_pass"] is False


def test_gopher_quality_thresholds_are_options():
    assert quality("The cat sat on the mat with the dog.", min_doc_words=5)["gopher_quality_pass"]


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("\n\n".join([CLEAN] * 2 + ["A short closing paragraph about boats."]), "dup_para_frac"),
        (CLEAN + "\n" + "\n".join(["Buy now."] * 5), "dup_line_frac"),
        (CLEAN + "\n" + " ".join(["the river"] * 80), "top_2_gram"),
    ],
)
def test_gopher_repetition_single_rule(text, reason):
    row = repetition(text)
    assert row["gopher_repetition_reason"] == reason


def test_duplicate_ngrams_counted_once_per_window():
    phrase = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    text = CLEAN + "\n" + phrase + " lambda mu nu " + phrase
    row = repetition(text)
    # the repeated 10-gram's characters (no spaces) over the text length
    expected = len(phrase.replace(" ", "")) / len(text)
    assert row["gopher_dup_10_gram_char_frac"] == pytest.approx(expected)
    assert row["gopher_dup_5_gram_char_frac"] >= row["gopher_dup_10_gram_char_frac"]


@pytest.mark.parametrize(
    "text, reason",
    [
        (CLEAN.replace("bread.", "bread. Lorem ipsum dolor sit amet."), "lorem_ipsum"),
        (CLEAN.replace("bread.", "bread {with butter}."), "curly_bracket"),
        ("\n".join(CLEAN.split("\n")[:4]), "too_few_sentences"),
    ],
)
def test_c4_single_rule(text, reason):
    assert c4(text)["c4_reason"] == reason


def test_c4_line_rules_drop_lines_not_documents():
    lines = CLEAN.split("\n")
    noisy = "\n".join(lines + ["Enable JavaScript to view this page.", "no terminal punctuation here", "Too short."])
    row = c4(noisy)
    assert row["c4_pass"] and row["c4_kept_lines"] == 6 and row["c4_lines"] == 9


def test_batch_results_do_not_depend_on_batch_composition():
    texts = [CLEAN, "", "Buy now.\nBuy now.", CLEAN + " #x"]
    together = H.gopher_repetition(pa.array(texts)).to_pylist()
    alone = [H.gopher_repetition(pa.array([t])).to_pylist()[0] for t in texts]
    assert together == alone
    assert H.gopher_quality(pa.array(texts)).to_pylist() == [quality(t) for t in texts]
