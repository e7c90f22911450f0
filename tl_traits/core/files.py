"""Files: atomic writes (a temp sibling first, then one rename, so no half-written artifact), JSON lines, safe names."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from tl_traits.core.errors import TlTraitsError


class FileFormatError(TlTraitsError):
    """A file that is not what it should be (here: a JSON-lines line that is not JSON); names file and line."""


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _default_mode())  # mkstemp makes 0600; a saved artifact should read like any file
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    umask = os.umask(0)  # reading the umask means setting it; done once, then restored
    os.umask(umask)
    return umask


def _default_mode() -> int:
    return 0o666 & ~_umask()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp folder beside `path`; on success rename it to `path`, on error delete it.

    If another process finished `path` first, ours is discarded and theirs is kept.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; a saved folder should open like any folder
    try:
        yield tmp
        try:
            os.rename(tmp, path)
        except OSError:
            if not path.exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- JSON lines ---------------------------------------------------------------------------------------
def parse_jsonl(text: str, where: str, error: type[TlTraitsError] = FileFormatError) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line; a line that is not JSON raises `error`
    naming `where` and the line."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{where} line {number} is not valid JSON: {exc.msg}") from exc


def parse_json_object(
    text: str, where: str, error: type[TlTraitsError] = FileFormatError, *, fix: str = ""
) -> dict[str, Any]:
    """One JSON object; text that is not JSON, or JSON that is not an object, raises `error` naming
    `where` (and ending with `fix`, what to do about it, when given)."""
    hint = f"; {fix}" if fix else ""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}{hint}") from exc
    if not isinstance(value, dict):
        raise error(f"{where} must hold a JSON object {{...}}, not a {type(value).__name__}{hint}")
    return value


def read_jsonl(path: str | os.PathLike[str], error: type[TlTraitsError] = FileFormatError) -> list[Any]:
    """Every row of a JSON-lines file, in order."""
    path = Path(path)
    return [row for _, row in parse_jsonl(path.read_text(encoding="utf-8"), str(path), error)]


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Strict JSON lines, atomically; a float NaN (an undefined score) is written as null."""
    clean = ({k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()} for row in rows)
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in clean))


def safe_name(name: str) -> str:
    """`name` as one path component: "emotion/joy" -> "emotion-joy" (anything but letters, digits, - _ . becomes -)."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in str(name))
