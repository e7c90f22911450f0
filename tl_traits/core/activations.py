"""Per-example activations averaged over positions (`ActivationSet`), and their safetensors form."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.files import atomic_write_bytes


class CaptureError(TlTraitsError):
    """Bad capture arguments: layers out of range, an unknown hook, no examples."""


@dataclass
class ActivationSet:
    """Per-example activations averaged over the selected positions, with what made them."""

    acts: Float[Tensor, "n layer d_model"]
    token_norms: Float[Tensor, "n layer"]  # mean per-token |h| over the same positions
    labels: Int[Tensor, " n"] | None
    layers: list[int]
    hook: str
    position: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.acts.shape[0]

    def by_label(self, label: int) -> Float[Tensor, "k layer d_model"]:
        if self.labels is None:
            raise CaptureError("this activation set has no labels")
        return self.acts[self.labels == label]

    def subset(self, index: Sequence[int] | Tensor) -> "ActivationSet":
        index = torch.as_tensor(index, dtype=torch.long)
        return ActivationSet(
            self.acts[index],
            self.token_norms[index],
            None if self.labels is None else self.labels[index],
            list(self.layers),
            self.hook,
            self.position,
            dict(self.metadata),
        )

    # -- disk ----------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        from safetensors.torch import save

        tensors = {"acts": self.acts.contiguous(), "token_norms": self.token_norms.contiguous()}
        if self.labels is not None:
            tensors["labels"] = self.labels.contiguous()
        header = {"layers": self.layers, "hook": self.hook, "position": self.position, "metadata": self.metadata}
        return save(tensors, metadata={"tl_traits.activations": json.dumps(header)})

    def save(self, path: str | os.PathLike[str]) -> Path:
        return atomic_write_bytes(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "ActivationSet":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            header = json.loads(fh.metadata()["tl_traits.activations"])
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        return cls(
            tensors["acts"],
            tensors["token_norms"],
            tensors.get("labels"),
            header["layers"],
            header["hook"],
            header["position"],
            header["metadata"],
        )
