"""Monitoring: per-token projections onto trait vectors, prompt-set group comparisons, and their views."""

from tl_traits.core.lazy import lazy_exports

EXPORTS = {  # the curated names (`tl_traits.monitoring.<name>`); each module is imported on first use
    "project": "tl_traits.monitoring.monitor:project",
    "load_prompt_set": "tl_traits.monitoring.monitor:load_prompt_set",
    "Projections": "tl_traits.monitoring.monitor:Projections",
    "analyze_prompt_set": "tl_traits.monitoring.monitor:analyze_prompt_set",
    "compare_groups": "tl_traits.monitoring.monitor:compare_groups",
    "PromptSet": "tl_traits.monitoring.monitor:PromptSet",
    "views": "tl_traits.monitoring.views",
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
