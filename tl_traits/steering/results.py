"""The steering results model: judged answers, what a search varies, runs, and each group's test-half outcome.

One shape serves every steering evaluation: the unsteered answers and every steered run are a
`JudgedSet` (answers, per-answer scores, means); a `Run` is a setting (a `Candidate` at a strength,
or a system prompt) with its judged answers on one split; an `Outcome` is a group's setting chosen
on dev with its test-half figures and intervals; a `SteeringResult` holds them all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence, cast

from tl_traits.core.stats import bootstrap_interval
from tl_traits.core.tables import Table

SCORE_PARTS = ("trait", "coherence", "relevance", "score")
PROMPTING = "prompting"


@dataclass
class JudgedSet:
    """Answers to questions and each answer's judged trait, coherence, relevance and steering score (None: unscored)."""

    questions: list[str]
    responses: list[str]
    scores: dict[str, list[float | None]]

    def mean(self, part: str) -> float | None:
        values = [v for v in self.scores.get(part, []) if v is not None]
        return sum(values) / len(values) if values else None

    @property
    def trait(self) -> float | None:
        return self.mean("trait")

    @property
    def coherence(self) -> float | None:
        return self.mean("coherence")

    @property
    def relevance(self) -> float | None:
        return self.mean("relevance")

    @property
    def score(self) -> float | None:
        return self.mean("score")

    def to_dict(self) -> dict[str, Any]:
        return {"questions": self.questions, "responses": self.responses, "scores": self.scores}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JudgedSet":
        return cls(list(data["questions"]), list(data["responses"]), {k: list(v) for k, v in data["scores"].items()})


@dataclass(frozen=True)
class Candidate:
    """What a search varies besides strength: which vector (method), at which layer or band, where, centred or not."""

    layers: tuple[int, ...]
    method: str = ""
    positions: str = "all"
    centred: bool = False

    @property
    def label(self) -> str:
        where = f"layer {self.layers[0]}" if len(self.layers) == 1 else f"layers {self.layers[0]}-{self.layers[-1]}"
        parts = [self.method, where] if self.method else [where]
        if self.positions != "all":
            parts.append(f"{self.positions} positions")
        if self.centred:
            parts.append("mean-centred")
        return ", ".join(parts)

    def key(self) -> str:
        return json.dumps([list(self.layers), self.method, self.positions, self.centred])

    @classmethod
    def from_key(cls, key: str) -> "Candidate":
        layers, method, positions, centred = json.loads(key)
        return cls(tuple(layers), method, positions, centred)


@dataclass
class Run:
    """One setting judged on one split: a candidate at a strength (units of the vector), or a system prompt."""

    split: str
    answers: JudgedSet
    candidate: Candidate | None = None
    strength: float = 0.0
    prompt: str | None = None
    kl: float | None = None  # the KL target the strength was placed at (the calibrated search)
    step: int = 0

    @property
    def group(self) -> str:
        return PROMPTING if self.candidate is None else self.candidate.method

    @property
    def label(self) -> str:
        if self.candidate is None:
            return "prompting" if self.prompt is None else f"prompting: {self.prompt}"
        return f"{self.candidate.label}, strength {self.strength:.3g}"

    def key(self) -> tuple[str, str, float, str]:
        return (self.split, self.candidate.key() if self.candidate else "", round(self.strength, 6), self.prompt or "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "candidate": self.candidate.key() if self.candidate else None,
            "strength": self.strength,
            "prompt": self.prompt,
            "kl": self.kl,
            "step": self.step,
            "answers": self.answers.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Run":
        candidate = Candidate.from_key(data["candidate"]) if data.get("candidate") else None
        return cls(
            data["split"],
            JudgedSet.from_dict(data["answers"]),
            candidate,
            float(data.get("strength", 0.0)),
            data.get("prompt"),
            data.get("kl"),
            int(data.get("step", 0)),
        )


@dataclass
class Outcome:
    """A group's setting chosen on dev (a method's best candidate and strength, or the best prompt) on the test half."""

    group: str
    chosen: Run  # the dev run that won
    test: Run  # the same setting on the test questions
    baseline: JudgedSet  # the unsteered test answers
    resamples: int = 2000
    seed: int = 0

    @property
    def score(self) -> float | None:
        return self.test.answers.score

    def score_interval(self) -> tuple[float, float] | None:
        values = [v for v in self.test.answers.scores["score"] if v is not None]
        return bootstrap_interval(values, resamples=self.resamples, seed=self.seed) if values else None

    def gain(self, part: str = "score") -> tuple[float, float, float] | None:
        """Mean per-question (steered - unsteered) test score (or one `part`: "trait", "coherence", ...) with its
        paired bootstrap 95% interval."""
        return paired_difference(self.test.answers, self.baseline, self.resamples, self.seed, part)

    def gap_to(self, other: "Outcome") -> tuple[float, float, float] | None:
        """Mean per-question (this - other) test score, paired, with its interval (e.g. the gap to prompting)."""
        return paired_difference(self.test.answers, other.test.answers, self.resamples, self.seed)


def paired_difference(
    a: JudgedSet, b: JudgedSet, resamples: int = 2000, seed: int = 0, part: str = "score"
) -> tuple[float, float, float] | None:
    """(mean, low, high) of a's minus b's steering score (or `part`) per question, over questions both scored."""
    if a.questions != b.questions:
        raise ValueError("a paired difference needs the same questions in the same order")
    diffs = [x - y for x, y in zip(a.scores[part], b.scores[part]) if x is not None and y is not None]
    if not diffs:
        return None
    low, high = bootstrap_interval(diffs, resamples=resamples, seed=seed)
    return sum(diffs) / len(diffs), low, high


@dataclass
class SteeringResult:
    """Every dev run of a search, the unsteered answers per split, and each group's outcome on the test half.

    Groups: the methods (one for `evaluate_steering`'s vector) and, in `compare_steering`, prompting.
    `table()` lists the dev search per candidate; `summary()` the test-half figures per group.
    """

    trait: str
    direction: int
    parts: tuple[str, ...]
    baseline: dict[str, JudgedSet]
    runs: list[Run]
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    threshold: float = 70.0
    objective: str = "combined"
    measures: str = ""
    settings: dict[str, Any] = field(default_factory=dict)  # the protocol, as recorded

    # -- the dev search ---------------------------------------------------------------------------------
    @property
    def candidates(self) -> list[Candidate]:
        return list(dict.fromkeys(r.candidate for r in self.runs if r.candidate is not None))

    def runs_of(self, candidate: Candidate | None) -> list[Run]:
        """A candidate's dev runs by strength (None: the prompting runs)."""
        return sorted((r for r in self.runs if r.candidate == candidate and r.split == "dev"), key=lambda r: r.strength)

    def best(self, runs: Sequence[Run]) -> Run | None:
        """The best of `runs` under the objective: the highest mean steering score, or ("coherent_delta") the
        largest trait change in the asked direction among runs whose mean coherence passes the threshold."""
        if self.objective == "coherent_delta":
            base = self.baseline["dev"].trait
            ok = [r for r in runs if r.answers.trait is not None and (r.candidate is None or self.coherent(r))]
            return max(ok, key=lambda r: self.direction * (cast(float, r.answers.trait) - (base or 0.0)), default=None)
        scored = [r for r in runs if r.answers.score is not None]
        return max(scored, key=lambda r: cast(float, r.answers.score), default=None)

    def coherent(self, run: Run) -> bool:
        return run.answers.coherence is not None and run.answers.coherence >= self.threshold

    def table(self) -> Table:
        """The dev search, one row per candidate: its best strength and that run's means, beside the unsteered ones."""
        base = self.baseline["dev"]
        rows = []
        for candidate in self.candidates:
            runs = self.runs_of(candidate)
            best = self.best(runs)
            rows.append(
                {
                    "setting": candidate.label,
                    "best strength": best.strength if best else None,
                    "dev score": best.answers.score if best else None,
                    "unsteered": base.score,
                    "gain": (
                        None
                        if best is None or best.answers.score is None or base.score is None
                        else best.answers.score - base.score
                    ),
                    "trait": best.answers.trait if best else None,
                    "coherence": best.answers.coherence if best else None,
                    "relevance": best.answers.relevance if best else None,
                    "strengths tried": len(runs),
                }
            )
        for run in self.runs_of(None):
            rows.append(
                {
                    "setting": _short(run.label, 60),
                    "dev score": run.answers.score,
                    "unsteered": base.score,
                    "gain": (
                        None if run.answers.score is None or base.score is None else run.answers.score - base.score
                    ),
                    "trait": run.answers.trait,
                    "coherence": run.answers.coherence,
                    "relevance": run.answers.relevance,
                }
            )
        return Table(
            rows,
            title=f"{self.trait}, {direction_word(self.direction)}: dev search (the unsteered dev score "
            f"is {_fmt(base.score)}; a gain above 0 beats it)",
            formats=_FORMATS,
        )

    def summary(self) -> Table:
        """Per group: the setting chosen on dev, its test-half score with a 95% interval, the unsteered test score,
        the gain over it (paired, with interval) and, where prompting ran, the gap to prompting."""
        prompting = self.outcomes.get(PROMPTING)
        rows = []
        for group, outcome in self.outcomes.items():
            gain = outcome.gain()
            gap = outcome.gap_to(prompting) if prompting is not None and group != PROMPTING else None
            interval = outcome.score_interval()
            rows.append(
                {
                    "method": group,
                    "chosen on dev": (
                        outcome.chosen.label
                        if outcome.chosen.candidate
                        else _short(outcome.chosen.prompt or "prompting")
                    ),
                    "test score": outcome.score,
                    "95% interval": interval,
                    "unsteered": outcome.baseline.score,
                    "gain": gain[0] if gain else None,
                    "gain 95% interval": gain[1:] if gain else None,
                    **(
                        {"vs prompting": gap[0] if gap else None, "vs prompting 95%": gap[1:] if gap else None}
                        if prompting
                        else {}
                    ),
                    "trait": outcome.test.answers.trait,
                    "coherence": outcome.test.answers.coherence,
                    "relevance": outcome.test.answers.relevance,
                }
            )
        n = len(self.baseline["test"].questions) if "test" in self.baseline else 0
        return Table(
            rows,
            title=f"{self.trait}, {direction_word(self.direction)}: test half ({n} questions), settings chosen on dev",
            formats=_FORMATS,
            note=self.measures,
        )

    def headline(self, group: str | None = None) -> dict[str, Any]:
        """One group's chosen setting and test-half figures as flat values (the only group when None).

        Every figure in it belongs to that one setting; a group with no outcome gives None figures.
        """
        if group is None:
            steered = [g for g in self.outcomes if g != PROMPTING] or list(self.outcomes)
            group = steered[0] if len(steered) == 1 else None
            if group is None and steered:
                raise ValueError(f"this result has several groups ({', '.join(self.outcomes)}); name one")
        outcome = self.outcomes.get(group) if group is not None else None
        base = self.baseline.get("test") or self.baseline["dev"]
        out: dict[str, Any] = {
            "group": group,
            "layers": None,
            "strength": None,
            "positions": None,
            "centred": None,
            "prompt": None,
            "dev_score": None,
            "dev_unsteered": self.baseline["dev"].score,
            "test_score": None,
            "test_interval": None,
            "unsteered_test_score": base.score if "test" in self.baseline else None,
            "gain": None,
            "gain_interval": None,
            "trait": None,
            "coherence": None,
            "relevance": None,
            "unsteered_trait": base.trait,
            "unsteered_coherence": base.coherence,
            "unsteered_relevance": base.relevance,
        }
        if outcome is None:
            return out
        chosen, test, gain = outcome.chosen, outcome.test.answers, outcome.gain()
        if chosen.candidate is not None:
            out.update(
                layers=list(chosen.candidate.layers),
                strength=chosen.strength,
                positions=chosen.candidate.positions,
                centred=chosen.candidate.centred,
            )
        else:
            out["prompt"] = chosen.prompt
        interval = outcome.score_interval()
        out.update(
            dev_score=chosen.answers.score,
            test_score=test.score,
            test_interval=list(interval) if interval else None,
            gain=gain[0] if gain else None,
            gain_interval=list(gain[1:]) if gain else None,
            trait=test.trait,
            coherence=test.coherence,
            relevance=test.relevance,
        )
        return out

    def to_dict(self) -> dict[str, Any]:
        """Every group's headline, the unsteered scores and what the direction measures (JSON-ready)."""
        return {
            "trait": self.trait,
            "direction": self.direction,
            "parts": list(self.parts),
            "measures": self.measures,
            "unsteered": {split: js.score for split, js in self.baseline.items()},
            "groups": {group: self.headline(group) for group in self.outcomes},
        }


_FORMATS = {
    key: ".1f"
    for key in (
        "dev score",
        "unsteered",
        "test score",
        "trait",
        "coherence",
        "relevance",
        "95% interval",
        "gain 95% interval",
        "vs prompting 95%",
    )
}
_FORMATS.update({"gain": "+.1f", "vs prompting": "+.1f", "best strength": ".3g"})


def direction_word(direction: int) -> str:
    return "toward the trait" if direction > 0 else "away from the trait"


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
