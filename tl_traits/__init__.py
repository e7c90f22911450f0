"""tl_traits: trait directions in language models, on TransformerLens hooks."""

from tl_traits.hooknames import hook_name, parse_hook_name
from tl_traits.models import ModelIdentity, ModelLoadError, load_model, model_identity
from tl_traits.prompts import PreparedInputs, PromptError, Spans, prepare_inputs
from tl_traits.registry import attacks, extractors, judges, quantizers
from tl_traits.generation import generate

__version__ = "0.1.0"

__all__ = [
    "ModelIdentity",
    "ModelLoadError",
    "PreparedInputs",
    "PromptError",
    "Spans",
    "attacks",
    "extractors",
    "generate",
    "hook_name",
    "judges",
    "load_model",
    "model_identity",
    "parse_hook_name",
    "prepare_inputs",
    "quantizers",
]
