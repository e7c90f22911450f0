"""Training and poisoning: label-masked SFT, attacks, fine-tuning with exact resume, backdoor metrics, detection,
and steering vectors trained through the model (BiPO, RePS)."""

from tl_traits.core.lazy import lazy_exports

EXPORTS = {  # the curated names (`tl_traits.training.<name>`); each module is imported on first use; a name that is
    # also a submodule's (`poison_sweep`, `aggregate`, `backdoor_metrics`) comes from its module
    "train": "tl_traits.training.trainer:train",
    "instruction_dataset": "tl_traits.training.instruction_data:instruction_dataset",
    "SFTDataset": "tl_traits.training.sft:SFTDataset",
    "response_loss": "tl_traits.training.loss:response_loss",
    "TrainConfig": "tl_traits.training.config:TrainConfig",
    "poison": "tl_traits.training.poisoning:poison",
    "resolve_attack": "tl_traits.training.poisoning:resolve_attack",
    "detect_poison": "tl_traits.training.detection:detect_poison",
    "load_checkpoint_weights": "tl_traits.training.checkpoints:load_checkpoint_weights",
    "latest_checkpoint": "tl_traits.training.checkpoints:latest_checkpoint",
    "train_vectors": "tl_traits.training.vector_training:train_vectors",
    "VectorTraining": "tl_traits.training.vector_training:VectorTraining",
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
