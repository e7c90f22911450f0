"""bitsandbytes-int8 and bitsandbytes-nf4: reload a bridge's HF weights through bitsandbytes (CUDA).

What they do:
- read the local HF folder the model was loaded from (`tl_traits.core.provenance.model_source`) and
  load it again with `AutoModelForCausalLM.from_pretrained(..., quantization_config=
  BitsAndBytesConfig(...))`: every `nn.Linear` of the decoder becomes a bitsandbytes
  `Linear8bitLt` (LLM.int8(): int8 weights, per-row absmax, fp16 outlier columns above
  `threshold`) or `Linear4bit` (NF4 codes with per-64-value absmax);
- boot a new `TransformerBridge` on that HF model, so hooks (`run_with_cache`, `steer`,
  `generate`) work as on the float model; the original model is left untouched;
- record `{"bits", "scheme", "kernels", "compute_dtype", ...}` on the result, which
  `model_identity(model).quantization` (and every artifact) carries.

What they do not do:
- run without CUDA: `available()` says so. (bitsandbytes >= 0.46 also has CPU kernels; the
  reload itself works there, and the tests drive it when the package is installed, but this
  backend is the CUDA one of the study.)
- quantize a `HookedTransformer` (its weights are TL's own tensors, not HF modules) or a
  model that was not loaded from a local HF folder: load it with
  `tl_traits.load_model(folder)` (kind="bridge").
- keep TransformerLens' weight processing. LayerNorm folding and weight centering are
  arithmetic on readable weights, which packed int8/NF4 storage is not, so the new bridge
  runs `enable_compatibility_mode(no_processing=True)`. For RMSNorm models (Llama, SmolLM2)
  the residual stream is the same as on the processed float bridge and the logits differ
  only by a per-position constant (compare log-probabilities); for LayerNorm models
  (GPT-2 style) the processed float bridge has centred residuals and this one does not.
- quantize embeddings, the unembedding or norms: bitsandbytes leaves `lm_head` in float
  (transformers skips it) and those modules stay in `dtype`.
- stack on another quantizer: the weights are reloaded from the folder, so an earlier
  quantization would be silently dropped; quantize the float model instead.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path
from typing import Any

import torch

from tl_traits.core.models import as_dtype, model_kind
from tl_traits.core.provenance import model_source, provenance, set_provenance
from tl_traits.plugins.quantizers import catalogue
from tl_traits.quantization.quantizer import QuantizationError, Quantizer

NO_CUDA = "needs CUDA (bitsandbytes kernels); this machine has none"
MISSING = "pip install bitsandbytes"


def _check() -> tuple[bool, str]:
    if not torch.cuda.is_available():
        return False, NO_CUDA
    if not _installed():
        return False, MISSING
    return True, ""


def _installed() -> bool:
    try:
        return importlib.util.find_spec("bitsandbytes") is not None
    except (ImportError, ValueError):  # a None entry in sys.modules, a broken parent package
        return False


class _DropCastNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_CAST_NOTICE)


_CAST_NOTICE = "MatMul8bitLt: inputs will be cast"


def _quiet_int8_cast_notice() -> None:
    """LLM.int8() always multiplies in float16 and says so on every call for other dtypes."""
    warnings.filterwarnings("ignore", message=_CAST_NOTICE, category=UserWarning)  # bitsandbytes < 0.46
    logger = logging.getLogger("bitsandbytes.autograd._functions")
    if not any(isinstance(f, _DropCastNotice) for f in logger.filters):
        logger.addFilter(_DropCastNotice())


def _reload_quantized(
    model: Any,
    *,
    bits: int,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device | None = None,
    threshold: float = 6.0,
    double_quant: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """A new bridge on the model's HF folder, loaded through bitsandbytes at `bits` (8 or 4).

    dtype: of everything bitsandbytes does not quantize (embeddings, norms, activations) and
        the NF4 compute dtype; default the model's own. LLM.int8() multiplies in float16
        whatever this is. device: default the model's CUDA device, else cuda:0.
    threshold: LLM.int8()'s outlier threshold. double_quant: NF4 with quantized absmax scales.
    """
    if bits not in (8, 4):
        raise QuantizationError(f"bitsandbytes quantizes to 8 or 4 bits, not {bits}")
    if model_kind(model) != "bridge":
        raise QuantizationError(
            f"bitsandbytes replaces the HF nn.Linear modules and so needs a TransformerBridge, not a "
            f"{model_kind(model)} model: load it with tl_traits.load_model(folder) (kind='bridge')"
        )
    earlier = provenance(model).quantization
    if earlier:
        raise QuantizationError(
            f"this model is already quantized ({earlier.get('backend')}); bitsandbytes reloads the weights "
            "from the model's folder and would drop that step. Quantize the float model instead."
        )
    source = model_source(model)
    if not source or not Path(source).is_dir():
        raise QuantizationError(
            "bitsandbytes reloads the model's weights from the local HF folder it was loaded from, and this "
            f"model has none recorded (source: {source!r}); load it with tl_traits.load_model(<HF folder>)"
        )
    if not _installed():
        raise QuantizationError(f"bitsandbytes is not installed: {MISSING}")
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = as_dtype(dtype) if dtype is not None else as_dtype(model.cfg.dtype)
    if device is None:
        current = torch.device(str(model.cfg.device or "cpu"))
        device = current if current.type == "cuda" else torch.device("cuda", 0)
    device = str(device)
    if bits == 8:
        config = BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=threshold)
        _quiet_int8_cast_notice()
    else:
        config = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=double_quant,
        )
    try:
        hf_model = AutoModelForCausalLM.from_pretrained(
            source, quantization_config=config, dtype=dtype, device_map={"": device}, attn_implementation="eager"
        )
        bridge = TransformerBridge.boot_transformers(source, hf_model=hf_model, dtype=dtype, device=device)
    except (ImportError, RuntimeError, ValueError) as exc:
        raise QuantizationError(f"bitsandbytes could not load {source} at {bits} bits: {exc}") from exc
    bridge.enable_compatibility_mode(no_processing=True)
    bridge.cfg.model_name = model.cfg.model_name
    set_provenance(bridge, source=source)
    bridge.eval()
    n_modules = sum(1 for m in hf_model.modules() if type(m).__module__.startswith("bitsandbytes"))
    import bitsandbytes

    info: dict[str, Any] = {
        "bits": bits,
        "scheme": "LLM.int8() with outlier decomposition" if bits == 8 else "nf4",
        "kernels": f"bitsandbytes {bitsandbytes.__version__}",
        "compute_dtype": "float16" if bits == 8 else str(dtype).replace("torch.", ""),
        "dtype": str(dtype).replace("torch.", ""),
        "modules": n_modules,
        "weight_processing": "none (TL folding needs readable weights)",
    }
    if bits == 8:
        info["outlier_threshold"] = threshold
    else:
        info["block_size"] = 64
        info["double_quant"] = double_quant
    return bridge, info


def _int8(model: Any, **options: Any) -> tuple[Any, dict[str, Any]]:
    return _reload_quantized(model, bits=8, **options)


def _nf4(model: Any, **options: Any) -> tuple[Any, dict[str, Any]]:
    return _reload_quantized(model, bits=4, **options)


bnb_int8 = catalogue.bnb_int8(
    Quantizer(
        "bitsandbytes-int8",
        "bitsandbytes LLM.int8() (int8 weights, fp16 outliers), reloaded from the HF folder; CUDA",
        _int8,
        _check,
        copies=False,
    )
)
bnb_nf4 = catalogue.bnb_nf4(
    Quantizer(
        "bitsandbytes-nf4",
        "bitsandbytes 4-bit NormalFloat (NF4, block 64), reloaded from the HF folder; CUDA",
        _nf4,
        _check,
        copies=False,
    )
)
