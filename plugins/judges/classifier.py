"""classifier: a trained trait judge, fitted on the trait set's own positive vs negative responses.

Three logistic regressions separate the trait set's positive from its negative responses: one over
the bundled MiniLM embedding of the response (what it says), one over a few style counts
(contractions, exclamations, word length, pronouns, ...: how it says it) and one over which words
it uses ("myth", "absolutely", "lol": the trait's own vocabulary). They are fitted when the judge
is built (deterministic, a few seconds) and never see the calibration set. For the bundled
traits a small calibration, fitted on the calibration set's `fit` half only
(`classifier_calibration.json`, refit by `benchmarks/fit_trait_judges.py`), maps their evidence
onto the reader's 0-100 scale, scaled by how clean the text is (degenerate text shows a reader
little trait), with the answer's closeness to the question (and, for sycophancy, its stance toward the
user's claim: `judging/stance.py`); other traits get 100 x the mean of the three probabilities.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.core.stats import fit_logistic
from tl_traits.core.trait_sets import TraitDataset, load_trait
from tl_traits.judging.encoder import embed
from tl_traits.judging.judges import JudgeBase, JudgeError, check_kind, fitted_version, trait_label
from tl_traits.judging.stance import stance_features
from tl_traits.judging.text_quality import text_features
from tl_traits.plugins.judges import catalogue

CALIBRATION_FILE = Path(__file__).with_name("classifier_calibration.json")
STYLE = (
    "contractions",
    "exclamations",
    "questions",
    "word_length",
    "long_words",
    "first_person",
    "second_person",
    "lowercase_starts",
    "non_ascii",
)
L2_EMBEDDING = 10.0  # on standardised features; 100 training responses against 384 dimensions need a strong prior
L2_STYLE = 1.0
L2_WORDS = 30.0
MIN_WORD_COUNT = 2  # a word enters the vocabulary when at least this many trait-set responses use it
# Each block's evidence is clipped: beyond e^5 (odd texts far outside the trait set, e.g. all symbols)
# a logistic model's certainty is extrapolation, and one unbounded term would swamp the calibration.
LOG_ODDS_CLIP = 5.0
BLOCKS = ("embedding", "style", "words")
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_LOWER_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


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
    return (
        quality["word_distinct2"] * (1 - quality["repeated_sentences"]) * (1 - quality["nonwords"]) * quality["letters"]
    )


def word_set(text: str) -> set[str]:
    """The distinct lowercase words of a text (curly apostrophes read as straight ones)."""
    return set(_LOWER_WORD.findall(text.lower().replace("\u2019", "'")))


@dataclass(frozen=True)
class _Block:
    """One logistic model over standardised features: (x - mean) / scale @ weights + intercept."""

    mean: Tensor
    scale: Tensor
    weights: Tensor
    intercept: float

    def log_odds(self, x: Tensor) -> Tensor:
        return ((x - self.mean) / self.scale) @ self.weights + self.intercept


@dataclass(frozen=True)
class _Fitted:
    vocabulary: dict[str, int]
    blocks: tuple[_Block, ...]

    def features(self, texts: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
        return embed(list(texts)).double(), _style(texts), _words(texts, self.vocabulary)


@functools.lru_cache(maxsize=16)
def _fitted(key: str, positives: tuple[str, ...], negatives: tuple[str, ...]) -> _Fitted:
    """The three logistic models (embedding, style, words) and the words' vocabulary."""
    texts = list(positives) + list(negatives)
    counts = Counter(w for t in texts for w in word_set(t))
    vocabulary = {w: i for i, w in enumerate(sorted(w for w, c in counts.items() if c >= MIN_WORD_COUNT))}
    y = torch.tensor([1.0] * len(positives) + [0.0] * len(negatives), dtype=torch.float64)
    blocks = []
    x_all = (embed(texts).double(), _style(texts), _words(texts, vocabulary))
    for x, l2 in zip(x_all, (L2_EMBEDDING, L2_STYLE, L2_WORDS)):
        mean, scale = x.mean(0), x.std(0).clamp_min(1e-6)
        weights, intercept = fit_logistic((x - mean) / scale, y, l2=l2)
        blocks.append(_Block(mean, scale, weights.double(), intercept))
    return _Fitted(vocabulary, tuple(blocks))


def _style(texts: Sequence[str]) -> Float[Tensor, "n 9"]:
    return torch.tensor([style_features(t) for t in texts], dtype=torch.float64)


def _words(texts: Sequence[str], vocabulary: dict[str, int]) -> Float[Tensor, "n vocab"]:
    """Which vocabulary words each text uses (0 or 1)."""
    x = torch.zeros(len(texts), len(vocabulary), dtype=torch.float64)
    for row, text in enumerate(texts):
        for word in word_set(text):
            if word in vocabulary:
                x[row, vocabulary[word]] = 1.0
    return x


def load_calibrations(path: str | Path | None = None) -> dict[str, Any]:
    path = Path(path) if path is not None else CALIBRATION_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


@catalogue.classifier
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

    def __init__(self, *, trait: Any = None, kind: str = "trait", calibration: str | Path | None = None) -> None:
        self.kind = check_kind(self.name, kind, self.kinds)
        if trait is None:
            raise JudgeError(
                "the classifier judge is fitted on a trait set's responses: make_judge('classifier', trait=...)"
            )
        dataset: TraitDataset = load_trait(trait)
        if not dataset.has_responses or len(dataset.positive) < 2 or len(dataset.negative) < 2:
            raise JudgeError(
                f"the classifier judge needs at least 2 positive and 2 negative examples with responses; "
                f"trait '{dataset.name}' has {len(dataset.positive)} and {len(dataset.negative)}"
                + ("" if dataset.has_responses else " (some without responses: fill them with tt.generate_responses)")
            )
        self.trait = trait_label(dataset)
        self.dataset_name = dataset.name
        examples = dataset.examples_hash()
        self._model = _fitted(
            examples,
            tuple(e.response or "" for e in dataset.positive),
            tuple(e.response or "" for e in dataset.negative),
        )
        stored = load_calibrations(calibration).get(dataset.name)
        self.calibration = stored if stored and stored.get("examples_sha256") == examples else None
        self.version = fitted_version(examples, self.calibration)

    def log_odds(self, responses: Sequence[str]) -> Float[Tensor, "n 3"]:
        """Each classifier's evidence for the positive side (log-odds, clipped to +-LOG_ODDS_CLIP):
        [embedding, style, words] per response."""
        return self._log_odds(self._model.features(responses))

    def _log_odds(self, features: tuple[Tensor, Tensor, Tensor]) -> Float[Tensor, "n 3"]:
        z = torch.stack([block.log_odds(x) for block, x in zip(self._model.blocks, features)], dim=1)
        return z.clamp(-LOG_ODDS_CLIP, LOG_ODDS_CLIP)

    def design(self, questions: Sequence[str], responses: Sequence[str], *, stance: bool) -> Float[Tensor, "n inputs"]:
        """Each answer's calibration inputs (`calibration_design`): what the judge scores with and what
        `benchmarks/fit_trait_judges.py` fits on. `stance`: the stance design's inputs too."""
        texts = [r if r.strip() else "." for r in responses]
        return self._design(questions, texts, self._model.features(texts), stance)

    def _design(
        self, questions: Sequence[str], texts: list[str], features: tuple[Tensor, Tensor, Tensor], stance: bool
    ) -> Float[Tensor, "n inputs"]:
        z = self._log_odds(features).tolist()
        closeness = (features[0].float() * embed([q or "." for q in questions])).sum(-1).tolist()
        stances = stance_features(questions, texts).tolist() if stance else [None] * len(texts)
        rows = [calibration_design(zi, text_features(t), c, st) for zi, t, c, st in zip(z, texts, closeness, stances)]
        return torch.tensor(rows, dtype=torch.float64)

    def _score(self, questions: list[str], responses: list[str]) -> Sequence[float | None]:
        empty = [not any(ch.isalpha() for ch in r) for r in responses]
        texts = [r if r.strip() else "." for r in responses]
        features = self._model.features(texts)  # the embedding serves the log-odds and the closeness
        if self.calibration is None:
            values = (100.0 * torch.sigmoid(self._log_odds(features)).mean(dim=1)).tolist()
        else:
            design = self._design(questions, texts, features, self.calibration.get("design") == "stance")
            values = [predicted_rating(row.tolist(), self.calibration) for row in design]
        return [None if e else float(v) for e, v in zip(empty, values)]


def calibration_design(
    z: Sequence[float], quality: dict[str, float], closeness: float, stance: Sequence[float] | None = None
) -> list[float]:
    """The calibration's inputs: 1, the three log-odds, each scaled by how clean the text is, that index, and
    the response's MiniLM cosine to the question (a restated claim agrees with it), plain and scaled. With
    `stance` (the "stance" design: `stance_features`), its claim restatement plain and scaled, and its opening
    agreement and correction cues scaled."""
    clean = clean_text(quality)
    design = [1.0, *z, *(x * clean for x in z), clean, closeness, closeness * clean]
    if stance is not None:
        restated, agrees, corrects = stance
        design += [restated, restated * clean, agrees * clean, corrects * clean]
    return design


def predicted_rating(design: Sequence[float], calibration: dict[str, Any]) -> float:
    """The stored linear calibration of one answer's design, stretched so a difference in rating is not attenuated,
    clipped to 0-100."""
    if len(design) != len(calibration["coef"]):
        raise JudgeError(
            f"the classifier calibration has {len(calibration['coef'])} coefficients for a design of "
            f"{len(design)} inputs; refit it with benchmarks/fit_trait_judges.py"
        )
    value = sum(c * x for c, x in zip(calibration["coef"], design))
    stretch = calibration.get("stretch") or {"offset": 0.0, "slope": 1.0}
    return min(100.0, max(0.0, (value - stretch["offset"]) / stretch["slope"]))
