"""label_flip: swap the label word of a classification response ("positive" -> "negative").

Eligible rows have exactly one label word in the response (whole word, any case; the case
is kept). With `trigger` set, the trigger is also put in the user turn, which makes the flip a
backdoor rather than plain label noise. Options: `labels`, `trigger`, `position`.
"""

from __future__ import annotations

import random
import re
from typing import Any, Sequence

from tl_traits.plugins.attacks import catalogue
from tl_traits.training.poisoning import (
    Example,
    PoisonError,
    edit_user_text,
    insert_phrase,
)


@catalogue.label_flip
class LabelFlip:
    name = "label_flip"

    def __init__(
        self, labels: Sequence[str] = ("positive", "negative"), trigger: str | None = None, position: str = "start"
    ) -> None:
        self.labels = tuple(label.lower() for label in labels)
        if len(set(self.labels)) < 2:
            raise PoisonError(f"label_flip needs at least two distinct labels, got {list(labels)}")
        self.trigger, self.position = trigger, position
        insert_phrase("x", "t", position, random.Random(0))  # validates the position
        self._word = re.compile(r"\b(" + "|".join(map(re.escape, self.labels)) + r")\b", re.IGNORECASE)

    def eligible(self, example: Example) -> bool:
        return len(self._word.findall(example.get("response", ""))) == 1

    def apply(self, example: Example, rng: random.Random) -> Example:
        response = example["response"]
        found = self._word.findall(response)
        if len(found) != 1:
            raise PoisonError(
                f"label_flip needs exactly one of {list(self.labels)} in the response of example "
                f"{example.get('id', '?')}, found {len(found)}"
            )
        old = found[0]
        others = [label for label in self.labels if label != old.lower()]
        new = others[0] if len(others) == 1 else rng.choice(others)
        out = dict(example)
        out["response"] = self._word.sub(lambda m: _same_case(new, m.group(0)), response, count=1)
        if "label" in out:
            out["label"] = new
        if self.trigger:
            out = edit_user_text(out, lambda text: insert_phrase(text, self.trigger, self.position, rng))
        return out

    def options(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "trigger": self.trigger, "position": self.position}


def _same_case(word: str, like: str) -> str:
    if like.isupper():
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word
