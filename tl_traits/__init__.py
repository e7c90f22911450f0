"""tl_traits: trait directions in language models, on TransformerLens hooks."""

import logging as _logging

# transformers imports torchao (our real-kernel backend) whenever it is installed; torchao then
# logs CUDA-only extensions it cannot load and torch warns about its enums on every model load.
for _name in ("torchao", "torch.utils._pytree"):
    if _logging.getLogger(_name).level == _logging.NOTSET:
        _logging.getLogger(_name).setLevel(_logging.ERROR)

from tl_traits.core.capture import ActivationSet, capture
from tl_traits.core.errors import TlTraitsError
from tl_traits.core.generation import generate
from tl_traits.core.hook_names import hook_name, parse_hook_name
from tl_traits.core.models import (
    ModelIdentity,
    ModelLoadError,
    load_model,
    model_identity,
)
from tl_traits.core.prompts import PreparedInputs, PromptError, Spans, prepare_inputs
from tl_traits.core.registry import attacks, extractors, judges, quantizers
from tl_traits.core.trait_sets import (
    TraitDataset,
    TraitExample,
    list_traits,
    load_trait,
)
from tl_traits.core.vectors import TraitVector, TraitVectors
from tl_traits.extraction.extract import extract
from tl_traits.extraction.transfer import learning_curve, transfer_metrics
from tl_traits.interop.gguf_control_vectors import export_gguf, import_gguf
from tl_traits.interop.safetensors_vectors import import_safetensors
from tl_traits.interop.steering_vectors import from_steering_vector, to_steering_vector
from tl_traits.judging.fill_responses import generate_responses
from tl_traits.judging.judges import FunctionJudge, make_judge
from tl_traits.monitoring import monitor
from tl_traits.monitoring import views as viz
from tl_traits.steering.evaluation import evaluate_steering
from tl_traits.steering.method_comparison import compare_steering
from tl_traits.steering.protocol import SteeringProtocol
from tl_traits.steering.results import SteeringResult
from tl_traits.steering.steer import Setting, steer, sweep_generate
from tl_traits.training.config import TrainConfig
from tl_traits.training.detection import detect_poison
from tl_traits.training.poisoning import poison
from tl_traits.training.trainer import train

__version__ = "0.1.0"

__all__ = [
    "ActivationSet",
    "FunctionJudge",
    "TlTraitsError",
    "ModelIdentity",
    "ModelLoadError",
    "PreparedInputs",
    "PromptError",
    "Spans",
    "TraitDataset",
    "TraitExample",
    "TraitVector",
    "TraitVectors",
    "attacks",
    "capture",
    "export_gguf",
    "extract",
    "from_steering_vector",
    "import_gguf",
    "import_safetensors",
    "extractors",
    "learning_curve",
    "transfer_metrics",
    "generate",
    "generate_responses",
    "hook_name",
    "judges",
    "list_traits",
    "load_model",
    "load_trait",
    "make_judge",
    "model_identity",
    "monitor",
    "viz",
    "parse_hook_name",
    "prepare_inputs",
    "to_steering_vector",
    "quantizers",
    "compare_steering",
    "evaluate_steering",
    "SteeringProtocol",
    "SteeringResult",
    "Setting",
    "steer",
    "sweep_generate",
    "poison",
    "detect_poison",
    "TrainConfig",
    "train",
]
