"""Judges score responses 0-100 for a trait, coherence or relevance; `make_judge` builds one from a spec.

A judge is any object with `name`, `kind`, `trait` and `score(questions, responses)`; built-ins are classes.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from typing import Any, Callable, Sequence

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.plugin_info import plugin_name
from tl_traits.core.protocols import Judge
from tl_traits.core.registry import judges
from tl_traits.core.trait_sets import TraitDataset, load_trait

KINDS = ("trait", "coherence", "relevance")

ScoreFn = Callable[[Sequence[str], Sequence[str]], Sequence[float | None]]


class JudgeError(TlTraitsError):
    """A judge that cannot be built or cannot run as asked; the message names the fix."""


# -- conventions every judge shares -----------------------------------------------------------------
def check_inputs(
    questions: Sequence[str] | None, responses: Sequence[str], judge: str = "judge"
) -> tuple[list[str], list[str]]:
    """Both as lists of str, one question per response (questions=None: no questions, all "")."""
    for label, seq in (("responses", responses), ("questions", questions)):
        if isinstance(seq, str):
            raise TypeError(f"{judge}: {label} must be a list of strings, not one string; wrap it in a list")
    responses = list(responses)
    questions = [""] * len(responses) if questions is None else list(questions)
    if len(questions) != len(responses):
        raise ValueError(
            f"{judge}: got {len(questions)} questions but {len(responses)} responses; "
            "pass one question per response (or questions=None)"
        )
    for label, seq in (("question", questions), ("response", responses)):
        for i, text in enumerate(seq):
            if not isinstance(text, str):
                raise TypeError(f"{judge}: {label} {i} is a {type(text).__name__}, not a str")
    return questions, responses


def clip_scores(scores: Sequence[float | None]) -> list[float | None]:
    """Scores as floats clipped to [0, 100]; None and NaN (of any type: float, np.float32, a 0-d tensor) become None."""
    out: list[float | None] = []
    for s in scores:
        value = None if s is None else float(s)
        out.append(None if value is None or math.isnan(value) else min(100.0, max(0.0, value)))
    return out


def check_kind(judge: str, kind: str, supported: Sequence[str]) -> str:
    if kind not in supported:
        raise JudgeError(
            f"the {judge} judge has no kind {kind!r}; it supports {', '.join(supported)}"
            f" (e.g. make_judge('{judge}:{supported[0]}'))"
        )
    return kind


def require_unhooked(model: Any, judge: str) -> None:
    """Refuse to score with a model that has TransformerLens hooks attached (e.g. inside `steer`)."""
    hook_points = getattr(model, "hook_dict", {}) or {}
    if any(getattr(hp, "fwd_hooks", None) for hp in hook_points.values()):
        raise JudgeError(
            f"the {judge} judge must score with the unsteered model, but this model has forward hooks "
            "attached (a steer() block or a hooks() context is open). Score after leaving the steer block."
        )


class JudgeBase:
    """Shared plumbing: subclasses set name/kind/trait and implement `_score` on validated lists."""

    name: str = "judge"
    kind: str = "trait"
    trait: str | None = None
    kinds: tuple[str, ...] = ("trait",)
    # What identifies a fitted judge's state (`fitted_version` of its calibration), "" for a fixed rule. A steering
    # log records it, so answers judged before a refit are never mixed with answers judged after.
    version: str = ""

    def score(self, questions: Sequence[str] | None, responses: Sequence[str]) -> list[float | None]:
        questions, responses = check_inputs(questions, responses, self.name)
        if not responses:
            return []
        scores = list(self._score(questions, responses))
        if len(scores) != len(responses):  # pragma: no cover - a bug in the subclass
            raise RuntimeError(f"{self.name} returned {len(scores)} scores for {len(responses)} responses")
        return clip_scores(scores)

    def _score(self, questions: list[str], responses: list[str]) -> Sequence[float | None]:
        raise NotImplementedError

    def __call__(self, questions: Sequence[str] | None, responses: Sequence[str]) -> list[float | None]:
        return self.score(questions, responses)

    def __repr__(self) -> str:
        about = f", trait={self.trait!r}" if self.trait else ""
        return f"{type(self).__name__}(kind={self.kind!r}{about})"


def fitted_version(*state: Any) -> str:
    """A short hash of a judge's fitted state (weights, calibration, the data it was fitted on): its `version`."""
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:12]


class FunctionJudge(JudgeBase):
    """A plain function `(questions, responses) -> scores` as a judge."""

    def __init__(self, fn: ScoreFn, *, name: str | None = None, kind: str = "trait", trait: str | None = None) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        self.kind = check_kind(self.name, kind, KINDS)
        self.trait = trait

    def _score(self, questions: list[str], responses: list[str]) -> Sequence[float | None]:
        return self.fn(questions, responses)


# -- building judges from specs -------------------------------------------------------------------
def make_judge(spec: Any, *, model: Any = None, trait: Any = None, **options: Any) -> Judge:
    """A judge from a registered name ("vader"), "name:kind" ("logprob:coherence"), a judge class, a judge
    object, or a function.

    model, trait: context, handed to a judge class that declares it (its PluginInfo's `context`, or, for a
        class without one, its `__init__`'s keywords); a trait may be a TraitDataset or anything `load_trait`
        accepts. Judges that need neither ignore them.
    options: keyword options of the judge class; one it does not take is an error naming those it takes.
    A built judge object is returned as is; a plain function `(questions, responses) -> scores` is wrapped
    with kind "trait" (or `kind=`, `name=` from options).
    """
    name = None
    if isinstance(spec, str):
        name, _, kind = spec.partition(":")
        if kind:
            if options.get("kind", kind) != kind:
                raise JudgeError(f"make_judge({spec!r}) names kind {kind!r} but kind={options['kind']!r} was passed")
            options["kind"] = kind
        spec = judges.get(name)
    judge = _build(spec, name, model, trait, options)
    _warn_on_trait_mismatch(judge, trait)
    return judge


def _build(plugin: Any, name: str | None, model: Any, trait: Any, options: dict[str, Any]) -> Judge:
    if isinstance(plugin, type):
        options = _kind_option(plugin, name, options)
        return judges.resolve(plugin, options=options, error=JudgeError, model=model, trait=_as_trait(trait))
    if _is_judge(plugin):
        return judges.resolve(plugin, options=options, error=JudgeError)
    if callable(getattr(plugin, "score", None)):
        return FunctionJudge(plugin.score, name=name or type(plugin).__name__, **_function_options(options, trait))
    if callable(plugin):  # a function (questions, responses) -> scores, bound to the context it declares
        label = name or plugin_name(plugin)
        wants_trait = "trait" in judges.keywords(plugin)[0]
        fn = judges.resolve(plugin, error=JudgeError, model=model, trait=_as_trait(trait) if wants_trait else None)
        return FunctionJudge(fn, **_function_options({"name": label, **options}, trait))
    raise JudgeError(
        f"cannot make a judge from {type(plugin).__name__}: pass a registered name ({', '.join(judges.names())}), "
        "'name:kind', a judge class, a judge object with .score, or a function (questions, responses) -> scores"
    )


def _kind_option(plugin: type, name: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """`kind` for a judge class that takes no `kind` option: dropped when it is the class's own kind."""
    accepts = judges.keywords(plugin)[1]
    if "kind" not in options or accepts is None or "kind" in accepts:
        return options
    if getattr(plugin, "kind", None) != options["kind"]:
        label = name or plugin_name(plugin)
        raise JudgeError(f"the {label} judge has only kind {getattr(plugin, 'kind', '?')!r}, not {options['kind']!r}")
    return {k: v for k, v in options.items() if k != "kind"}


def _function_options(options: dict[str, Any], trait: Any) -> dict[str, Any]:
    unknown = set(options) - {"name", "kind", "trait"}
    if unknown:
        raise JudgeError(f"a function judge takes only name=, kind= and trait=; got {sorted(unknown)}")
    if "trait" not in options and trait is not None:
        options = {**options, "trait": _trait_name(trait)}
    return options


def _is_judge(obj: Any) -> bool:
    return not isinstance(obj, type) and all(hasattr(obj, a) for a in ("name", "kind", "score")) and callable(obj.score)


def _as_trait(trait: Any) -> TraitDataset | None:
    return None if trait is None else load_trait(trait)


def _trait_name(trait: Any) -> str:
    return trait.name if isinstance(trait, TraitDataset) else str(trait)


def _warn_on_trait_mismatch(judge: Any, trait: Any) -> None:
    measured = getattr(judge, "trait", None)
    if trait is None or measured is None or getattr(judge, "kind", None) != "trait":
        return
    given = _trait_name(trait)
    if measured.split("/")[-1] != given.split("/")[-1].split("[")[0]:
        warnings.warn(
            f"the {judge.name} judge measures '{measured}', but trait '{given}' was given; "
            "its scores are about its own trait",
            stacklevel=3,
        )


def trait_label(trait: TraitDataset) -> str:
    """The short name of a trait for prompts and `Judge.trait`: 'emotion/joy' -> 'joy'."""
    return trait.name.split("[")[0].rstrip("/").split("/")[-1]
