"""Model-free signals of how degenerate a text is (repetition, compressibility, non-words, stray symbols)."""

from __future__ import annotations

import functools
import math
import re
import zlib
from collections import Counter

from tl_traits.judging.encoder import model_folder

_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_SENTENCE = re.compile(r"(?<=[.!?\n])\s+")


@functools.lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Whole words of MiniLM's uncased WordPiece vocabulary (about 20k common English words), offline."""
    vocab = (model_folder() / "vocab.txt").read_text(encoding="utf-8").split()
    return frozenset(w for w in vocab if w.isalpha() and w.isascii())


def text_features(text: str) -> dict[str, float]:
    """The model-free signals of one response (each in a bounded range; an empty text is all-degenerate)."""
    words = [w.lower() for w in _WORD.findall(text)]
    n = len(words)
    bigrams = list(zip(words, words[1:]))
    sentences = [s.strip().lower() for s in _SENTENCE.split(text) if len(s.strip()) > 3]
    raw = text.encode("utf-8")
    known = english_words()
    visible = [c for c in text if not c.isspace()]
    return {
        "word_distinct2": len(set(bigrams)) / len(bigrams) if bigrams else (1.0 if n else 0.0),
        "repeated_sentences": 1 - len(set(sentences)) / len(sentences) if sentences else 0.0,
        # zlib finds repeats a token-level count misses (a loop of a long phrase); short texts compress badly anyway
        "compression": min(1.0, len(zlib.compress(raw, 9)) / len(raw)) if raw else 0.0,
        "top_word_share": Counter(words).most_common(1)[0][1] / n if n else 1.0,
        "nonwords": sum(w.split("'")[0] not in known for w in words) / n if n else 1.0,
        "letters": sum(c.isalpha() for c in visible) / len(visible) if visible else 0.0,
        "log_words": math.log1p(n),
    }
