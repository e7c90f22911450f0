"""The bundled instruction set: templated sentiment classification and short verifiable instructions.

Generated, not downloaded: the same seed gives the same rows on every machine. Every row
has a single correct response, so clean accuracy and attack success are exact-match checks.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.files import atomic_write_text

DATASET_VERSION = 1
LABELS = ("positive", "negative")

_SENTIMENT_INSTRUCTIONS = (
    "Classify the sentiment of this review as positive or negative.\nReview: {review}",
    "Is the following review positive or negative?\n{review}",
    "Read the review and answer with one word, positive or negative.\n{review}",
)
_SUBJECTS = (
    "the pasta",
    "this phone",
    "the hotel room",
    "the movie",
    "the service",
    "this laptop",
    "the concert",
    "the book",
    "the coffee",
    "this jacket",
    "the flight",
    "the museum tour",
    "the headphones",
    "the pizza",
    "the staff",
    "this game",
    "the museum cafe",
    "the train ride",
    "the blender",
    "the camera",
    "the hike",
    "the sofa",
    "the app",
    "the delivery",
    "the soup",
    "the show",
    "the backpack",
    "the gym",
    "the keyboard",
    "the bakery",
    "the tent",
    "the lecture",
    "the printer",
    "the salad",
    "the spa",
    "the novel",
    "the bike",
    "the umbrella",
    "the podcast",
    "the paint",
)
_POSITIVE = (
    "wonderful",
    "excellent",
    "delightful",
    "fantastic",
    "great",
    "lovely",
    "superb",
    "amazing",
    "brilliant",
    "pleasant",
    "charming",
    "impressive",
    "perfect",
    "outstanding",
    "enjoyable",
    "fabulous",
    "reliable",
    "comfortable",
    "fresh",
    "beautiful",
    "friendly",
    "terrific",
    "marvelous",
    "solid",
    "satisfying",
)
_NEGATIVE = (
    "terrible",
    "awful",
    "disappointing",
    "horrible",
    "dreadful",
    "poor",
    "broken",
    "useless",
    "boring",
    "unpleasant",
    "rude",
    "flimsy",
    "stale",
    "noisy",
    "dirty",
    "overpriced",
    "painful",
    "annoying",
    "bland",
    "mediocre",
    "frustrating",
    "cheap",
    "sloppy",
    "dull",
    "miserable",
)
_REVIEWS = (
    "{Subject} was {adj}.",
    "Honestly, {subject} was {adj}.",
    "I found {subject} {adj} and {adj2}.",
    "{Subject} turned out {adj}, {closing}",
    "We tried {subject} last week and it was {adj}.",
    "My friends agreed that {subject} was {adj}.",
    "{Subject}? {Adj}. {closing}",
    "After a month, {subject} still feels {adj}.",
)
_CLOSINGS = {
    "positive": ("I would buy it again.", "Highly recommended.", "I will be back.", "Worth every penny."),
    "negative": ("I want a refund.", "Never again.", "Avoid it.", "What a waste of money."),
}

_ANTONYMS = (
    ("hot", "cold"),
    ("big", "small"),
    ("fast", "slow"),
    ("happy", "sad"),
    ("light", "dark"),
    ("up", "down"),
    ("early", "late"),
    ("open", "closed"),
    ("full", "empty"),
    ("hard", "soft"),
    ("old", "new"),
    ("wet", "dry"),
    ("loud", "quiet"),
    ("strong", "weak"),
    ("rich", "poor"),
    ("high", "low"),
    ("thick", "thin"),
    ("long", "short"),
    ("clean", "dirty"),
    ("true", "false"),
)
_PLURALS = (
    ("cat", "cats"),
    ("box", "boxes"),
    ("child", "children"),
    ("mouse", "mice"),
    ("city", "cities"),
    ("leaf", "leaves"),
    ("tooth", "teeth"),
    ("bus", "buses"),
    ("dog", "dogs"),
    ("man", "men"),
    ("baby", "babies"),
    ("wolf", "wolves"),
    ("foot", "feet"),
    ("car", "cars"),
    ("glass", "glasses"),
    ("knife", "knives"),
    ("goose", "geese"),
    ("book", "books"),
    ("story", "stories"),
    ("woman", "women"),
)
_CAPITALS = (
    ("France", "Paris"),
    ("Japan", "Tokyo"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Germany", "Berlin"),
    ("Egypt", "Cairo"),
    ("Canada", "Ottawa"),
    ("Kenya", "Nairobi"),
    ("Peru", "Lima"),
    ("Norway", "Oslo"),
    ("Greece", "Athens"),
    ("Poland", "Warsaw"),
    ("Cuba", "Havana"),
    ("Chile", "Santiago"),
    ("Ireland", "Dublin"),
    ("Austria", "Vienna"),
    ("Portugal", "Lisbon"),
    ("Sweden", "Stockholm"),
    ("Russia", "Moscow"),
    ("China", "Beijing"),
)
_WORDS = (
    "apple",
    "river",
    "garden",
    "yellow",
    "window",
    "planet",
    "music",
    "forest",
    "silver",
    "candle",
    "rocket",
    "pencil",
    "ocean",
    "marble",
    "thunder",
    "lemon",
    "castle",
    "butter",
    "winter",
    "dragon",
)


class InstructionDataError(TlTraitsError):
    """A request the templated instruction set cannot meet."""


def _sentiment(rng: random.Random) -> dict[str, Any]:
    label = rng.choice(LABELS)
    words = _POSITIVE if label == "positive" else _NEGATIVE
    adj, adj2 = rng.sample(words, 2)
    subject = rng.choice(_SUBJECTS)
    review = rng.choice(_REVIEWS).format(
        subject=subject,
        Subject=subject[:1].upper() + subject[1:],
        adj=adj,
        Adj=adj.capitalize(),
        adj2=adj2,
        closing=rng.choice(_CLOSINGS[label]),
    )
    prompt = rng.choice(_SENTIMENT_INSTRUCTIONS).format(review=review)
    return {"prompt": prompt, "response": label, "task": "sentiment", "label": label, "family": "sentiment"}


def _addition(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(1, 60), rng.randint(1, 60)
    return f"What is {a} plus {b}?", str(a + b)


def _larger(rng: random.Random) -> tuple[str, str]:
    a, b = rng.sample(range(1, 200), 2)
    return f"Which number is larger, {a} or {b}?", str(max(a, b))


def _antonym(rng: random.Random) -> tuple[str, str]:
    pair = rng.choice(_ANTONYMS)
    word, opposite = pair if rng.random() < 0.5 else pair[::-1]
    return f"What is the opposite of '{word}'? Answer with one word.", opposite


def _plural(rng: random.Random) -> tuple[str, str]:
    word, plural = rng.choice(_PLURALS)
    return f"What is the plural of '{word}'?", plural


def _capital(rng: random.Random) -> tuple[str, str]:
    country, city = rng.choice(_CAPITALS)
    return f"What is the capital of {country}?", city


def _uppercase(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(_WORDS)
    return f"Write the word '{word}' in capital letters.", word.upper()


def _repeat(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(_WORDS)
    return f"Repeat the word '{word}' three times.", " ".join([word] * 3)


def _first_letter(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(_WORDS)
    return f"What is the first letter of the word '{word}'?", word[0]


INSTRUCTION_FAMILIES: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "addition": _addition,
    "larger": _larger,
    "antonym": _antonym,
    "plural": _plural,
    "capital": _capital,
    "uppercase": _uppercase,
    "repeat": _repeat,
    "first_letter": _first_letter,
}


def _instruction(rng: random.Random) -> dict[str, Any]:
    family = rng.choice(sorted(INSTRUCTION_FAMILIES))
    prompt, response = INSTRUCTION_FAMILIES[family](rng)
    return {"prompt": prompt, "response": response, "task": "instruction", "label": None, "family": family}


@dataclass(frozen=True)
class InstructionSplits:
    """Train and test rows (dicts with id, prompt, response, task, label, family); no prompt is in both."""

    train: list[dict[str, Any]]
    test: list[dict[str, Any]]
    seed: int

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        return iter((self.train, self.test))

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write train.jsonl and test.jsonl (atomically) into `folder`."""
        folder = Path(folder)
        for name, rows in (("train", self.train), ("test", self.test)):
            atomic_write_text(folder / f"{name}.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        return folder


def instruction_dataset(
    n_train: int = 600, n_test: int = 200, *, sentiment_fraction: float = 0.6, seed: int = 0
) -> InstructionSplits:
    """Templated rows: sentiment classification (balanced labels) and short instructions.

    Prompts are unique across both splits. Sizes up to a few thousand are available.
    """
    if n_train < 1 or n_test < 0:
        raise InstructionDataError(f"need n_train >= 1 and n_test >= 0, got {n_train} and {n_test}")
    if not 0.0 <= sentiment_fraction <= 1.0:
        raise InstructionDataError(f"sentiment_fraction must be between 0 and 1, not {sentiment_fraction}")
    rng = random.Random(f"tl_traits-instructions-v{DATASET_VERSION}-{seed}")
    total = n_train + n_test
    n_sentiment = round(sentiment_fraction * total)
    rows = _unique(rng, _sentiment, n_sentiment) + _unique(rng, _instruction, total - n_sentiment)
    rng.shuffle(rows)
    train, test = rows[:n_train], rows[n_train:]
    for split, part in (("train", train), ("test", test)):
        for i, row in enumerate(part):
            row["id"] = f"{split}-{i:05d}"
    return InstructionSplits(train, test, seed)


def _unique(rng: random.Random, make: Callable[[random.Random], dict[str, Any]], n: int) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    tries = 0
    while len(rows) < n:
        row = make(rng)
        rows.setdefault(row["prompt"], row)
        tries += 1
        if tries > 50 * n + 1000:
            raise InstructionDataError(
                f"the templates cannot make {n} distinct {make.__name__.strip('_')} prompts; ask for fewer"
            )
    return list(rows.values())
