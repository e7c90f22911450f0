"""Poison an instruction dataset with an attack plugin: `poison(rows, "trigger", rate=0.05, seed=0)`.

Attacks change text only (`apply(example, rng)`); encodings are always made afresh from the
attacked text, so no poisoned example can keep the tokens of its clean version.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    read_jsonl,
)
from tl_traits.core.prompts import PromptInput
from tl_traits.core.protocols import Attack, Example
from tl_traits.core.plugin_info import plugin_name
from tl_traits.core.registry import attacks

POSITIONS = ("start", "end", "random")
ROWS_FILE, INDICES_FILE, INFO_FILE = "poisoned_train.jsonl", "poisoned_indices.npy", "poison.json"


class PoisonError(TlTraitsError):
    """A poisoning request that cannot be met (bad rate, too few eligible examples, unknown attack)."""


# -- text helpers the attack plugins share -------------------------------------------------------
def user_text(prompt: PromptInput) -> str:
    """The text of the user turn an attack edits: the string itself, or the last user message."""
    if isinstance(prompt, str):
        return prompt
    for message in reversed(list(prompt)):
        if message.get("role") == "user":
            return message["content"]
    raise PoisonError("this conversation has no user message for the attack to edit")


def with_user_text(prompt: PromptInput, text: str) -> PromptInput:
    """`prompt` with its user turn (see `user_text`) replaced by `text`; other messages kept."""
    if isinstance(prompt, str):
        return text
    messages = [dict(m) for m in prompt]
    for message in reversed(messages):
        if message.get("role") == "user":
            message["content"] = text
            return messages
    raise PoisonError("this conversation has no user message for the attack to edit")


def insert_phrase(text: str, phrase: str, position: str, rng: random.Random) -> str:
    """Put `phrase` at the start, the end or a random word boundary of `text`, separated by spaces."""
    if position not in POSITIONS:
        raise PoisonError(f"unknown trigger position {position!r}; use one of {', '.join(POSITIONS)}")
    if position == "start":
        return f"{phrase} {text}" if text else phrase
    if position == "end":
        return f"{text} {phrase}" if text else phrase
    gaps = [m.start() for m in re.finditer(r"\s+", text)]
    cut = rng.choice([0, *gaps, len(text)])
    head, tail = text[:cut].rstrip(), text[cut:].lstrip()
    return " ".join(part for part in (head, phrase, tail) if part)


def edit_user_text(example: Example, edit: Callable[[str], str]) -> Example:
    """A copy of `example` whose user turn is `edit(user turn)`."""
    out = dict(example)
    out["prompt"] = with_user_text(example["prompt"], edit(user_text(example["prompt"])))
    return out


# -- poisoning a dataset -------------------------------------------------------------------------------
@dataclass
class PoisonedDataset(Sequence[Example]):
    """The attacked rows (a sequence of dicts) and which of them the attack wrote.

    Attacks that return several variants (paraphrase) replace the chosen row with the first
    and append the rest at the end; `poisoned_indices` (sorted) counts them all, and each
    appended row names its source in `variant_of`.
    """

    rows: list[Example]
    poisoned_indices: list[int]
    attack: str
    rate: float
    seed: int
    options: dict[str, Any] = field(default_factory=dict)
    n_clean_rows: int = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Example:  # type: ignore[override]
        return self.rows[i]

    def __iter__(self) -> Iterator[Example]:
        return iter(self.rows)

    @property
    def is_poisoned(self) -> list[bool]:
        chosen = set(self.poisoned_indices)
        return [i in chosen for i in range(len(self.rows))]

    def metadata(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "rate": self.rate,
            "seed": self.seed,
            "options": self.options,
            "n_rows": len(self.rows),
            "n_clean_rows": self.n_clean_rows,
            "n_poisoned": len(self.poisoned_indices),
        }

    def save(self, folder: str | os.PathLike[str], **extra: Any) -> Path:
        """Write poisoned_train.jsonl, poisoned_indices.npy (no pickle) and poison.json (+ `extra`), atomically."""
        folder = Path(folder)
        atomic_write_text(
            folder / ROWS_FILE, "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in self.rows)
        )
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(self.poisoned_indices, dtype=np.int64), allow_pickle=False)
        atomic_write_bytes(folder / INDICES_FILE, buffer.getvalue())
        atomic_write_json(folder / INFO_FILE, {**json.loads(json.dumps(self.metadata(), default=str)), **extra})
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> "PoisonedDataset":
        """Read back what `save` wrote (a `tl-traits poison` folder or a sweep run folder)."""
        folder = Path(folder)
        info = json.loads((folder / INFO_FILE).read_text())
        rows = read_jsonl(folder / ROWS_FILE, PoisonError)
        indices = np.load(folder / INDICES_FILE, allow_pickle=False).tolist()
        return cls(
            rows,
            indices,
            info["attack"],
            info["rate"],
            info["seed"],
            info.get("options", {}),
            info.get("n_clean_rows", 0),
        )


def resolve_attack(attack: str | Attack | type | Callable[..., Any], **options: Any) -> Attack:
    """An attack instance from a registered name, a plugin class (built with `options`), an instance (then no
    options), or a function `(example, rng) -> example(s)` (called with `options`)."""
    plugin = attacks.resolve(attack, options=options, error=PoisonError)
    if attacks.is_built(plugin):
        return plugin
    if callable(plugin) and not isinstance(attack, type):
        return FunctionAttack(plugin, attack if isinstance(attack, str) else plugin_name(attack))
    raise PoisonError(f"{plugin!r} is not an attack: it needs an apply(example, rng) method")


@dataclass
class FunctionAttack:
    """A plain function `(example, rng) -> example or [examples]` as an attack."""

    fn: Callable[[Example, random.Random], Example | list[Example]]
    name: str

    def apply(self, example: Example, rng: random.Random) -> Example | list[Example]:
        return self.fn(example, rng)


def attack_options(attack: Attack) -> dict[str, Any]:
    """The attack's settings for run metadata (its `options()` when it has one)."""
    describe = getattr(attack, "options", None)
    return dict(describe()) if callable(describe) else {}


def poison(
    dataset: Iterable[Mapping[str, Any]],
    attack: str | Attack | type | Callable[..., Any],
    rate: float,
    seed: int = 0,
    **options: Any,
) -> PoisonedDataset:
    """Attack round(rate * len(dataset)) examples chosen at random (with `seed`) among eligible ones.

    rate 0 returns the rows unchanged; a positive rate that rounds to zero examples warns with
    the count. Eligibility is the attack's `eligible(example)` (e.g. label_flip needs a label word).
    attack: a registered name, an attack class (built with `options`), an instance, or a function
        `(example, rng) -> example(s)` (called with `options`): see `resolve_attack`.
    """
    rows: list[Any] = list(dataset)  # checked row by row below
    if not rows:
        raise PoisonError("poison got an empty dataset")
    not_rows = [i for i, r in enumerate(rows) if not isinstance(r, Mapping)]
    if not_rows:
        raise PoisonError(
            f'poison needs each row to be an object like {{"prompt": ..., "response": ...}}; '
            f"row {not_rows[0] + 1} is a {type(rows[not_rows[0]]).__name__}"
        )
    rows = [dict(r) for r in rows]
    if not 0.0 <= rate <= 1.0:
        raise PoisonError(f"rate must be a fraction between 0 and 1, not {rate}")
    plugin = resolve_attack(attack, **options)
    name = getattr(plugin, "name", type(plugin).__name__)
    made = PoisonedDataset(rows, [], name, rate, seed, attack_options(plugin), len(rows))
    n = round(rate * len(rows))
    if n == 0:
        if rate > 0:
            warnings.warn(
                f"rate {rate} of {len(rows)} examples rounds to 0 poisoned examples; nothing was changed "
                f"(the smallest rate that poisons one example here is {0.5 / len(rows):.4g})",
                stacklevel=2,
            )
        return made
    eligible_fn = getattr(plugin, "eligible", None)
    eligible = [i for i, r in enumerate(rows) if eligible_fn is None or eligible_fn(r)]
    if len(eligible) < n:
        raise PoisonError(
            f"rate {rate} asks for {n} poisoned examples but only {len(eligible)} of {len(rows)} are eligible "
            f"for the '{name}' attack; lower the rate or add eligible examples"
        )
    chosen = sorted(random.Random(seed).sample(eligible, n))
    poisoned = list(chosen)
    for index in chosen:
        result = plugin.apply(dict(rows[index]), random.Random(f"{seed}:{index}"))
        variants = result if isinstance(result, list) else [result]
        if not variants:
            raise PoisonError(f"attack '{name}' returned no example for row {index}")
        for k, variant in enumerate(variants):
            variant = {**variant, "attack": name}
            if k == 0:
                rows[index] = variant
            else:
                rows.append({**variant, "id": f"{rows[index].get('id', index)}~{k}", "variant_of": index})
                poisoned.append(len(rows) - 1)
    made.poisoned_indices = sorted(poisoned)
    return made
