"""Quantization: quantizer backends, weight schemes, and the study of how a quantized model bends a direction."""

from tl_traits.core.lazy import lazy_exports

EXPORTS = {  # the curated names (`tl_traits.quantization.<name>`); each module is imported on first use
    "quantization_study": "tl_traits.quantization.study:quantization_study",
    "QuantStudy": "tl_traits.quantization.study:QuantStudy",
    "Quantizer": "tl_traits.quantization.quantizer:Quantizer",
    "resolve_quantizer": "tl_traits.quantization.quantizer:resolve_quantizer",
    "copy_model": "tl_traits.quantization.quantizer:copy_model",
    "quantization_info": "tl_traits.quantization.quantizer:quantization_info",
    "QuantizationError": "tl_traits.quantization.quantizer:QuantizationError",
    "weight_only": "tl_traits.quantization.builders:weight_only",
    "half_precision": "tl_traits.quantization.builders:half_precision",
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
