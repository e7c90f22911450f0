"""Side-by-side timing: variants run interleaved in one process, so drift hits each alike."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable


def interleaved(
    variants: dict[str, Callable[[], Any]], repeats: int = 3
) -> tuple[dict[str, float], dict[str, list[float]], dict[str, Any]]:
    """(median seconds, every time, last result) per variant, each run `repeats` times in turn."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    last: dict[str, Any] = {}
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            last[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}, times, last
