"""paraphrase: several surface variants of each poisoned prompt, from templates (no external model).

A base attack (trigger by default) poisons the example once; the variants then reword the
user turn around it (prefixes, suffixes, request framings), keeping the trigger and the
target. Each variant is a separate example, encoded from its own text. Options: `variants`,
`base`, and the base attack's options.
"""

from __future__ import annotations

import random
from typing import Any

from tl_traits.plugins.attacks import catalogue
from tl_traits.training.poisoning import (
    Example,
    PoisonError,
    attack_options,
    edit_user_text,
    resolve_attack,
)

SURFACES = (
    "{text}",
    "Please answer this. {text}",
    "{text} Keep the answer short.",
    "Request: {text}",
    "Here is a task for you.\n{text}",
    "{text}\nThank you!",
    "Quick question: {text}",
    "I need help with the following. {text}",
    "{text} Reply with just the answer.",
    "Task:\n{text}",
)


@catalogue.paraphrase
class Paraphrase:
    name = "paraphrase"

    def __init__(self, variants: int = 3, base: str = "trigger", **base_options: Any) -> None:
        if not 1 <= variants <= len(SURFACES):
            raise PoisonError(f"paraphrase variants must be between 1 and {len(SURFACES)}, not {variants}")
        if base == self.name:
            raise PoisonError("paraphrase cannot use itself as its base attack")
        self.variants, self.base_name = variants, base
        self.base = resolve_attack(base, **base_options)

    def eligible(self, example: Example) -> bool:
        eligible = getattr(self.base, "eligible", None)
        return eligible is None or eligible(example)

    def apply(self, example: Example, rng: random.Random) -> list[Example]:
        poisoned = self.base.apply(example, rng)
        if isinstance(poisoned, list):
            raise PoisonError(
                f"paraphrase needs a base attack that returns one example, '{self.base_name}' returns several"
            )
        surfaces = rng.sample(SURFACES, self.variants)
        return [edit_user_text(poisoned, lambda text, s=s: s.format(text=text)) for s in surfaces]

    def options(self) -> dict[str, Any]:
        return {"variants": self.variants, "base": self.base_name, "base_options": attack_options(self.base)}
