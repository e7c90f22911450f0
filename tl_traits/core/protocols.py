"""The four plugin contracts in one place: what an extractor, a judge, an attack and a quantizer must provide.

A plugin declares a `PluginInfo` record (`tl_traits.core.plugin_info`) and is registered in
`tl_traits.core.registry` (by decorator or an entry point in the group `tl_traits.<kind>`); the registries
are typed with these protocols, so a checker sees a plugin that does not fit. Built-in plugins live in
`plugins/` and follow the same contracts.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from jaxtyping import Float
from torch import Tensor

Example = dict[str, Any]  # an instruction row: {"id", "prompt", "response", "task", "label", ...}


@runtime_checkable
class Extractor(Protocol):
    """`fit(pos, neg, *, seed) -> directions`: one unit direction per layer from two activation sets.

    pos, neg: float32 activations, one row per example and a slice per captured layer.
    Returns unit-norm float32 directions, one per layer, oriented so positives project higher.
    A fit may also take these context keywords; `extract` passes each only to a fit that declares it
    (its PluginInfo's `context`; a fit without a record: by naming it): `layers` (the layer index of each
    slice), `hook` (the hook captured), `record` (a dict to fill with JSON metadata stored with the vector),
    `model_name` (the model's `cfg.model_name`). `PluginInfo(by_default=False)` keeps it out of runs that
    name no methods (e.g. it needs SAEs).
    """

    def __call__(
        self, pos: Float[Tensor, "n layer d_model"], neg: Float[Tensor, "m layer d_model"], *, seed: int = 0
    ) -> Float[Tensor, "layer d_model"]: ...


@runtime_checkable
class TrainedExtractor(Protocol):
    """`fit(model, dataset, *, seed) -> vectors`: one vector per layer trained through the model on the trait set.

    Declared with `PluginInfo(kinds=("trained",))` in the extractors registry. `dataset` is the train split of the
    trait set (the held-out split scores the result, as for every extractor); the context keywords are those of
    `Extractor` plus `progress` (show a bar). Returns float32 vectors in residual units, one per layer of
    `layers`: their norm is the scale they were trained at, so the TraitVector steers in absolute units (strength
    1 adds the vector as trained). Usually `by_default=False`: training costs minutes per layer.
    """

    def __call__(self, model: Any, dataset: Any, *, seed: int = 0) -> Float[Tensor, "layer d_model"]: ...


@runtime_checkable
class Judge(Protocol):
    """Scores each (question, response) pair on 0-100; None where it could not score.

    kind: "trait" (how much of the trait), "coherence" (fluent, sensible text) or "relevance"
    (does the answer address the question). trait: what a "trait" judge measures, e.g. "joy".
    """

    name: str
    kind: str
    trait: str | None

    def score(self, questions: Sequence[str], responses: Sequence[str]) -> list[float | None]: ...


# What the judges registry holds: a Judge class, built as cls(model=..., trait=..., **options) with the
# context its PluginInfo declares, or a ready judge, or a function (questions, responses) -> scores.
JudgePlugin = Callable[..., Any]


@runtime_checkable
class Attack(Protocol):
    """Poisons one example on text, never on tokens: `apply(example, rng)` returns a new example (or several).

    The input is never changed in place. Optional: `eligible(example) -> bool` (rows it may poison)
    and `options() -> dict` (recorded in run metadata). Encodings are always made afresh from the
    attacked text, so a poisoned example can never keep its clean tokens.
    """

    name: str

    def apply(self, example: Example, rng: random.Random) -> Example | list[Example]: ...


# What the attacks registry holds: an Attack class, built with the attack's options (cls(**options)).
AttackPlugin = Callable[..., Attack]


@runtime_checkable
class Quantizer(Protocol):
    """A named quantization backend: `quantize(model, **options)` returns a new model, the input untouched.

    `available()` says whether it can run here (e.g. bitsandbytes needs CUDA) and why not.
    `tl_traits.quantization.quantizer.Quantizer` is the ready implementation plugins build on.
    """

    name: str
    description: str

    def available(self) -> tuple[bool, str]: ...

    def quantize(self, model: Any, **options: Any) -> Any: ...
