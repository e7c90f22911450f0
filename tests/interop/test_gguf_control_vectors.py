"""GGUF control vectors: the layout llama.cpp and repeng read, and a round trip that steers alike."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch

import tl_traits as tt
from tl_traits.core.vectors import VectorError
from tl_traits.interop.block_outputs import InteropError

from .conftest import final_logits


def _fields(path):
    reader = gguf.GGUFReader(str(path))

    def text(key):
        field = reader.get_field(key)
        return bytes(field.parts[field.data[0]]).decode()

    return reader, text


def test_export_writes_the_layout_llama_cpp_loads(tmp_path, known_vector):
    path = tt.export_gguf(known_vector, tmp_path / "joy.gguf", strength=0.5)
    reader, text = _fields(path)
    assert text("general.architecture") == "controlvector"
    assert text("controlvector.model_hint") == "SmolLM2-135M-Instruct"
    assert int(reader.get_field("controlvector.layer_count").parts[-1][0]) == 3
    # layer 0 is left out: llama.cpp refuses direction.0 (block 0's output)
    assert [t.name for t in reader.tensors] == ["direction.4", "direction.10", "direction.12"]
    for tensor in reader.tensors:
        layer = int(tensor.name.split(".")[1])
        assert tensor.tensor_type == gguf.GGMLQuantizationType.F32 and len(tensor.shape) == 1
        expected = 0.5 * known_vector.norm(layer) * known_vector.direction(layer)
        np.testing.assert_allclose(tensor.data, expected.numpy(), rtol=1e-6)
    assert not list(tmp_path.glob("*.tmp*"))


def test_layers_llama_cpp_cannot_steer_are_refused(tmp_path, known_vector):
    with pytest.raises(InteropError, match="refuses direction.0"):
        tt.export_gguf(known_vector, tmp_path / "x.gguf", layers=[0, 4])
    attn = tt.TraitVector(
        known_vector.method,
        known_vector.directions,
        known_vector.layers,
        known_vector.act_norm,
        {},
        {**known_vector.metadata, "hook": "attn_out"},
    )
    with pytest.raises(InteropError, match="resid_post"):
        tt.export_gguf(attn, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def test_resid_pre_maps_to_the_previous_block(tmp_path, known_vector):
    pre = tt.TraitVector(
        known_vector.method,
        known_vector.directions,
        known_vector.layers,
        known_vector.act_norm,
        {},
        {**known_vector.metadata, "hook": "resid_pre"},
    )
    reader, _ = _fields(tt.export_gguf(pre, tmp_path / "pre.gguf"))
    assert [t.name for t in reader.tensors] == ["direction.3", "direction.9", "direction.11"]


def test_round_trip_steers_as_the_original(tmp_path, bridge_model, known_vector):
    path = tt.export_gguf(known_vector, tmp_path / "joy.gguf", strength=0.5)
    back = tt.import_gguf(path, bridge_model)
    assert back.layers == [4, 10, 12]
    assert back.metadata["exported_at_strength"] == 0.5 and back.units == "absolute"
    original = final_logits(bridge_model, tt.steer(bridge_model, known_vector, [4, 10, 12], strength=0.5))
    imported = final_logits(bridge_model, tt.steer(bridge_model, back, [4, 10, 12], strength=1.0))
    torch.testing.assert_close(imported, original, rtol=1e-4, atol=1e-4)
    # llama.cpp's scale is linear, as strength is: scale 2 on the file is strength 1.0 on the original
    doubled = final_logits(bridge_model, tt.steer(bridge_model, back, [4, 10, 12], strength=2.0))
    torch.testing.assert_close(
        doubled,
        final_logits(bridge_model, tt.steer(bridge_model, known_vector, [4, 10, 12], strength=1.0)),
        rtol=1e-4,
        atol=1e-4,
    )
    assert not torch.allclose(doubled, original)


def test_import_refuses_files_that_are_not_this_models_control_vectors(
    tmp_path, bridge_model, tiny_hooked, known_vector
):
    path = tt.export_gguf(known_vector, tmp_path / "joy.gguf")
    with pytest.raises(VectorError, match="made for another model"):
        tt.import_gguf(path, tiny_hooked)
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(InteropError, match="not a readable GGUF file"):
        tt.import_gguf(tmp_path / "junk.gguf", bridge_model)
    writer = gguf.GGUFWriter(str(tmp_path / "other.gguf"), "controlvector")
    writer.add_tensor("token_embd.weight", np.zeros(576, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(InteropError, match="only direction.<layer> tensors"):
        tt.import_gguf(tmp_path / "other.gguf", bridge_model)
    with pytest.raises(InteropError, match="no GGUF file"):
        tt.import_gguf(tmp_path / "missing.gguf", bridge_model)


def test_an_imported_vector_steers_at_all_its_layers_by_default(tmp_path, bridge_model, known_vector):
    back = tt.import_gguf(tt.export_gguf(known_vector, tmp_path / "joy.gguf"), bridge_model)
    everywhere = final_logits(bridge_model, tt.steer(bridge_model, back, strength=1.0))
    torch.testing.assert_close(
        everywhere, final_logits(bridge_model, tt.steer(bridge_model, back, [4, 10, 12], strength=1.0))
    )
    # an extracted vector without layers steers at the one layer nearest 40% depth (12 of 30)
    torch.testing.assert_close(
        final_logits(bridge_model, tt.steer(bridge_model, known_vector, strength=1.0)),
        final_logits(bridge_model, tt.steer(bridge_model, known_vector, 12, strength=1.0)),
    )


def test_a_file_written_as_repeng_writes_it_steers_by_its_raw_tensors(tmp_path, bridge_model):
    """repeng's export_gguf: arch controlvector, model_hint = HF model_type, direction.k for its layers (1..n-1)."""
    rng = np.random.default_rng(0)
    directions = {k: (rng.standard_normal(576) * 3).astype(np.float32) for k in (5, 11)}
    path = tmp_path / "happy.gguf"
    writer = gguf.GGUFWriter(str(path), "controlvector")
    writer.add_string("controlvector.model_hint", "llama")
    writer.add_uint32("controlvector.layer_count", len(directions))
    for layer, t in directions.items():
        writer.add_tensor(f"direction.{layer}", t)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    happy = tt.import_gguf(path, bridge_model)
    assert (
        happy.layers == [5, 11]
        and happy.metadata["model_hint"] == "llama"
        and "exported_at_strength" not in happy.metadata
    )
    as_dict = {k: torch.from_numpy(v) * 0.7 for k, v in directions.items()}
    torch.testing.assert_close(
        final_logits(bridge_model, tt.steer(bridge_model, happy, strength=0.7)),
        final_logits(bridge_model, tt.steer(bridge_model, as_dict)),
        rtol=1e-4,
        atol=1e-4,
    )
