"""`ModelSpec`: a model described so that another process (a pool worker, a Ray task, a Slurm job) loads it again,
and refuses weights other than the caller's."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tl_traits.core.embedded import EMBEDDED_NAME, embedded_model_folder
from tl_traits.core.errors import ModelLoadError
from tl_traits.core.models import load_model, model_identity, weights_fingerprint
from tl_traits.core.provenance import model_source, provenance


@dataclass(frozen=True)
class ModelSpec:
    """How to load a model again in another process (a pool worker, a Ray task, a Slurm job).

    source: a local HF folder or TL model name; None for the embedded model (each machine converts
    its own copy). fingerprint: the weights the caller held; a worker that loads other weights refuses.
    """

    source: str | None = None
    kind: str = "bridge"
    dtype: str = "float32"
    device: str | None = None
    n_devices: int = 1
    fingerprint: str | None = None
    device_map: str | None = None  # bridge: "auto" / "balanced" spreads a large model over the worker's GPUs

    @classmethod
    def of(cls, model: Any, *, device: str | None = None, n_devices: int | None = None) -> "ModelSpec":
        """The spec of a model `load_model` loaded; a model changed since (fine-tuned, quantized) is refused."""
        if isinstance(model, ModelSpec):
            return model
        if isinstance(model, (str, os.PathLike)) or model is None:
            return cls(None if model is None else str(model))
        source = model_source(model)
        if source is None or provenance(model).quantization:
            raise ModelLoadError(
                "this model cannot be loaded again in another process: it was not loaded by tl_traits.load_model "
                "from a name or folder, or it was quantized since. Save it with save_pretrained() and pass "
                "that folder (or run with the local executor and workers=1)"
            )
        identity = model_identity(model)
        if identity.name == EMBEDDED_NAME and Path(source).name.startswith(f"{EMBEDDED_NAME}-f32"):
            source = None
        return cls(
            source,
            identity.kind if identity.kind in ("bridge", "hooked") else "bridge",
            identity.dtype,
            device,
            n_devices or int(getattr(model.cfg, "n_devices", 1) or 1),
            identity.fingerprint,
        )

    def load(self) -> Any:
        model = load_model(
            self.source,
            kind=self.kind,  # type: ignore[arg-type]
            dtype=self.dtype,
            device=self.device,
            n_devices=self.n_devices,
            device_map=self.device_map,
        )
        if self.fingerprint is not None:
            found = weights_fingerprint(model)
            if found != self.fingerprint:
                raise ModelLoadError(
                    f"the model loaded from {self.source or EMBEDDED_NAME} has weights {found}, not the caller's "
                    f"{self.fingerprint}: the caller's model was changed after loading. Save it with "
                    "save_pretrained() and pass that folder"
                )
        return model

    def n_layers(self) -> int:
        """The model's layer count, read from its config without loading any weights."""
        from transformers import AutoConfig

        folder = embedded_model_folder() if self.source is None else self.source
        config = AutoConfig.from_pretrained(folder)
        for key in ("num_hidden_layers", "n_layer", "num_layers"):
            if getattr(config, key, None):
                return int(getattr(config, key))
        raise ModelLoadError(f"the config of {self.describe()} names no layer count; pass layers explicitly")

    def describe(self) -> str:
        return f"{self.source or EMBEDDED_NAME} ({self.kind}, {self.dtype})"
