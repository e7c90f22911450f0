"""Trait datasets: positive/negative examples, a definition, steering questions; and their loaders.

A trait folder holds `positive.jsonl`, `negative.jsonl` (`{"prompt", "system"?, "response"?}`),
`definition.txt` and `steering.json` (steering questions split into dev and test; docs/traits.md).
"""

from __future__ import annotations

import hashlib
import json
import random
import warnings
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence

from tl_traits.core.errors import check_count
from tl_traits.core.files import parse_json_object, parse_jsonl, read_jsonl
from tl_traits.core.stats import shared_key_groups
from tl_traits.core.steering_questions import (  # noqa: F401  (re-exported: part of a trait set's API)
    STEERING_PARTS,
    SteeringQuestions,
    TraitDataError,
    parse_steering_plans,
    split_questions,
)
from tl_traits.core.trait_examples import (  # noqa: F401  (TraitExample, check_text re-exported: a trait set's API)
    TraitExample,
    check_text,
    example_from_row,
    examples_by_label,
    pair_side,
)
from tl_traits.core.trial import trial_limit, trial_size


@dataclass(frozen=True)
class TraitDataset:
    """Positive and negative examples of one trait, plus what steering and judging need."""

    name: str
    positive: tuple[TraitExample, ...]
    negative: tuple[TraitExample, ...]
    definition: str = ""
    questions: tuple[str, ...] = ()
    eval_prompt: str | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    chat: bool | None = None  # None: the chat template when the tokenizer has one; False: plain text as given
    steering: dict[str, SteeringQuestions] = field(default_factory=dict, compare=False)  # "toward" / "away"

    def __post_init__(self) -> None:
        object.__setattr__(self, "positive", tuple(self.positive))
        object.__setattr__(self, "negative", tuple(self.negative))
        object.__setattr__(self, "questions", tuple(self.questions))

    def __repr__(self) -> str:
        plan = self.steering_questions(1)
        questions = (
            f"steering questions {len(plan.dev)} dev + {len(plan.test)} test"
            if plan.dev or plan.test
            else "no steering questions"
        )
        return f"TraitDataset({self.name!r}: {len(self.positive)} positive, {len(self.negative)} negative, {questions})"

    @classmethod
    def from_pairs(
        cls,
        pairs: Sequence[tuple[Any, Any]],
        *,
        name: str = "pairs",
        definition: str = "",
        questions: Sequence[str] = (),
    ) -> "TraitDataset":
        """A trait set from in-memory (positive, negative) pairs, as steering-vectors and repeng train.

        Each side is plain text (a string: tokenized as given, no chat template; extract then reads
        the last token, `prompt[-1]`, by default), a (prompt, response) tuple, or a chat row
        `{"prompt", "response"?, "system"?}` (both formatted with the model's chat template).
        A pair given more than once is kept (it weighs more in the fit) with a warning; the held-out
        split keeps its copies on one side, so no copy of a training pair is scored as held-out.
        """
        if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence) or not pairs:
            raise TraitDataError("from_pairs needs a non-empty list of (positive, negative) pairs")
        positive: list[TraitExample] = []
        negative: list[TraitExample] = []
        kinds: set[str] = set()
        for i, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TraitDataError(f"pair {i} is not a (positive, negative) pair: {pair!r:.80}")
            for side, out, label in zip(pair, (positive, negative), ("positive", "negative")):
                kind, example = pair_side(side, i, f"from_pairs pair {i} ({label} side)")
                kinds.add(kind)
                out.append(check_text(example, f"from_pairs pair {i} ({label} side)"))
        if len(kinds) > 1:
            raise TraitDataError(
                "from_pairs got plain strings and chat rows mixed; give all plain text or all chat rows"
            )
        repeats = len(pairs) - len(set(zip(positive, negative)))
        if repeats:
            warnings.warn(
                f"from_pairs: {repeats} of the {len(pairs)} pairs repeat an earlier pair; they are kept (and "
                "weigh more in the fit), and the held-out split keeps every copy on one side",
                stacklevel=2,
            )
        return cls(
            name=name,
            positive=tuple(positive),
            negative=tuple(negative),
            definition=definition,
            questions=tuple(questions),
            source="pairs",
            chat=False if kinds == {"plain"} else None,
            extra={"paired": True},
        )

    # -- views -------------------------------------------------------------------------------
    @property
    def examples(self) -> list[TraitExample]:
        """Positives first, then negatives (the order `labels` describes)."""
        return [*self.positive, *self.negative]

    @property
    def labels(self) -> list[int]:
        return [1] * len(self.positive) + [0] * len(self.negative)

    @property
    def has_responses(self) -> bool:
        return all(ex.response is not None for ex in self.examples)

    @property
    def paired(self) -> bool:
        """Line i of positive and negative form a contrastive pair: they share prompt and system, or
        came in as one pair (`from_pairs`). A split keeps each pair on one side."""
        if len(self.positive) == len(self.negative) and self.extra.get("paired"):
            return True
        return len(self.positive) == len(self.negative) and all(
            (p.prompt, p.system) == (n.prompt, n.system) for p, n in zip(self.positive, self.negative)
        )

    def steering_questions(self, direction: int = 1) -> SteeringQuestions:
        """The dev / test questions (and what the score combines) for steering toward (+1) or away (-1).

        From steering.json when it splits them; otherwise `questions` alternate between dev and test.
        """
        if direction not in (1, -1):
            raise TraitDataError(f"direction must be +1 (toward) or -1 (away), not {direction!r}")
        toward = self.steering.get("toward")
        if toward is not None and toward.dev + toward.test == self.questions:
            own = toward
        else:  # built in code, or `questions` replaced: alternate them
            dev, test = split_questions(self.questions)
            own = SteeringQuestions(dev, test, *((toward.parts, toward.measures) if toward else ()))
        if direction > 0:
            return own
        away = self.steering.get("away")
        if away is None:
            return replace(own, parts=STEERING_PARTS, measures="")
        shares = toward is not None and (away.dev, away.test) == (toward.dev, toward.test)
        return replace(away, dev=own.dev, test=own.test) if shares else away

    def description(self, level: str) -> str:
        """The `HIGH:` or `LOW:` line of the definition (judges compare responses to them)."""
        prefix = level.upper() + ":"
        for line in self.definition.splitlines():
            if line.strip().upper().startswith(prefix):
                return line.split(":", 1)[1].strip()
        raise TraitDataError(f"trait '{self.name}' definition has no '{prefix}' line; add one to definition.txt")

    def content_hash(self) -> str:
        """sha256 of the examples, definition and questions: identifies the data an artifact came from."""
        return _sha256({**self._examples(), "definition": self.definition, "questions": list(self.questions)})

    def examples_hash(self) -> str:
        """sha256 of the positive and negative examples alone: what a judge fitted on them depends on
        (not the questions)."""
        return _sha256(self._examples())

    def _examples(self) -> dict[str, list[dict[str, Any]]]:
        return {"positive": [e.to_dict() for e in self.positive], "negative": [e.to_dict() for e in self.negative]}

    def validate(self, *, max_ratio: float = 3.0, min_per_class: int = 2) -> "TraitDataset":
        """Refuse empty, identical or badly unbalanced sets with a message saying how to fix them.

        Copies of one example count once toward `min_per_class`."""
        n_pos, n_neg = len(self.positive), len(self.negative)
        distinct_pos, distinct_neg = len(set(self.positive)), len(set(self.negative))
        if distinct_pos < min_per_class or distinct_neg < min_per_class:
            copies = " distinct" if (distinct_pos, distinct_neg) != (n_pos, n_neg) else ""
            raise TraitDataError(
                f"trait '{self.name}' has {distinct_pos}{copies} positive and {distinct_neg}{copies} negative "
                f"examples; each side needs at least {min_per_class}. "
                + (
                    f"Pass at least {min_per_class} different (positive, negative) pairs to from_pairs."
                    if self.source == "pairs"
                    else f"Add rows labelled 1 and 0 to {self.source}."
                    if self.source.endswith(".jsonl") or self.source.startswith("datasets:")
                    else "Add examples to positive.jsonl / negative.jsonl."
                )
            )
        if set(self.positive) == set(self.negative):
            raise TraitDataError(
                f"trait '{self.name}': the positive and negative examples are the same {distinct_pos} texts, so "
                "there is no difference to extract; each side must hold examples of its own pole of the trait"
            )
        if max(n_pos, n_neg) > max_ratio * min(n_pos, n_neg):
            raise TraitDataError(
                f"trait '{self.name}' is unbalanced ({n_pos} positive vs {n_neg} negative, more than "
                f"{max_ratio:g}:1); balance the sets or pass a larger max_ratio"
            )
        return self

    # -- derived sets ---------------------------------------------------------------------------
    def split_indices(self, val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
        """Stratified (train, val) indices into `examples`; contrastive pairs stay on one side.

        Copies stay on one side too: identical examples (and, in a paired set, pairs that share a
        positive or a negative) form one unit of the split, so a held-out example is never a copy of
        a training one. `val_fraction` is the share of these units held out."""
        if not 0.0 <= val_fraction < 1.0:
            raise TraitDataError(f"val_split must be in [0, 1), got {val_fraction}")
        rng = random.Random(seed)

        def cut(keys: list[tuple[Any, ...]]) -> tuple[list[int], list[int]]:
            units = shared_key_groups(keys)
            order, n = list(range(len(units))), len(units)
            rng.shuffle(order)
            k = min(max(round(n * val_fraction), 1), n - 1) if val_fraction > 0 else 0
            return sorted(i for u in order[k:] for i in units[u]), sorted(i for u in order[:k] for i in units[u])

        n_pos = len(self.positive)
        if self.paired:  # a pair is one unit; pairs sharing a positive or a negative are joined
            train_pos, val_pos = train_neg, val_neg = cut(
                [(("+", p), ("-", n)) for p, n in zip(self.positive, self.negative)]
            )
        else:
            train_pos, val_pos = cut([(p,) for p in self.positive])
            train_neg, val_neg = cut([(n,) for n in self.negative])
        return train_pos + [n_pos + i for i in train_neg], val_pos + [n_pos + i for i in val_neg]

    def split(self, val_fraction: float, seed: int = 0) -> tuple["TraitDataset", "TraitDataset"]:
        """The train and validation sets of `split_indices`."""
        examples, n_pos = self.examples, len(self.positive)

        def subset(index: list[int], tag: str) -> TraitDataset:
            return replace(
                self,
                name=f"{self.name}[{tag}]",
                positive=tuple(examples[i] for i in index if i < n_pos),
                negative=tuple(examples[i] for i in index if i >= n_pos),
            )

        train, val = self.split_indices(val_fraction, seed)
        return subset(train, "train"), subset(val, "val")

    def with_responses(self, positive: Sequence[str], negative: Sequence[str]) -> "TraitDataset":
        if len(positive) != len(self.positive) or len(negative) != len(self.negative):
            raise TraitDataError("with_responses needs one response per example on each side")
        return replace(
            self,
            positive=tuple(replace(e, response=r) for e, r in zip(self.positive, positive)),
            negative=tuple(replace(e, response=r) for e, r in zip(self.negative, negative)),
        )

    def limit(self, n: int) -> "TraitDataset":
        """The first n examples of each side, and of each steering split (to try a run small first)."""
        check_count(n, "limit", TraitDataError)
        plans = {way: self.steering_questions(1 if way == "toward" else -1).limit(n) for way in ("toward", "away")}
        return replace(
            self,
            positive=self.positive[:n],
            negative=self.negative[:n],
            steering=plans,
            questions=plans["toward"].dev + plans["toward"].test,
        )


# -- loading ---------------------------------------------------------------------------------------
BUNDLED_ROOT = "traits"


def list_traits() -> list[str]:
    """Names of the bundled trait sets, e.g. 'emotion/joy'."""
    root = resources.files("tl_traits") / BUNDLED_ROOT
    found = []
    for category in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name):
        for trait in sorted((p for p in category.iterdir() if p.is_dir()), key=lambda p: p.name):
            if (trait / "positive.jsonl").is_file():
                found.append(f"{category.name}/{trait.name}")
    return found


def load_trait(source: Any, *, name: str | None = None) -> TraitDataset:
    """A bundled name ('emotion/joy'), a trait folder, a labelled JSONL file, or a HF dataset.

    JSONL and HF datasets carry a `label` column (1/0, true/false or "positive"/"negative")
    next to `prompt`, and optionally `response` and `system`. Under TL_TRAITS_LIMIT=N, a set read
    here is cut to its first N examples and steering questions (`limit`), for a trial run.
    """
    if isinstance(source, TraitDataset):
        return source
    found = _read_trait(source, name)
    if trial_limit() is None:
        return found
    n = max(
        len(found.positive), len(found.negative), *(len(q) for p in found.steering.values() for q in (p.dev, p.test))
    )
    return found.limit(trial_size(n, f"trait set {found.name}"))


def _read_trait(source: Any, name: str | None) -> TraitDataset:
    if _is_hf_dataset(source):
        return _from_rows(_hf_rows(source), name or "hf-dataset", source=f"datasets:{name or 'dataset'}")
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if path.is_dir():
            return _from_folder(path, name or path.name)
        if path.is_file():
            rows = read_jsonl(path, TraitDataError)
            return _from_rows(rows, name or path.stem, source=str(path))
        text = str(source)
        if text in list_traits():
            return _from_folder(resources.files("tl_traits") / BUNDLED_ROOT / text, text, source=f"bundled:{text}")
        if text.startswith("hf:"):
            import datasets

            ds = datasets.load_dataset(text[3:])
            return load_trait(ds, name=name or text[3:])
        raise TraitDataError(
            f"no trait set '{text}': not a bundled name ({', '.join(list_traits())}), a folder, or a file. "
            "Use 'hf:<dataset>' for a Hugging Face dataset."
        )
    raise TraitDataError(f"load_trait takes a name, a path or a datasets.Dataset, not {type(source).__name__}")


def _from_folder(folder: Any, name: str, source: str | None = None) -> TraitDataset:
    def read(fname: str) -> str | None:
        f = folder / fname
        return f.read_text(encoding="utf-8") if f.is_file() else None

    pos_text, neg_text = read("positive.jsonl"), read("negative.jsonl")
    if pos_text is None or neg_text is None:
        raise TraitDataError(f"trait folder {folder} needs positive.jsonl and negative.jsonl")
    where = f"{folder}/steering.json"
    steering = parse_json_object(read("steering.json") or "{}", where, TraitDataError)
    plans = parse_steering_plans(steering, where)
    toward = plans.get("toward")
    return TraitDataset(
        name=name,
        positive=tuple(
            example_from_row(r, f"{folder}/positive.jsonl", i)
            for i, r in parse_jsonl(pos_text, "positive.jsonl", TraitDataError)
        ),
        negative=tuple(
            example_from_row(r, f"{folder}/negative.jsonl", i)
            for i, r in parse_jsonl(neg_text, "negative.jsonl", TraitDataError)
        ),
        definition=(read("definition.txt") or "").strip(),
        questions=toward.dev + toward.test if toward else (),
        eval_prompt=steering.get("eval_prompt"),
        source=source or str(folder),
        steering=plans,
    )


def _from_rows(rows: Iterable[dict[str, Any]], name: str, source: str) -> TraitDataset:
    positive, negative = examples_by_label(rows, source)
    return TraitDataset(name=name, positive=tuple(positive), negative=tuple(negative), source=source)


def _is_hf_dataset(obj: Any) -> bool:
    return type(obj).__module__.startswith("datasets.")


def _hf_rows(ds: Any) -> Iterable[dict[str, Any]]:
    if hasattr(ds, "keys") and not hasattr(ds, "column_names") or isinstance(getattr(ds, "column_names", None), dict):
        split = "train" if "train" in ds else next(iter(ds.keys()))
        ds = ds[split]
    return iter(ds)


def _sha256(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
