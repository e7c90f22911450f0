"""Where a model's weights came from and what was done to them since: one typed record on the model object."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class ModelProvenance:
    """Where a model's weights came from and what was done to them since; one typed record on the model.

    source: the local folder or name `load_model` loaded it from (quantizers that reload, e.g.
    bitsandbytes, and worker processes read it); None for a model built elsewhere.
    quantization: on a quantized copy, what the quantizer did (`model_identity` records it).
    """

    source: str | None = None
    quantization: dict[str, Any] | None = None


# One attribute on the model object, so the record travels with deepcopy and pickling as the model does.
PROVENANCE_ATTR = "_tl_traits_provenance"


def provenance(model: Any) -> ModelProvenance:
    """The model's provenance record (empty for a model tl_traits did not load or change)."""
    found = getattr(model, PROVENANCE_ATTR, None)
    return found if isinstance(found, ModelProvenance) else ModelProvenance()


def set_provenance(model: Any, **changes: Any) -> None:
    """Replace fields of the model's provenance record (`source=`, `quantization=`)."""
    setattr(model, PROVENANCE_ATTR, replace(provenance(model), **changes))


def model_source(model: Any) -> str | None:
    """The local folder or name `load_model` loaded this model from (None for models built elsewhere)."""
    return provenance(model).source
