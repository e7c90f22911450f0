"""The offline corpus the embedded model's SAE is trained on: Python's own documentation plus the model's replies.

Every part is reachable without a network: CPython ships its reference text (`pydoc_data.topics`)
and its standard-library docstrings (both under the PSF licence), and the chat part is the model's
own sampled answers to a broad templated prompt set (ours, MIT), cached so it is generated once.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import random
import sysconfig
from pathlib import Path
from typing import Any

from tl_traits.core.files import read_jsonl, write_jsonl
from tl_traits.core.generation import check_cached_generation, generate
from tl_traits.core.models import weights_fingerprint
from tl_traits.saes.sae import SAEError

TOPICS = (
    "cooking dinner",
    "a rainy weekend",
    "learning to swim",
    "moving to a new city",
    "a job interview",
    "climate change",
    "the history of Rome",
    "black holes",
    "gardening",
    "a birthday party",
    "saving money",
    "video games",
    "a long train journey",
    "public libraries",
    "electric cars",
    "a lost dog",
    "the ocean",
    "starting a small business",
    "learning a language",
    "a school exam",
    "social media",
    "coffee",
    "mountain hiking",
    "a hospital visit",
    "artificial intelligence",
    "jazz music",
    "a football match",
    "an old friend",
    "tax forms",
    "volcanoes",
    "a wedding",
    "insomnia",
    "painting",
    "the moon landing",
    "a noisy neighbour",
    "vaccines",
    "chess",
    "a first date",
    "recycling",
    "a thunderstorm",
    "the stock market",
    "baking bread",
    "a museum trip",
    "a broken phone",
    "winter holidays",
    "bees",
    "a difficult boss",
    "running a marathon",
    "poetry",
    "a power cut",
    "dinosaurs",
    "online privacy",
    "a family dinner",
    "photography",
    "a flat tyre",
    "meditation",
    "the printing press",
    "a surprise gift",
    "homework",
)
REQUESTS = (
    "Tell me a short story about {t}.",
    "What do you think about {t}?",
    "Give me some practical advice about {t}.",
    "Explain {t} to a ten-year-old.",
    "Write a short poem about {t}.",
    "I feel {f} about {t}. What should I do?",
    "Describe a typical day that involves {t}.",
    "What are the pros and cons of {t}?",
    "Write a formal letter to a company about {t}.",
    "Write a casual text message to a friend about {t}.",
    "Why do people disagree about {t}?",
    "List three surprising facts about {t}.",
    "How could someone misuse {t} to hurt others?",
    "Summarise the most important thing to know about {t} in two sentences.",
)
FEELINGS = ("happy", "sad", "angry", "nervous", "excited", "bored", "proud", "lonely", "grateful", "confused")


def chat_prompts(n: int, seed: int = 0) -> list[str]:
    """`n` distinct prompts drawn (seeded) from the topic x request grid; feelings are filled in per prompt."""
    rng = random.Random(seed)
    grid = list(itertools.product(TOPICS, REQUESTS))
    rng.shuffle(grid)
    if n > len(grid):
        raise SAEError(f"asked for {n} chat prompts but the grid has {len(grid)}; ask for at most that many")
    return [req.format(t=topic, f=rng.choice(FEELINGS)) for topic, req in grid[:n]]


def python_docs_texts(min_chars: int = 80) -> list[str]:
    """Paragraphs of the Python language reference that CPython ships as `pydoc_data.topics` (PSF licence)."""
    from pydoc_data.topics import topics

    out = []
    for key in sorted(topics):
        for para in topics[key].split("\n\n"):
            para = " ".join(line.strip() for line in para.splitlines() if line.strip())
            if len(para) >= min_chars:
                out.append(para)
    return out


def stdlib_docstrings(min_chars: int = 200, max_chars: int = 1_500_000) -> list[str]:
    """Docstrings of the standard library's modules, classes and functions (read with `ast`, nothing imported).

    Files are read in sorted order and tests are skipped, so the list is the same on every run of one
    Python version; collection stops once `max_chars` characters are gathered.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    out: list[str] = []
    total = 0
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if any(p in ("test", "tests", "site-packages", "idle_test", "lib2to3") for p in rel):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= min_chars:
                    out.append(doc.strip())
                    total += len(doc)
                    if total >= max_chars:
                        return out
    return out


def model_replies(
    model: Any,
    n_prompts: int = 320,
    *,
    max_new_tokens: int = 96,
    seed: int = 0,
    cache: str | Path | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> list[dict[str, str]]:
    """The model's own sampled replies (temperature 0.8, top-p 0.95) to `chat_prompts(n_prompts)`.

    With `cache`, a JSONL file named after the model's weights and the settings is read when it exists
    and written (atomically) when it does not, so the generation runs once per model.
    """

    prompts = chat_prompts(n_prompts, seed)
    path = None
    if cache is not None:
        key = json.dumps([weights_fingerprint(model), n_prompts, max_new_tokens, seed], sort_keys=True)
        path = Path(cache) / f"replies-{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsonl"
        if path.is_file():
            return read_jsonl(path)
    check_cached_generation(model)  # minutes of junk text would otherwise become the SAE's corpus
    replies = generate(
        model,
        prompts,
        max_new_tokens=max_new_tokens,
        greedy=False,
        temperature=0.8,
        top_p=0.95,
        seed=seed,
        batch_size=batch_size,
        progress=progress,
    )
    rows = [{"prompt": p, "response": r} for p, r in zip(prompts, replies) if r.strip()]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(path, rows)
    return rows


def default_corpus(
    model: Any, *, n_prompts: int = 320, chat_repeats: int = 3, cache: str | Path | None = None, progress: bool = True
) -> list[Any]:
    """Python reference paragraphs + stdlib docstrings + the model's replies (repeated `chat_repeats` times,
    so chat-formatted text, where trait vectors are read, is about a fifth of the tokens)."""
    replies = model_replies(model, n_prompts, cache=cache, progress=progress)
    return python_docs_texts() + stdlib_docstrings() + replies * chat_repeats
