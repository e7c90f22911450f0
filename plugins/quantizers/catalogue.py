"""The built-in quantizers' PluginInfo records, the values of their entry points: listed without importing the
plugins; each `target` is imported on first use, and the plugin carries its record."""

from tl_traits.core.plugin_info import PluginInfo

_HERE = "tl_traits.plugins.quantizers"  # options go to quantize(model, **options), which checks them
_SIMULATED = "simulated: float32 weights and activations"


def _half(label: str) -> str:
    return f"cast to {label} (native where the device computes in {label}, else weights rounded)"


fp16 = PluginInfo("fp16", _half("float16"), target=f"{_HERE}.fp16:fp16")
bf16 = PluginInfo("bf16", _half("bfloat16"), target=f"{_HERE}.bf16:bf16")
int8 = PluginInfo(
    "int8", f"weight-only symmetric int8 absmax (per output channel; {_SIMULATED})", target=f"{_HERE}.int8:int8"
)
int4 = PluginInfo(
    "int4",
    f"weight-only symmetric int4, group-wise absmax (groups of 128 along the input dim by default; {_SIMULATED})",
    target=f"{_HERE}.int4:int4",
)
nf4 = PluginInfo(
    "nf4",
    "weight-only NormalFloat-4 (QLoRA levels), group-wise absmax (groups of 64 along the input "
    f"dim by default; {_SIMULATED})",
    target=f"{_HERE}.nf4:nf4",
)
torchao_int8 = PluginInfo(
    "torchao-int8",
    "torchao int8 weights (per-channel) in the bridge's linears; activations='int8' for W8A8 int8 matmuls",
    requires=("torchao",),
    target=f"{_HERE}.torchao_int8:torchao_int8",
)
bnb_int8 = PluginInfo(
    "bitsandbytes-int8",
    "bitsandbytes LLM.int8() (int8 weights, fp16 outliers), reloaded from the HF folder; CUDA",
    requires=("cuda", "bitsandbytes"),
    target=f"{_HERE}.bitsandbytes:bnb_int8",
)
bnb_nf4 = PluginInfo(
    "bitsandbytes-nf4",
    "bitsandbytes 4-bit NormalFloat (NF4, block 64), reloaded from the HF folder; CUDA",
    requires=("cuda", "bitsandbytes"),
    target=f"{_HERE}.bitsandbytes:bnb_nf4",
)
