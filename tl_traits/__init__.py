"""tl_traits: trait directions in language models, on TransformerLens hooks."""

import logging as _logging

# transformers imports torchao (our real-kernel backend) whenever it is installed; torchao then
# logs CUDA-only extensions it cannot load and torch warns about its enums on every model load.
for _name in ("torchao", "torch.utils._pytree"):
    if _logging.getLogger(_name).level == _logging.NOTSET:
        _logging.getLogger(_name).setLevel(_logging.ERROR)

from typing import TYPE_CHECKING

from tl_traits.core.lazy import lazy_exports

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from tl_traits.core.capture import ActivationSet, ShardedActivations, capture, capture_to_disk
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
    from tl_traits.core.plugin_info import PluginInfo
    from tl_traits.core.registry import attacks, extractors, judges, quantizers
    from tl_traits.core.trait_examples import TraitExample
    from tl_traits.core.trait_sets import (
        TraitDataset,
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

_EXPORTS: dict[str, str] = {  # name -> "module:attribute"; imported on first use
    "ActivationSet": "tl_traits.core.capture:ActivationSet",
    "capture": "tl_traits.core.capture:capture",
    "capture_to_disk": "tl_traits.core.capture:capture_to_disk",
    "ShardedActivations": "tl_traits.core.capture:ShardedActivations",
    "TlTraitsError": "tl_traits.core.errors:TlTraitsError",
    "generate": "tl_traits.core.generation:generate",
    "hook_name": "tl_traits.core.hook_names:hook_name",
    "parse_hook_name": "tl_traits.core.hook_names:parse_hook_name",
    "ModelIdentity": "tl_traits.core.models:ModelIdentity",
    "ModelLoadError": "tl_traits.core.models:ModelLoadError",
    "load_model": "tl_traits.core.models:load_model",
    "model_identity": "tl_traits.core.models:model_identity",
    "PreparedInputs": "tl_traits.core.prompts:PreparedInputs",
    "PromptError": "tl_traits.core.prompts:PromptError",
    "Spans": "tl_traits.core.prompts:Spans",
    "prepare_inputs": "tl_traits.core.prompts:prepare_inputs",
    "PluginInfo": "tl_traits.core.plugin_info:PluginInfo",
    "attacks": "tl_traits.core.registry:attacks",
    "extractors": "tl_traits.core.registry:extractors",
    "judges": "tl_traits.core.registry:judges",
    "quantizers": "tl_traits.core.registry:quantizers",
    "TraitDataset": "tl_traits.core.trait_sets:TraitDataset",
    "TraitExample": "tl_traits.core.trait_examples:TraitExample",
    "list_traits": "tl_traits.core.trait_sets:list_traits",
    "load_trait": "tl_traits.core.trait_sets:load_trait",
    "TraitVector": "tl_traits.core.vectors:TraitVector",
    "TraitVectors": "tl_traits.core.vectors:TraitVectors",
    "extract": "tl_traits.extraction.extract:extract",
    "learning_curve": "tl_traits.extraction.transfer:learning_curve",
    "transfer_metrics": "tl_traits.extraction.transfer:transfer_metrics",
    "export_gguf": "tl_traits.interop.gguf_control_vectors:export_gguf",
    "import_gguf": "tl_traits.interop.gguf_control_vectors:import_gguf",
    "import_safetensors": "tl_traits.interop.safetensors_vectors:import_safetensors",
    "from_steering_vector": "tl_traits.interop.steering_vectors:from_steering_vector",
    "to_steering_vector": "tl_traits.interop.steering_vectors:to_steering_vector",
    "generate_responses": "tl_traits.judging.fill_responses:generate_responses",
    "FunctionJudge": "tl_traits.judging.judges:FunctionJudge",
    "make_judge": "tl_traits.judging.judges:make_judge",
    "monitor": "tl_traits.monitoring.verb:monitor",
    "viz": "tl_traits.monitoring.views",
    "evaluate_steering": "tl_traits.steering.evaluation:evaluate_steering",
    "compare_steering": "tl_traits.steering.method_comparison:compare_steering",
    "SteeringProtocol": "tl_traits.steering.protocol:SteeringProtocol",
    "SteeringResult": "tl_traits.steering.results:SteeringResult",
    "Setting": "tl_traits.steering.steer:Setting",
    "steer": "tl_traits.steering.steer:steer",
    "sweep_generate": "tl_traits.steering.steer:sweep_generate",
    "TrainConfig": "tl_traits.training.config:TrainConfig",
    "detect_poison": "tl_traits.training.detection:detect_poison",
    "poison": "tl_traits.training.poisoning:poison",
    "train": "tl_traits.training.trainer:train",
    # curated namespaces for the rest: tt.training.train, tt.quantization.quantization_study, ...
    "training": "tl_traits.training",
    "saes": "tl_traits.saes",
    "quantization": "tl_traits.quantization",
    "scale": "tl_traits.scale",
    "judging": "tl_traits.judging",
    "monitoring": "tl_traits.monitoring",
    "steering": "tl_traits.steering",
}
# The facade is lazy: `import tl_traits` is quick (torch loads on first use), so Ctrl-C at start-up is clean.
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__version__ = "0.1.0"

__all__ = [
    "ActivationSet",
    "ShardedActivations",
    "FunctionJudge",
    "PluginInfo",
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
    "capture_to_disk",
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
    "training",
    "saes",
    "quantization",
    "scale",
    "judging",
    "monitoring",
    "steering",
]
