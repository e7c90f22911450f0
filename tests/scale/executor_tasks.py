"""Small module-level tasks for the executor tests (workers import them by name)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tl_traits.scale.runs import write_summary


def record(folder: str, value: int, sleep: float = 0.0) -> list[dict]:
    """A run that counts its calls, optionally takes a while, and writes its summary."""
    folder_path = Path(folder)
    folder_path.mkdir(parents=True, exist_ok=True)
    calls = folder_path / "calls"
    calls.write_text(str(int(calls.read_text()) + 1 if calls.exists() else 1))
    time.sleep(sleep)
    row = {"value": value, "square": value * value, "pid": os.getpid()}
    write_summary(folder_path, [row])
    return [row]


def flaky(folder: str, value: int, failures: int) -> list[dict]:
    """Fails its first `failures` calls (counted in the folder), then succeeds."""
    folder_path = Path(folder)
    folder_path.mkdir(parents=True, exist_ok=True)
    calls = folder_path / "calls"
    n = int(calls.read_text()) + 1 if calls.exists() else 1
    calls.write_text(str(n))
    if n <= failures:
        raise RuntimeError(f"planned failure {n} of {failures}")
    row = {"value": value, "attempt": n}
    write_summary(folder_path, [row])
    return [row]


def crash(folder: str) -> None:
    """Kills its worker process outright, as an out-of-memory kill would."""
    os._exit(3)
