"""Quantization: quantizer backends, weight schemes, and the study of how a quantized model bends a direction."""
