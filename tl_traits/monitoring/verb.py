"""`tt.monitor`: the verb (per-token projections, `project`); the module's other names still resolve through it for
one release, with a deprecation warning pointing at `tt.monitoring`."""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from tl_traits.monitoring.monitor import Projections, project


class Monitor:
    """`tt.monitor(model, vectors, prompts, ...)` is `tt.monitoring.project`: each token's projection onto the
    trait vectors. Before, `tt.monitor` was the module: `tt.monitor.<name>` still works, with a DeprecationWarning."""

    def __call__(self, model: Any, vectors: Any, prompts: Any, **options: Any) -> Projections:
        return project(model, vectors, prompts, **options)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = getattr(importlib.import_module("tl_traits.monitoring.monitor"), name)
        warnings.warn(
            f"tt.monitor.{name} is deprecated: tt.monitor is now the function (tt.monitor(model, vectors, "
            f"prompts) = tt.monitoring.project); use tt.monitoring.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return value

    def __repr__(self) -> str:
        return "<tt.monitor: per-token projections onto trait vectors (tt.monitoring.project)>"


monitor = Monitor()
