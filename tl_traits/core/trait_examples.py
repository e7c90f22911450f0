"""One example of a trait set (`TraitExample`) and the reading of rows into examples: a JSONL or dataset row,
a side of a `from_pairs` pair, a row's label."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from tl_traits.core.steering_questions import TraitDataError


@dataclass(frozen=True)
class TraitExample:
    prompt: str
    response: str | None = None
    system: str | None = None

    def messages(self) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return msgs + [{"role": "user", "content": self.prompt}]

    def to_dict(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (("prompt", self.prompt), ("response", self.response), ("system", self.system))
            if v is not None
        }


def example_from_row(row: dict[str, Any], where: str, line: int | None) -> TraitExample:
    """The example a row `{"prompt", "response"?, "system"?}` holds; a bad row is an error naming where it is."""
    at = where if line is None else f"{where} line {line}"
    if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
        raise TraitDataError(f"{at}: each row needs a string 'prompt'")
    for key in ("response", "system"):
        if row.get(key) is not None and not isinstance(row[key], str):
            raise TraitDataError(f"{at}: '{key}' must be a string")
    return check_text(TraitExample(row["prompt"], row.get("response"), row.get("system")), at)


def check_text(example: TraitExample, where: str) -> TraitExample:
    """`example` when its texts are valid Unicode; a lone surrogate ("\\ud800", half of an emoji's JSON escape)
    cannot be tokenized or hashed, so it is an error naming where it is."""
    for key, text in (("prompt", example.prompt), ("response", example.response), ("system", example.system)):
        try:
            (text or "").encode("utf-8")
        except UnicodeEncodeError as exc:
            raise TraitDataError(
                f"{where}: the {key} holds a lone surrogate {(text or '')[exc.start]!r} at "
                f"character {exc.start}, which is not valid Unicode (half of an emoji's \\ud83d... "
                "escape?); fix or remove it"
            ) from None
    return example


_TRUE = {"1", "true", "positive", "pos", "yes"}
_FALSE = {"0", "false", "negative", "neg", "no"}


def examples_by_label(rows: Iterable[dict[str, Any]], source: str) -> tuple[list[TraitExample], list[TraitExample]]:
    """(positive, negative) examples of rows labelled 1/0, true/false or positive/negative, in row order."""
    positive: list[TraitExample] = []
    negative: list[TraitExample] = []
    for i, row in enumerate(rows, start=1):
        if "label" not in row:
            raise TraitDataError(f"{source} row {i} has no 'label' (1/0 or positive/negative)")
        label = str(row["label"]).strip().lower()
        if label not in _TRUE | _FALSE:
            raise TraitDataError(
                f"{source} row {i}: label {row['label']!r} is not 1/0, true/false or positive/negative"
            )
        (positive if label in _TRUE else negative).append(example_from_row(row, source, i))
    return positive, negative


def pair_side(side: Any, index: int, where: str) -> tuple[str, TraitExample]:
    """One side of a from_pairs pair: ("plain" | "chat", its example)."""
    if isinstance(side, str) and side.strip():
        return "plain", TraitExample(side)
    if isinstance(side, (tuple, list)) and len(side) == 2 and all(isinstance(x, str) and x.strip() for x in side):
        return "chat", TraitExample(side[0], side[1])
    if isinstance(side, dict):
        return "chat", example_from_row(side, where, None)
    raise TraitDataError(
        f"pair {index}: each side must be a non-empty string, a (prompt, response) tuple "
        f"or a {{'prompt', 'response'}} row, not {side!r:.80}"
    )
