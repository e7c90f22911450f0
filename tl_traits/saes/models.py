"""Give a loaded model sae-lens's SAE-attaching class: HookedSAETransformer or SAETransformerBridge.

`sae_ready(model)` converts in place (no reload, no copy of the weights), the way sae-lens's own
`SAETransformerBridge.boot_transformers` converts a freshly booted bridge. Afterwards `model.add_sae`,
`model.saes([...])`, `run_with_cache_with_saes` etc. work, and tl_traits's capture, steering and
monitoring keep working with SAEs attached (see `tl_traits.core.hook_points`).
"""

from __future__ import annotations

from typing import Any

from tl_traits.core.extras import require
from tl_traits.core.models import model_kind
from tl_traits.saes.sae import SAEError


def sae_ready(model: Any) -> Any:
    """`model`, now a HookedSAETransformer (from a HookedTransformer) or an SAETransformerBridge (from a
    TransformerBridge); a model that already is one is returned unchanged."""
    require("sae_lens")
    from sae_lens import HookedSAETransformer, SAETransformerBridge
    from sae_lens.analysis.hooked_sae_transformer import add_hook_in_to_mlp

    if isinstance(model, (HookedSAETransformer, SAETransformerBridge)):
        return model
    kind = model_kind(model)
    if kind == "hooked":
        model.__class__ = HookedSAETransformer
        for block in model.blocks:  # what HookedSAETransformer.__init__ adds, for transcoders
            if hasattr(block, "mlp"):
                add_hook_in_to_mlp(block.mlp)
        model.setup()
    elif kind == "bridge":
        model.__class__ = SAETransformerBridge
    else:
        raise SAEError(f"sae_ready takes a HookedTransformer or a TransformerBridge, not a {type(model).__name__}")
    model._acts_to_saes = {}
    model._transcoder_output_hooks = {}
    return model
