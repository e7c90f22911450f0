"""Sparse autoencoders: the SAE store and decomposition, the SAE corpus, SAE training and sae-lens model classes."""

from tl_traits.core.lazy import lazy_exports

EXPORTS = {  # the curated names (`tl_traits.saes.<name>`); each module is imported on first use
    "train_sae": "tl_traits.saes.training:train_sae",
    "load_sae": "tl_traits.saes.sae:load_sae",
    "decompose": "tl_traits.saes.sae:decompose",
    "feature_direction": "tl_traits.saes.sae:feature_direction",
    "stored_saes": "tl_traits.saes.sae:stored_saes",
    "sae_store": "tl_traits.saes.sae:sae_store",
    "default_corpus": "tl_traits.saes.corpus:default_corpus",
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
