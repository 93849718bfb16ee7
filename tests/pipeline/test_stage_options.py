"""Scorer options are checked in make_scorer, so a job spec and a notebook get the CLI's refusals."""
from __future__ import annotations

import pytest

from thresher.pipeline.registry import make_scorer
from thresher.pipeline.stage_options import OptionError


@pytest.mark.parametrize(("scorer", "options", "expected"), [
    ("gopher_quality", {"min_doc_words": 2.5}, "a whole number"),
    ("gopher_quality", {"min_doc_words": "abc"}, "a number"),
    ("c4", {"remove_citations": "maybe"}, "true or false"),
    ("embedding", {"dim": "many"}, "a whole number"),
])
def test_a_value_of_the_wrong_kind_is_refused_naming_scorer_and_key(scorer, options, expected) -> None:
    with pytest.raises(OptionError) as err:
        make_scorer(scorer, **options)
    assert (err.value.scorer, err.value.key, err.value.expected) == (scorer, *options, expected)


def test_quoted_values_from_yaml_convert_and_unknown_names_are_listed() -> None:
    assert make_scorer("gopher_quality", min_doc_words="20").params() == {"min_doc_words": 20}
    assert make_scorer("c4", remove_citations="False").params() == {"remove_citations": False}
    with pytest.raises(ValueError, match=r"scorer 'langid' has no option\(s\) bogus; options: max_chars"):
        make_scorer("langid", bogus=1)
