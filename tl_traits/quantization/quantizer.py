"""The Quantizer plugin shape and its error: copying a model, and recording what was done in its identity."""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.plugin_info import first_sentence, plugin_name
from tl_traits.core.provenance import provenance, set_provenance
from tl_traits.core.registry import quantizers
from tl_traits.core.weight_views import restore_aliases, tensor_aliases


class QuantizationError(TlTraitsError):
    """A quantizer that cannot run here or on this model; the message names the fix."""


class Quantizer:
    """A named quantization backend: `quantize(model, **options) -> new model`, `available() -> (ok, why)`.

    `fn(copy, **options) -> (model, info)` does the work on a private copy (or builds a new
    model) and returns what it did; `check() -> (ok, why)` says whether it can run here.
    """

    def __init__(
        self,
        name: str,
        description: str,
        fn: Callable[..., tuple[Any, dict[str, Any]]],
        check: Callable[[], tuple[bool, str]] | None = None,
        *,
        copies: bool = True,
    ) -> None:
        self.name, self.description, self._fn, self._check, self._copies = name, description, fn, check, copies

    def available(self) -> tuple[bool, str]:
        return self._check() if self._check else (True, "")

    def quantize(self, model: Any, **options: Any) -> Any:
        ok, why = self.available()
        if not ok:
            raise QuantizationError(f"quantizer '{self.name}' is not available here: {why}")
        target = copy_model(model) if self._copies else model
        result, info = self._fn(target, **options)
        record_quantization(result, {"backend": self.name, **info}, base=model)
        return result

    def __repr__(self) -> str:
        return f"Quantizer({self.name!r}: {self.description})"


def resolve_quantizer(spec: Any, **options: Any) -> Any:
    """A ready quantizer from a registered name, a Quantizer (or any object with `quantize` and `available`),
    a class building one (with `options`), or a function `fn(model, **options) -> new model` (given a copy)."""
    plugin = quantizers.resolve(spec, options=options, error=QuantizationError)
    if quantizers.is_built(plugin):
        return plugin
    if callable(plugin) and not isinstance(spec, type):
        name = spec if isinstance(spec, str) else plugin_name(spec)
        return Quantizer(name, first_sentence(spec, name), lambda model, **o: (plugin(model, **o), {}))
    raise QuantizationError(f"{plugin!r} is not a quantizer: it needs quantize(model, **options)")


def copy_model(model: Any) -> Any:
    """An independent copy (parameters and buffers included): the original stays untouched.

    Plain tensors that view a parameter's storage (TransformerBridge's processed weights) are
    re-pointed at the copy's parameters; a bare deepcopy would leave them as stale clones.
    """
    aliases = tensor_aliases(model) if isinstance(model, torch.nn.Module) else []
    clone = copy.deepcopy(model)
    if aliases:
        restore_aliases(clone, aliases)
    return clone


def record_quantization(model: Any, info: dict[str, Any], base: Any = None) -> None:
    """Attach `info` to the model so `model_identity` (and every artifact) records the precision.

    Quantizing an already quantized model keeps the earlier steps under "applied_to".
    """
    earlier = provenance(base).quantization if base is not None else None
    source = provenance(model).source or (provenance(base).source if base is not None else None)
    set_provenance(model, source=source, quantization={**info, **({"applied_to": earlier} if earlier else {})})


def quantization_info(model: Any) -> dict[str, Any] | None:
    """What the quantizer recorded on this model (None for a model that was not quantized here)."""
    return provenance(model).quantization
