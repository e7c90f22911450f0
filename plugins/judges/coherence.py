"""coherence: a fitted judge of fluent, sensible English from degeneration signals, offline on CPU.

It combines what the field uses against degenerate text (repetition over the whole response,
repeated sentences, compressibility, the unsteered model's likelihood, non-words, stray symbols,
relevance to the question) in a logistic model FITTED on the calibration set's `fit` split
(`coherence_model.json` beside this file; `benchmarks/fit_coherence_judge.py` refits it).
Score = 100 x P(a reader rates the response >= 70).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from tl_traits.plugins.judges import catalogue
from tl_traits.judging.encoder import embed
from tl_traits.judging.judges import JudgeBase, JudgeError, check_kind, fitted_version, require_unhooked
from tl_traits.judging.likelihood import response_likelihood
from tl_traits.judging.text_quality import text_features

MODEL_FILE = Path(__file__).with_name("coherence_model.json")
FEATURES = (
    "nll",
    "token_distinct",
    "word_distinct2",
    "repeated_sentences",
    "compression",
    "top_word_share",
    "nonwords",
    "letters",
    "relevance",
    "log_words",
)


@catalogue.coherence
class CoherenceJudge(JudgeBase):
    """Coherence 0-100 = 100 x P(rated coherent), from a logistic model over degeneration features.

    Needs the UNSTEERED model (for its likelihood of the response) and the bundled MiniLM. Its gate
    (the score at which a response counts as coherent) is 70, the coefficient search's threshold.
    Its figures against the reader, on responses it was not fitted on: `tl-traits judges calibrate coherence`.
    """

    name = "coherence"
    kind = "coherence"
    kinds = ("coherence",)
    gate = 70.0

    def __init__(
        self, *, model: Any = None, kind: str = "coherence", weights: str | Path | None = None, batch_size: int = 8
    ) -> None:
        self.kind = check_kind(self.name, kind, self.kinds)
        if model is None or not hasattr(model, "cfg"):
            raise JudgeError(
                "the coherence judge needs the unsteered TransformerLens model: make_judge('coherence', model=model)"
            )
        self.model = model
        if batch_size < 1:
            raise JudgeError("coherence judge: batch_size must be >= 1")
        self.batch_size = batch_size
        self._weights_path = weights
        self.weights = load_weights(weights) if weights is not None or MODEL_FILE.is_file() else None

    @property
    def version(self) -> str:  # type: ignore[override]
        return fitted_version(self.weights) if self.weights is not None else ""

    def features(self, questions: Sequence[str], responses: Sequence[str]) -> list[dict[str, float]]:
        """Every feature of every response (the model-free ones, the likelihood and the relevance)."""
        require_unhooked(self.model, self.name)
        rows = [text_features(r) for r in responses]
        todo = sorted((i for i, r in enumerate(responses) if r.strip()), key=lambda i: len(responses[i]))
        size = self.batch_size  # similar lengths share a batch
        measured = [
            m
            for start in range(0, len(todo), size)
            for m in response_likelihood(
                self.model,
                [questions[i] for i in todo[start : start + size]],
                [responses[i][:4000] for i in todo[start : start + size]],
            )
        ]
        for row in rows:
            row.update(nll=12.0, token_distinct=0.0, relevance=0.0)
        for i, (nll, distinct) in zip(todo, measured):
            rows[i].update(nll=min(nll, 12.0), token_distinct=distinct)
        if todo:
            cos = (embed([questions[i] for i in todo]) * embed([responses[i] for i in todo])).sum(-1)
            for i, c in zip(todo, cos.tolist()):
                rows[i]["relevance"] = c
        return rows

    def _score(self, questions: list[str], responses: list[str]) -> Sequence[float | None]:
        if self.weights is None:
            self.weights = load_weights(self._weights_path)  # raises, naming the fitting script
        return [
            100.0 * probability(row, self.weights) if r.strip() else 0.0
            for row, r in zip(self.features(questions, responses), responses)
        ]


def load_weights(path: str | Path | None = None) -> dict[str, Any]:
    """The fitted logistic model: feature means and scales, coefficients, intercept, and how it was fitted."""
    path = Path(path) if path is not None else MODEL_FILE
    if not path.is_file():
        raise JudgeError(f"no fitted coherence model at {path}; fit one with benchmarks/fit_coherence_judge.py")
    weights = json.loads(path.read_text())
    missing = [f for f in FEATURES if f not in weights.get("coef", {})]
    if missing:
        raise JudgeError(f"{path} has no coefficient for {missing}; refit it with benchmarks/fit_coherence_judge.py")
    return weights


def probability(features: dict[str, float], weights: dict[str, Any]) -> float:
    """P(coherent) under the logistic model, features standardised as at fitting time."""
    z = weights["intercept"] + sum(
        weights["coef"][f] * (features[f] - weights["mean"][f]) / weights["scale"][f] for f in FEATURES
    )
    return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))
