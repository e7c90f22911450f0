"""Steering questions of a trait: the dev/test split per direction, and the `steering.json` parser."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

from tl_traits.core.errors import TlTraitsError


class TraitDataError(TlTraitsError):
    """A trait set that is missing, malformed, empty or too unbalanced to use."""


STEERING_PARTS = ("trait", "coherence", "relevance")  # what the steering score of a response combines


@dataclass(frozen=True)
class SteeringQuestions:
    """The questions steering is judged on in one direction, split once into dev (choose settings) and test (report).

    parts: which judgements the steering score combines ("trait", "coherence", "relevance");
    measures: what a gain in this direction means, in words (shown in reports).
    """

    dev: tuple[str, ...]
    test: tuple[str, ...]
    parts: tuple[str, ...] = STEERING_PARTS
    measures: str = ""

    def split(self, name: str) -> tuple[str, ...]:
        if name not in ("dev", "test"):
            raise TraitDataError(f"a steering split is 'dev' or 'test', not {name!r}")
        return self.dev if name == "dev" else self.test

    def limit(self, n: int) -> "SteeringQuestions":
        return replace(self, dev=self.dev[:n], test=self.test[:n])


def split_questions(questions: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A flat question list split into (dev, test) by alternation: 1st, 3rd, ... dev; 2nd, 4th, ... test."""
    return tuple(questions[0::2]), tuple(questions[1::2])


def parse_steering_plans(steering: dict[str, Any], where: str) -> dict[str, SteeringQuestions]:
    """steering.json's questions per direction.

    `"questions"` is a list (split by alternation) or `{"dev": [...], "test": [...]}`; an optional
    `"away": {"questions": ..., "parts": [...], "measures": "..."}` gives the away direction its own
    questions, and `"toward": {"parts": ..., "measures": ...}` what the toward score combines.
    """

    def questions(value: Any, what: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if isinstance(value, list) and all(isinstance(q, str) for q in value):
            return split_questions(value)
        if (
            isinstance(value, dict)
            and set(value) == {"dev", "test"}
            and all(isinstance(v, list) and all(isinstance(q, str) for q in v) for v in value.values())
        ):
            return tuple(value["dev"]), tuple(value["test"])
        raise TraitDataError(f'{where}: {what} must be a list of strings or {{"dev": [...], "test": [...]}}')

    def options(value: Any, way: str) -> tuple[tuple[str, ...], str]:
        if value is None:
            return STEERING_PARTS, ""
        if not isinstance(value, dict):
            raise TraitDataError(f"{where}: '{way}' must be an object with 'questions', 'parts' or 'measures'")
        parts = value.get("parts", list(STEERING_PARTS))
        if (
            not isinstance(parts, list)
            or not parts
            or any(p not in STEERING_PARTS for p in parts)
            or "trait" not in parts
        ):
            raise TraitDataError(f"{where}: '{way}.parts' must list 'trait' and any of {', '.join(STEERING_PARTS)}")
        measures = value.get("measures", "")
        if not isinstance(measures, str):
            raise TraitDataError(f"{where}: '{way}.measures' must be a string")
        return tuple(parts), measures

    plans: dict[str, SteeringQuestions] = {}
    if "questions" in steering:
        dev, test = questions(steering["questions"], "'questions'")
        parts, measures = options(steering.get("toward"), "toward")
        plans["toward"] = SteeringQuestions(dev, test, parts, measures)
    away = steering.get("away")
    if away is not None:
        parts, measures = options(away, "away")
        if "questions" in away:
            dev, test = questions(away["questions"], "'away.questions'")
        elif "toward" in plans:
            dev, test = plans["toward"].dev, plans["toward"].test
        else:
            raise TraitDataError(f"{where}: 'away' needs 'questions' when there are no toward questions")
        plans["away"] = SteeringQuestions(dev, test, parts, measures)
    elif "toward" in plans:
        plans["away"] = replace(plans["toward"], parts=STEERING_PARTS, measures="")
    return plans
