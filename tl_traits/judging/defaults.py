"""Which judges score a trait by default: for each bundled trait the judge that agrees best with careful reading."""

from __future__ import annotations

from typing import Any

# (trait judge, coherence judge) for the bundled traits, chosen on the calibration set's held-out half
# (docs/judges.md): the trained classifier, except refusal, whose phrase judge agrees better with the reader.
TRAIT_JUDGES: dict[str, tuple[str, str]] = {
    "emotion/joy": ("classifier", "coherence"),
    "alignment/refusal": ("refusal", "coherence"),
    "style/formality": ("classifier", "coherence"),
    "alignment/sycophancy": ("classifier", "coherence"),
}
# Other traits: the classifier fitted on their own responses (a trait set without responses: the embedding judge).
DEFAULT_JUDGES: tuple[str, str] = ("classifier", "coherence")
NO_RESPONSES_JUDGES: tuple[str, str] = ("embedding", "coherence")


def default_judges(trait: Any) -> tuple[str, str]:
    """The (trait, coherence) judge names used for `trait` (a name or a TraitDataset) when none are given."""
    name = trait if isinstance(trait, str) else getattr(trait, "name", str(trait))
    if name in TRAIT_JUDGES:
        return TRAIT_JUDGES[name]
    if not isinstance(trait, str) and not getattr(trait, "has_responses", True):
        return NO_RESPONSES_JUDGES
    return DEFAULT_JUDGES
