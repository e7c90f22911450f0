"""Steering: add a vector through hooks while generating, evaluate it with judges, search the coefficient."""

from tl_traits.core.lazy import lazy_exports

EXPORTS = {  # the curated names (`tl_traits.steering.<name>`; `tt.steer` itself: the module steer.py holds this name)
    "Setting": "tl_traits.steering.steer:Setting",
    "sweep_generate": "tl_traits.steering.steer:sweep_generate",
    "evaluate_steering": "tl_traits.steering.evaluation:evaluate_steering",
    "load_evaluation": "tl_traits.steering.evaluation:load_evaluation",
    "compare_steering": "tl_traits.steering.method_comparison:compare_steering",
    "SteeringProtocol": "tl_traits.steering.protocol:SteeringProtocol",
    "SteeringResult": "tl_traits.steering.results:SteeringResult",
    "rejudge_log": "tl_traits.steering.rejudge:rejudge_log",
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
