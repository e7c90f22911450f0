"""Load a model (the embedded one, a TransformerLens name or a local HF folder) as either TL
kind; describe its identity."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from tl_traits.core.embedded import EMBEDDED_NAME, embedded_model_folder
from tl_traits.core.errors import ModelLoadError
from tl_traits.core.provenance import provenance, set_provenance

ModelKind = Literal["bridge", "hooked"]


# -- loading -------------------------------------------------------------------------------------
# the model load_model(None), the CLI and sweep workers use instead of the embedded one
DEFAULT_MODEL_ENV = "TL_TRAITS_MODEL"


def load_model(
    name: str | os.PathLike[str] | torch.nn.Module | None = None,
    *,
    tokenizer: Any = None,
    kind: ModelKind = "bridge",
    dtype: torch.dtype | str = torch.float32,
    device: str | torch.device | None = None,
    n_devices: int = 1,
    device_map: str | dict[str, Any] | None = None,
) -> Any:
    """Load a model with TransformerLens hooks.

    name: None for the default model: $TL_TRAITS_MODEL when set (a folder or name, e.g. one
        small enough for a quick trial), else the embedded SmolLM2-135M-Instruct (offline); a local
        HF folder, or a model name TransformerLens knows (fetching it from the hub is up to your network).
    kind: "bridge" (TransformerBridge in compatibility mode) or "hooked" (HookedTransformer).
    n_devices: split the layers over this many GPUs (TL's own placement; a model larger than one GPU).
    device_map: bridge only: a Hugging Face device map ("auto", "balanced" or module -> device).

    name may also be a Hugging Face model you already loaded (with `tokenizer=` its tokenizer):
    it is wrapped in a TransformerBridge as it is (its weights, dtype and device are kept and its
    own outputs do not change).
    """
    if isinstance(name, torch.nn.Module):
        return _bridge_from_hf_model(name, tokenizer, kind)
    name = name if name is not None else (os.environ.get(DEFAULT_MODEL_ENV, "").strip() or None)
    if tokenizer is not None:
        raise ModelLoadError(
            "tokenizer= goes with a loaded Hugging Face model; a folder or name brings its own tokenizer"
        )
    if kind not in ("bridge", "hooked"):
        raise ModelLoadError(f"kind must be 'bridge' or 'hooked', not {kind!r}")
    if kind == "hooked" and not has_hooked_transformer():
        raise ModelLoadError(
            "this TransformerLens has no HookedTransformer (TL 4 removed it): use kind='bridge', "
            "or install transformer-lens<4"
        )
    if n_devices < 1:
        raise ModelLoadError(f"n_devices must be >= 1, not {n_devices}")
    if device_map is not None and kind != "bridge":
        raise ModelLoadError(
            "device_map is a Hugging Face option: use kind='bridge', or n_devices=N with kind='hooked'"
        )
    if n_devices > 1 and torch.cuda.is_available() and torch.cuda.device_count() < n_devices:
        raise ModelLoadError(
            f"n_devices={n_devices} but only {torch.cuda.device_count()} CUDA devices are visible; "
            "lower n_devices or set CUDA_VISIBLE_DEVICES"
        )
    dtype = as_dtype(dtype)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if name is None:
        folder: Path | None = embedded_model_folder()
        display = EMBEDDED_NAME
    else:
        folder = Path(name).expanduser() if Path(name).expanduser().is_dir() else None
        display = str(name)
    if folder is not None and not (folder / "config.json").is_file():
        raise ModelLoadError(f"'{folder}' is a folder but has no config.json; pass a Hugging Face model folder")

    try:
        if kind == "bridge":
            model = _boot_bridge(
                str(folder) if folder else display, dtype, device, n_devices=n_devices, device_map=device_map
            )
        elif folder is not None:
            model = _hooked_from_folder(folder, dtype, device, n_devices)
        else:
            from transformer_lens import HookedTransformer

            model = HookedTransformer.from_pretrained(display, device=device, dtype=dtype, n_devices=n_devices)
    except ModelLoadError:
        raise
    except Exception as exc:
        if folder is None and _looks_like_fetch_failure(exc):
            raise ModelLoadError(
                f"could not fetch model '{display}': it is not a local folder and the Hugging Face hub "
                f"did not provide it ({type(exc).__name__}: {_first_line(exc)}). Check the name and your "
                "network (HF_HUB_OFFLINE=1 forbids fetching), or pass a local HF folder."
            ) from exc
        raise
    if name is None or folder is not None:
        model.cfg.model_name = display if name is None or folder is None else folder.name
    set_provenance(model, source=str(folder) if folder is not None else display)
    model.eval()
    return model


def _bridge_from_hf_model(hf_model: torch.nn.Module, tokenizer: Any, kind: str) -> Any:
    from transformer_lens.model_bridge import TransformerBridge

    config = getattr(hf_model, "config", None)
    if config is None or not hasattr(config, "architectures"):
        raise ModelLoadError(
            f"load_model got a {type(hf_model).__name__}, not a Hugging Face model (it has no "
            ".config); pass a transformers PreTrainedModel, a local folder or a model name"
        )
    if kind != "bridge":
        raise ModelLoadError(
            "a loaded Hugging Face model is wrapped as a TransformerBridge: use kind='bridge' "
            "(or pass its folder for kind='hooked')"
        )
    if tokenizer is None:
        raise ModelLoadError(
            "pass tokenizer=... with a loaded Hugging Face model (the AutoTokenizer you loaded it with)"
        )
    source = str(getattr(config, "_name_or_path", "") or "")
    display = Path(source).name if source else type(hf_model).__name__
    model = TransformerBridge.boot_transformers(display, hf_model=hf_model, tokenizer=tokenizer)
    model.enable_compatibility_mode()
    model.cfg.model_name = display
    if source and Path(source).is_dir():
        set_provenance(model, source=source)  # a worker process can load it again from there
    model.eval()
    return model


def _boot_bridge(
    source: str, dtype: torch.dtype, device: str | torch.device, *, n_devices: int = 1, device_map: Any = None
) -> Any:
    from transformer_lens.model_bridge import TransformerBridge

    split: dict[str, Any] = {}
    if device_map is not None:
        split["device_map"] = device_map
    elif n_devices > 1:
        split["n_devices"] = n_devices
    model = TransformerBridge.boot_transformers(source, device=None if split else device, dtype=dtype, **split)
    model.enable_compatibility_mode()
    return model


def _hooked_from_folder(folder: Path, dtype: torch.dtype, device: str | torch.device, n_devices: int = 1) -> Any:
    """Build a HookedTransformer from a local HF folder without contacting the hub.

    `HookedTransformer.from_pretrained` only accepts names from TL's official list, so we
    assemble it from TL's own config and weight converters instead.
    """
    import transformer_lens.loading_from_pretrained as loading
    from transformer_lens import HookedTransformer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    # TL guesses the architecture from the *name* when it contains "llama" or "gemma" and then
    # skips reading config.json; a neutrally named link makes it read the folder's own config.
    with tempfile.TemporaryDirectory() as tmp:
        neutral = Path(tmp) / "model"
        neutral.symlink_to(folder.resolve(), target_is_directory=True)
        try:
            cfg = loading.get_pretrained_model_config(
                str(neutral),
                hf_cfg=hf_model.config.to_dict(),
                device=device,
                dtype=dtype,
                fold_ln=True,
                n_devices=n_devices,
            )
            state_dict = loading.get_pretrained_state_dict(str(neutral), cfg, hf_model)
        except (NotImplementedError, ValueError, KeyError, AttributeError) as exc:
            raise ModelLoadError(
                f"TransformerLens cannot build a HookedTransformer for {folder} "
                f"({hf_model.config.architectures}): {_first_line(exc)}. Use kind='bridge'."
            ) from exc
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    model.load_and_process_state_dict(
        state_dict, fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True
    )
    if n_devices > 1:
        model.move_model_modules_to_device()  # TL's split: blocks spread over cuda:0..n-1
    else:
        model.to(device)
    del hf_model
    return model


def as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype).replace("torch.", ""), None)
    if not isinstance(value, torch.dtype):
        raise ModelLoadError(f"unknown dtype {dtype!r}; use e.g. 'float32', 'bfloat16' or torch.float16")
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _looks_like_fetch_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        text = f"{type(seen).__name__} {seen}".lower()
        if any(
            key in text
            for key in (
                "offline",
                "connection",
                "repository not found",
                "not found",
                "resolve",
                "hub",
                "does not appear to have",
            )
        ):
            return True
        if isinstance(seen, OSError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# -- identity ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelIdentity:
    """What an artifact records about the model that made it."""

    name: str
    kind: str
    n_layers: int
    d_model: int
    dtype: str
    fingerprint: str
    quantization: dict[str, Any] | None = None  # what a quantizer did (backend, bits, group size, modules)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelIdentity":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def has_hooked_transformer() -> bool:
    """Whether the installed TransformerLens still has HookedTransformer (3 does, 4 does not)."""
    try:
        from transformer_lens import HookedTransformer  # noqa: F401
    except ImportError:
        return False
    return True


def model_kind(model: Any) -> str:
    try:
        from transformer_lens import HookedTransformer

        if isinstance(model, HookedTransformer):
            return "hooked"
    except ImportError:  # TransformerLens 4 removed HookedTransformer
        pass
    try:
        from transformer_lens.model_bridge import TransformerBridge

        if isinstance(model, TransformerBridge):
            return "bridge"
    except ImportError:  # pragma: no cover - TL without the bridge
        pass
    return type(model).__name__


def model_device(model: Any) -> torch.device:
    """Where the model's (first) parameters live; CPU for a model without parameters."""
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def model_identity(model: Any) -> ModelIdentity:
    """Name, kind, n_layers, d_model, dtype and a weights fingerprint of a TL model."""
    cfg = model.cfg
    return ModelIdentity(
        name=str(cfg.model_name),
        kind=model_kind(model),
        n_layers=int(cfg.n_layers),
        d_model=int(cfg.d_model),
        dtype=str(cfg.dtype).replace("torch.", ""),
        fingerprint=weights_fingerprint(model),
        quantization=provenance(model).quantization,
    )


@torch.no_grad()
def weights_fingerprint(model: torch.nn.Module, samples_per_tensor: int = 256) -> str:
    """A short hash of a strided sample of every parameter: cheap even for very large models.

    Different weights (a fine-tune, a quantized copy) give a different fingerprint. The two TL
    model kinds store processed weights differently, so their fingerprints differ too.
    """
    digest = hashlib.sha256()
    for pname, param in sorted(model.named_parameters(), key=lambda item: item[0]):
        flat = param.detach()
        if hasattr(flat, "__tensor_flatten__") and hasattr(flat, "dequantize"):  # torchao's int8 weights
            flat = flat.dequantize()
        flat = flat.reshape(-1)
        step = max(1, flat.numel() // samples_per_tensor)
        sample = flat[::step][:samples_per_tensor].to("cpu", torch.float32).contiguous()
        digest.update(pname.encode())
        digest.update(str(tuple(param.shape)).encode())
        digest.update(sample.numpy().tobytes())
    return digest.hexdigest()[:16]
