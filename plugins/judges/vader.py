"""vader: joy as VADER sentiment, the compound score mapped from [-1, 1] to [0, 100]."""

from __future__ import annotations

import functools
from typing import Any, Sequence

from tl_traits.core.extras import require
from tl_traits.judging.judges import JudgeBase, check_kind
from tl_traits.plugins.judges import catalogue


@functools.lru_cache(maxsize=1)
def _analyzer() -> Any:
    SentimentIntensityAnalyzer = require("vaderSentiment.vaderSentiment").SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


@catalogue.vader
class VaderJudge(JudgeBase):
    """score = (compound + 1) * 50: 0 all negative, 50 neutral, 100 all positive.

    A lexicon of English sentiment words, so a cheap stand-in for joy: text in other
    languages mostly lands on a neutral 50, and text with no letters at all (empty,
    whitespace, punctuation) scores None.
    """

    name = "vader"
    kind = "trait"
    trait = "joy"

    def __init__(self, *, kind: str = "trait") -> None:
        self.kind = check_kind(self.name, kind, ("trait",))
        _analyzer()  # fail here, naming the [judges] extra, not at the first score

    def _score(self, questions: list[str], responses: list[str]) -> Sequence[float | None]:
        analyzer = _analyzer()
        scores: list[float | None] = []
        for text in responses:
            if not any(ch.isalpha() for ch in text):
                scores.append(None)
                continue
            compound = analyzer.polarity_scores(text)["compound"]
            scores.append((compound + 1.0) * 50.0)
        return scores
