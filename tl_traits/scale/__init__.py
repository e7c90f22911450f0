"""Scale: executors that run many runs (local, Ray, Slurm), the sweep grids over them, and one aggregate."""

from tl_traits.core.lazy import lazy_exports

EXPORTS = {  # the curated names (`tl_traits.scale.<name>`); each module is imported on first use; a name that is
    # also a submodule's (`poison_sweep`, `aggregate`, `backdoor_metrics`) comes from its module
    "make_executor": "tl_traits.scale.executors:make_executor",
    "steering_sweep": "tl_traits.scale.grids:steering_sweep",
    "quantization_sweep": "tl_traits.scale.grids:quantization_sweep",
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
