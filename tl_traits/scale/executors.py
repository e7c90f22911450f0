"""Choosing an executor by name (local, ray, slurm), and the per-process model cache that runs load their
model through, wherever they land. The run loop every executor shares is in `runs.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tl_traits.core.embedded import EMBEDDED_NAME
from tl_traits.scale.cluster import RayExecutor, SlurmExecutor
from tl_traits.scale.local import LocalExecutor
from tl_traits.scale.runs import Executor, ExecutorError

EXECUTORS = ("local", "ray", "slurm")


def make_executor(name: str | Executor | None = "local", **options: Any) -> Executor:
    """An executor by name, with its options (workers=, address=, partition=, retries=, ...).

    An Executor passes through; None is the in-process local executor.
    """
    if isinstance(name, Executor):
        return name
    name = name or "local"
    classes = {"local": LocalExecutor, "ray": RayExecutor, "slurm": SlurmExecutor}
    if name not in classes:
        raise ExecutorError(f"unknown executor '{name}'; use one of {', '.join(EXECUTORS)}")
    try:
        return classes[name](**options)
    except TypeError as exc:
        raise ExecutorError(
            f"executor '{name}' does not take those options ({exc}); see docs/scaling.md for each executor's options"
        ) from exc


# -- models in workers -------------------------------------------------------------------------------
_MODELS: dict[Any, Any] = {}


def hold_model(spec: Any, model: Any) -> None:
    """Make `worker_model(spec)` in this process return `model` (the in-process executor uses the caller's)."""
    _MODELS[spec] = model


def release_model(spec: Any) -> None:
    _MODELS.pop(spec, None)


def worker_model(spec: Any) -> Any:
    """The model of `spec` in this process, loaded on first use and kept for the worker's next runs."""
    if spec not in _MODELS:
        _MODELS[spec] = spec.load()
    return _MODELS[spec]


def model_display_name(spec: Any) -> str:
    """The name TL gives a model loaded from `spec` (cfg.model_name): folder or repo name, or the embedded one."""
    if spec.source is None:
        return EMBEDDED_NAME
    return (
        Path(str(spec.source)).name if Path(str(spec.source)).expanduser().is_dir() else str(spec.source).split("/")[-1]
    )
