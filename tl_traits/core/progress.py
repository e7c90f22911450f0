"""Stage progress for long jobs: one rich bar per stage on stderr, or nothing when quiet."""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

Advance = Callable[[int, int], None]  # advance(done, total)


class Stages:
    """`with stages.stage("extract joy", total=3) as advance: ... advance(1, 3)`; records each stage's seconds."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.seconds: dict[str, float] = {}
        self._progress = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description:<40}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )

    def __enter__(self) -> "Stages":
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    @contextlib.contextmanager
    def stage(self, description: str, total: int | None = None) -> Iterator[Advance]:
        """One stage's bar. Used outside `with stages:`, each stage starts and stops the display itself."""
        progress = self._progress
        if progress is not None and not progress.live.is_started:
            with self:
                with self.stage(description, total) as inner:
                    yield inner
            return
        start = time.perf_counter()
        task = progress.add_task(description, total=total) if progress is not None else None

        def advance(done: int, of: int) -> None:
            if progress is not None and task is not None:
                progress.update(task, completed=done, total=of)

        try:
            yield advance
        except BaseException as exc:  # Ctrl-C or an error: the stage shows where it stopped, not a full bar
            if progress is not None and task is not None:
                how = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                progress.update(task, description=f"{description} [red]({how})[/red]")
                progress.stop_task(task)
            raise
        else:
            if progress is not None and task is not None:
                finished = progress.tasks[task]
                progress.update(task, completed=finished.total or 1, total=finished.total or 1)
        finally:
            self.seconds[description] = round(time.perf_counter() - start, 2)

    def log(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message)
