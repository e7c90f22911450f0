"""Which judges score a trait by default: a lexicon or classifier judge for the bundled traits, the embedding judge otherwise."""

from __future__ import annotations

# (trait judge, coherence judge) for the bundled traits; other traits use the embedding judge.
TRAIT_JUDGES: dict[str, tuple[str, str]] = {
    "emotion/joy": ("vader", "coherence"),
    "alignment/refusal": ("refusal", "coherence"),
}
DEFAULT_JUDGES: tuple[str, str] = ("embedding", "coherence")


def default_judges(trait: str) -> tuple[str, str]:
    """The (trait, coherence) judge names used for `trait` when none are given."""
    return TRAIT_JUDGES.get(trait, DEFAULT_JUDGES)
