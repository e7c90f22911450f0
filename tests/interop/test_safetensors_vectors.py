"""Another tool's plain {layer: tensor} safetensors file comes in as an absolute-units TraitVector."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

import tl_traits as tt
from tl_traits.core.vectors import VectorError
from tl_traits.interop.block_outputs import InteropError

from .conftest import final_logits


def test_a_plain_file_steers_by_its_tensors(tmp_path, bridge_model):
    gen = torch.Generator().manual_seed(0)
    tensors = {"model.layers.6": torch.randn(576, generator=gen) * 3, "layer.11": torch.randn(576, generator=gen) * 3}
    save_file(tensors, str(tmp_path / "other.safetensors"))
    with pytest.raises(VectorError, match="tt.import_safetensors"):  # the tl_traits loader points here
        tt.TraitVectors.load(tmp_path / "other.safetensors")
    vec = tt.import_safetensors(tmp_path / "other.safetensors", bridge_model)
    assert vec.layers == [6, 11] and vec.hook == "resid_post" and vec.units == "absolute"
    as_dict = {6: tensors["model.layers.6"] * 0.5, 11: tensors["layer.11"] * 0.5}
    torch.testing.assert_close(
        final_logits(bridge_model, tt.steer(bridge_model, vec, strength=0.5)),
        final_logits(bridge_model, tt.steer(bridge_model, as_dict)),
        rtol=1e-4,
        atol=1e-4,
    )


def test_hook_names_give_the_hook_and_unclear_names_are_refused(tmp_path, bridge_model):
    save_file({"blocks.3.hook_resid_pre": torch.ones(576)}, str(tmp_path / "pre.safetensors"))
    assert tt.import_safetensors(tmp_path / "pre.safetensors", bridge_model).hook == "resid_pre"
    save_file({"steering_vector": torch.ones(576)}, str(tmp_path / "no_layer.safetensors"))
    with pytest.raises(InteropError, match="cannot tell the layer of tensor 'steering_vector'"):
        tt.import_safetensors(tmp_path / "no_layer.safetensors", bridge_model)
    save_file({"12": torch.ones(64)}, str(tmp_path / "narrow.safetensors"))
    with pytest.raises(VectorError, match="made for another model"):
        tt.import_safetensors(tmp_path / "narrow.safetensors", bridge_model)


def test_our_own_vectors_file_points_to_traitvectors_load(tmp_path, bridge_model):
    vecs = tt.TraitVectors(
        {"mean_diff": tt.TraitVector("mean_diff", torch.ones(1, 576), [3], torch.ones(1), {}, {})},
        {"model": tt.model_identity(bridge_model).to_dict()},
    )
    path = vecs.save(tmp_path / "joy.safetensors")
    with pytest.raises(InteropError, match=r"tl_traits vectors file.*TraitVectors.load\("):
        tt.import_safetensors(path, bridge_model)
