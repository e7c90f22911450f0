"""Judging: score responses 0-100 for a trait, coherence or relevance; fill in a trait set's responses."""

from tl_traits.core.lazy import lazy_exports

EXPORTS = {  # the curated names (`tl_traits.judging.<name>`); each module is imported on first use
    "make_judge": "tl_traits.judging.judges:make_judge",
    "FunctionJudge": "tl_traits.judging.judges:FunctionJudge",
    "JudgeBase": "tl_traits.judging.judges:JudgeBase",
    "fitted_version": "tl_traits.judging.judges:fitted_version",
    "default_judges": "tl_traits.judging.defaults:default_judges",
    "calibrate": "tl_traits.judging.calibration:calibrate",
    "load_calibration_set": "tl_traits.judging.calibration:load_calibration_set",
    "generate_responses": "tl_traits.judging.fill_responses:generate_responses",
    "embed": "tl_traits.judging.encoder:embed",
    "text_features": "tl_traits.judging.text_quality:text_features",
    "response_likelihood": "tl_traits.judging.likelihood:response_likelihood",
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
