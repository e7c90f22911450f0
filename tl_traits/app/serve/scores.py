"""The steering view's judges: per trait the ones the steering protocol uses (its trait judge, the coherence judge and
`embedding:relevance`), built on first use and kept; they score the unsteered and the steered answer alike."""

from __future__ import annotations

from typing import Any

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.trait_sets import list_traits, load_trait
from tl_traits.judging.defaults import default_judges
from tl_traits.steering.scoring import Judges, pick_judges

RELEVANCE = "embedding:relevance"


class JudgePanel:
    """Judges per trait, built once (the classifier judge fits for a few seconds); `None` where a trait has none."""

    def __init__(self, model: Any, enabled: bool = True) -> None:
        self.model = model
        self.enabled = enabled
        self._built: dict[str, tuple[Judges | None, str]] = {}

    def judges(self, trait: str) -> tuple[Judges | None, str]:
        """The trait's judges, or None and the reason there are none."""
        if not self.enabled:
            return None, "judges are off (serve --no-judges)"
        if trait not in self._built:
            self._built[trait] = self._build(trait)
        return self._built[trait]

    def _build(self, trait: str) -> tuple[Judges | None, str]:
        if trait not in list_traits():
            return None, (
                f"no judges for '{trait}': the dashboard judges the bundled traits ({', '.join(list_traits())})"
            )
        data = load_trait(trait)
        try:
            return pick_judges(default_judges(data), self.model, data, relevance=RELEVANCE), ""
        except TlTraitsError as exc:  # a missing [judges] extra names its install line
            return None, str(exc).splitlines()[0]

    def score(self, trait: str, question: str, answers: dict[str, str], direction: int) -> dict[str, Any]:
        """Each answer's trait, coherence, relevance and steering score (0-100; None where a judge could not score).

        Call with no steering hooks attached: the coherence judge reads the unsteered model's likelihood.
        """
        judges, why = self.judges(trait)
        if judges is None:
            return {"type": "scores", "unavailable": why}
        data = load_trait(trait)
        parts = data.steering_questions(direction).parts
        names = list(answers)
        judged = judges.judge([question] * len(names), [answers[n] for n in names], direction, parts)
        return {
            "type": "scores",
            "judges": judges.names,
            "direction": direction,
            "parts": list(parts),
            "scores": {name: {k: judged.scores[k][i] for k in judged.scores} for i, name in enumerate(names)},
        }
