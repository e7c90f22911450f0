"""One writer per output folder: an advisory lock file that a second writer finds, names and refuses.

The lock is `fcntl.flock` on `<folder>/.tl_traits.lock`: the kernel drops it when its process
ends, however it ends (Ctrl-C, SIGKILL, a crash), so a lock is never left stale. On systems
without `fcntl` (Windows) folders are not locked. Network file systems may not honour flock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import inspect
import os
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from tl_traits.core.errors import TlTraitsError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".tl_traits.lock"
F = TypeVar("F", bound=Callable[..., Any])


class FolderLockedError(TlTraitsError):
    """Another tl_traits process is writing to this folder."""


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], what: str) -> Iterator[Path]:
    """Hold `folder`'s lock while the block runs; a second holder gets FolderLockedError naming the first."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    if fcntl is None:  # pragma: no cover
        yield path
        return
    handle = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise FolderLockedError(
                f"{folder} is in use: {holder} holds its lock ({path}). Wait for it to finish, or write to "
                "another folder; two writers would duplicate and interleave results"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{what} (pid {os.getpid()}, since {dt.datetime.now().isoformat(timespec='seconds')})\n")
        handle.flush()
        try:
            yield path
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


def holds_folder_lock(argument: str, what: str) -> Callable[[F], F]:
    """Decorator: the function runs holding the lock of the folder its `argument` names (default included)."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def locked(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            with folder_lock(bound.arguments[argument], what):
                return fn(*args, **kwargs)

        return locked  # type: ignore[return-value]

    return decorate
