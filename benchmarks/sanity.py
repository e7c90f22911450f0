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


def check_detection(rows: Iterable[Mapping[str, Any]], *, score: str = "AUROC", chance: str = "mean AUROC (all layers)") -> None:
    """random_baseline's mean AUROC over layers, averaged over traits, lies in RANDOM_BAND, and every
    real method's best-layer AUROC beats random_baseline's on every trait."""
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
        floor = next(x[score] for x in randoms if _same_case(x, r))
        if not r[score] > floor:
            raise SanityError(
                f"{r['method']} does not beat random_baseline on {r.get('trait')} ({r.get('position', '')}): "
                f"{r[score]:.3f} vs {floor:.3f}"
            )


def _same_case(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("trait", "position"))
