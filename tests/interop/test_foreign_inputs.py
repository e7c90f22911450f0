"""Vectors from other tools read right or refused clearly: layer -1, duplicate layers, shapes, hooks, devices.

Pure tensors on a stand-in model (30 layers, d_model 576 like the embedded model), so no model loads."""

from __future__ import annotations

import types
import warnings

import gguf
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import tl_traits as tt
from tl_traits.core.vectors import VectorError
from tl_traits.interop.block_outputs import InteropError
from tl_traits.interop.gguf_control_vectors import read_control_vector
from tl_traits.steering.errors import SteeringError

from .conftest import write_gguf

D = 576


class StandIn(torch.nn.Module):
    """What import and steer read of a model: its cfg (name, layers, width) and parameters for the fingerprint."""

    def __init__(self, n_layers: int = 30, d_model: int = D) -> None:
        super().__init__()
        self.cfg = types.SimpleNamespace(model_name="stand-in", n_layers=n_layers, d_model=d_model, dtype=torch.float32)
        self.weight = torch.nn.Parameter(torch.zeros(3))


@pytest.fixture(scope="module")
def model():
    return StandIn()


def _rand(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*(shape or (D,)), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("key", ["layer.-1", "-1", "blocks.-1.hook_resid_post"])
def test_a_safetensors_key_minus_one_is_the_last_layer(tmp_path, model, key):
    save_file({key: _rand(0)}, str(tmp_path / "v.safetensors"))
    assert tt.import_safetensors(tmp_path / "v.safetensors", model).layers == [29]  # was layer 1


def test_a_square_tensor_is_refused_not_flattened(tmp_path, model):
    save_file({"layer.3": torch.ones(24, 24)}, str(tmp_path / "v.safetensors"))  # 24 x 24 = 576 = d_model
    with pytest.raises(VectorError, match=r"shape \[24, 24\].*not flattened"):
        tt.import_safetensors(tmp_path / "v.safetensors", model)
    with pytest.raises(VectorError, match="not flattened"):
        tt.TraitVector.from_layer_tensors(model, {3: torch.ones(24, 24)})
    with pytest.raises(SteeringError, match="not flattened"):
        tt.steer(model, {3: torch.ones(24, 24)})


@pytest.mark.parametrize("key", ["blocks.12.hook_mlp_in", "blocks.12.attn.hook_z", "model.layers.12.mlp"])
def test_a_key_naming_a_hook_we_do_not_steer_is_refused(tmp_path, model, key):
    save_file({key: _rand(0)}, str(tmp_path / "v.safetensors"))
    with pytest.raises(
        InteropError, match=r"blocks.<layer>.hook_<resid_pre\|resid_mid\|resid_post\|attn_out\|mlp_out>"
    ):
        tt.import_safetensors(tmp_path / "v.safetensors", model)  # was imported as resid_post


def test_gguf_direction_12_and_012_are_summed(tmp_path, model):
    a, b = _rand(1).numpy(), _rand(2).numpy()
    path = write_gguf(tmp_path / "dup.gguf", {"direction.12": a, "direction.012": b})
    vec = tt.import_gguf(path, model)
    assert vec.layers == [12]
    torch.testing.assert_close(vec.direction(12), torch.from_numpy(a + b))  # was one of the two


@pytest.mark.parametrize("name", ["direction.١٢", "direction.²"])
def test_a_non_ascii_digit_in_a_gguf_name_is_our_error(tmp_path, model, name):
    path = write_gguf(tmp_path / "digits.gguf", {name: _rand(0).numpy()})
    with pytest.raises(InteropError, match="non-ASCII digits"):  # was layer 12, or a raw ValueError
        tt.import_gguf(path, model)
    with pytest.raises(InteropError, match="non-ASCII digits"):
        read_control_vector(path)


def test_from_steering_vector_sums_minus_one_and_the_last_layer(model):
    a, b = _rand(1), _rand(2)
    made_there = types.SimpleNamespace(layer_type="decoder_block", layer_activations={-1: a, 29: b, np.int64(4): a})
    vec = tt.from_steering_vector(made_there, model)
    assert vec.layers == [4, 29]  # numpy integer keys are layers too
    torch.testing.assert_close(vec.direction(29), a + b)  # steering-vectors adds both; was b alone


def test_a_tensor_on_the_meta_device_is_a_clear_error(model):
    meta = torch.empty(D, device="meta")
    with pytest.raises(VectorError, match="meta device"):  # was NotImplementedError: Cannot copy out of meta tensor
        tt.TraitVector.from_layer_tensors(model, {3: meta})
    with pytest.raises(SteeringError, match="meta device"):
        tt.steer(model, {3: meta})
    with pytest.raises(SteeringError, match="meta device"):
        tt.steer(model, meta, 3)


def test_numpy_integer_layer_keys_are_layers(model):
    vec = tt.TraitVector.from_layer_tensors(model, {np.int64(3): _rand(0), np.int32(-2): _rand(1)})
    assert vec.layers == [3, 28]  # was "has layer np.int64(3)"


def _imported(model, layers=(3, 29)):
    return tt.TraitVector.from_layer_tensors(model, {k: _rand(k) for k in layers}, name="made-there")


def test_export_gguf_reads_minus_one_as_the_last_layer(tmp_path, model):
    path = tt.export_gguf(_imported(model), tmp_path / "last.gguf", layers=[-1])  # was "no vector for layer -1"
    assert [t.name for t in gguf.GGUFReader(str(path)).tensors] == ["direction.29"]


def test_export_gguf_with_no_layers_does_not_blame_llama_cpp(tmp_path, model):
    with pytest.raises(VectorError, match="layers is empty") as caught:
        tt.export_gguf(_imported(model), tmp_path / "none.gguf", layers=[])
    assert "llama.cpp" not in str(caught.value)
    only_zero = _imported(model, layers=(0,))
    with pytest.raises(InteropError, match="llama.cpp steers blocks 1 and up"):  # here llama.cpp is the reason
        tt.export_gguf(only_zero, tmp_path / "zero.gguf")
    assert not list(tmp_path.iterdir())


def test_to_steering_vector_reads_minus_one_as_the_last_layer(model):
    pytest.importorskip("steering_vectors", reason="steering-vectors is not installed (make test installs it)")
    exported = tt.to_steering_vector(_imported(model), layers=[-1])
    assert sorted(exported.layer_activations) == [29]  # was "no vector for layer -1"
    with pytest.raises(VectorError, match="layers is empty"):
        tt.to_steering_vector(_imported(model), layers=[])  # was an empty SteeringVector


def test_a_gguf_round_trip_keeps_its_tensors(tmp_path, model):
    vec = _imported(model, layers=(5, 29))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a control vector we wrote reads back without a warning
        back = tt.import_gguf(tt.export_gguf(vec, tmp_path / "v.gguf", strength=2.0), model)
    assert back.layers == [5, 29]
    torch.testing.assert_close(back.directions, 2 * vec.directions)


def test_an_imported_vector_has_no_baseline_to_centre_on_and_says_so(model):
    vec = _imported(model)
    with pytest.raises(VectorError, match="no recorded baseline.*tt.extract"):
        vec.baseline(3)  # was a raw KeyError: 'baseline' from monitoring
