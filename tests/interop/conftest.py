"""A vector on the embedded model with known norms, built without an extraction (fast)."""

from __future__ import annotations

import pytest
import torch

import tl_traits as tt

LAYERS = [0, 4, 10, 12]


@pytest.fixture(scope="module")
def known_vector(bridge_model):
    """Unit directions at LAYERS with activation norms 2, 3, 4, 5: strength s adds s x norm x direction."""
    gen = torch.Generator().manual_seed(0)
    directions = torch.randn(len(LAYERS), bridge_model.cfg.d_model, generator=gen)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    metadata = {"model": tt.model_identity(bridge_model).to_dict(), "hook": "resid_post", "dataset": {"name": "test"}}
    return tt.TraitVector("mean_diff", directions, list(LAYERS), torch.tensor([2.0, 3.0, 4.0, 5.0]), {}, metadata)


def final_logits(model, steering=(), text: str = "How was your day?"):
    tokens = tt.prepare_inputs(model, text).input_ids
    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=list(steering))[0, -1]


def write_gguf(path, tensors: dict, arch: str = "controlvector"):
    """A GGUF file holding `tensors` (name -> numpy array), written with gguf's own writer, as llama.cpp's tools do."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    for name, t in tensors.items():
        writer.add_tensor(name, t)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
