"""Heuristic scorers as Stages: Gopher quality, Gopher repetition, C4."""
from __future__ import annotations

from typing import Any, ClassVar

import pyarrow as pa

from thresher.metrics import heuristics
from thresher.pipeline.registry import register_scorer
from thresher.pipeline.stage import Resources, Stage
from thresher.pipeline.stage_options import as_kind_of, check_option_names


class _RuleStage(Stage):
    """A rule set from `thresher.metrics.heuristics`, with thresholds overridable by keyword."""

    rules_type: ClassVar[type]
    resources = Resources(cpus=1)

    def __init__(self, **options: Any) -> None:
        check_option_names(self.name, self.option_names(), options)
        defaults = self.rules_type()
        typed = {k: as_kind_of(self.name, k, getattr(defaults, k), v) for k, v in options.items()}
        self.options = dict(sorted(typed.items()))
        self.rules = self.rules_type(**typed)

    @classmethod
    def option_names(cls) -> list[str]:
        """The rule set's thresholds, by name."""
        return sorted(cls.rules_type.__dataclass_fields__)

    def params(self) -> dict[str, Any]:
        """The thresholds given (defaults are part of the code)."""
        return dict(self.options)

    def score(self, texts: pa.Array) -> pa.Table:
        raise NotImplementedError

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.score(batch["text"])


@register_scorer
class GopherQuality(_RuleStage):
    name = "gopher_quality"
    adds = heuristics.GOPHER_QUALITY_COLUMNS
    rules_type = heuristics.GopherQualityRules
    reason_column = "gopher_quality_reason"

    def score(self, texts: pa.Array) -> pa.Table:
        return heuristics.gopher_quality(texts, self.rules)


@register_scorer
class GopherRepetition(_RuleStage):
    name = "gopher_repetition"
    adds = heuristics.GOPHER_REPETITION_COLUMNS
    rules_type = heuristics.GopherRepetitionRules
    reason_column = "gopher_repetition_reason"

    def score(self, texts: pa.Array) -> pa.Table:
        return heuristics.gopher_repetition(texts, self.rules)


@register_scorer
class C4Quality(_RuleStage):
    name = "c4"
    adds = heuristics.C4_COLUMNS
    rules_type = heuristics.C4Rules
    reason_column = "c4_reason"

    def score(self, texts: pa.Array) -> pa.Table:
        return heuristics.c4(texts, self.rules)


DEFAULT_SCORERS = ("gopher_quality", "gopher_repetition", "c4")
