"""The sanity layer: checks that fail a benchmark run when its numbers are clearly wrong.

Pure functions over result rows, so the quick suite can test them on made-up tables.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

RANDOM = "random_baseline"
RANDOM_BAND = (0.35, 0.65)  # a random direction's mean AUROC should sit near chance


class SanityError(AssertionError):
    """A benchmark number that cannot be right (a NaN, a random baseline far from chance, ...)."""


def non_finite(sections: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    """'section / row i / column' for every NaN or infinite number in the results."""
    bad = []
    for name, rows in sections.items():
        for i, row in enumerate(rows):
            for key, value in row.items():
                if isinstance(value, float) and not math.isfinite(value):
                    bad.append(f"{name} / row {i} / {key}")
    return bad


def check_finite(sections: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    bad = non_finite(sections)
    if bad:
        raise SanityError(f"{len(bad)} NaN or infinite values, first: {', '.join(bad[:5])}")


def check_detection(
    rows: Iterable[Mapping[str, Any]], *, score: str = "AUROC", chance: str = "mean AUROC (all layers)"
) -> None:
    """random_baseline's mean AUROC over layers, averaged over traits, lies in RANDOM_BAND; on every
    trait each real method's best-layer AUROC is above random_baseline's mean over layers and not
    below random_baseline's own best layer (an easy trait lets both reach 1.0: a tie at the ceiling)."""
    rows = list(rows)
    check_finite({"detection": rows})
    randoms = [r for r in rows if r["method"] == RANDOM]
    if not randoms:
        return
    mean_random = sum(r[chance] for r in randoms) / len(randoms)
    lo, hi = RANDOM_BAND
    if not lo <= mean_random <= hi:
        raise SanityError(
            f"random_baseline's mean AUROC is {mean_random:.3f}, outside {lo}-{hi}: the held-out split or the "
            "AUROC is broken (a random direction should sit near 0.5)"
        )
    for r in rows:
        if r["method"] == RANDOM:
            continue
        rand = next(x for x in randoms if _same_case(x, r))
        if not (r[score] > rand[chance] and r[score] >= rand[score]):
            raise SanityError(
                f"{r['method']} does not beat random_baseline on {r.get('trait')} ({r.get('position', '')}): "
                f"best AUROC {r[score]:.3f} vs random's best {rand[score]:.3f} and mean {rand[chance]:.3f}"
            )


def _same_case(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("trait", "position"))
