"""TraitVectors: save/load round trip, damaged files, model identity checks, report."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tl_traits.core.models import model_identity
from tl_traits.core.vectors import METRICS, TraitVector, TraitVectors, VectorError


def make_vectors(methods, layers, d_model, meta, seed=0):
    gen = torch.Generator().manual_seed(seed)
    vecs = {}
    for name in methods:
        dirs = torch.randn(len(layers), d_model, generator=gen)
        dirs = dirs / dirs.norm(dim=-1, keepdim=True)
        metrics = {m: torch.rand(len(layers), generator=gen) for m in METRICS}
        vecs[name] = TraitVector(
            name, dirs, list(layers), torch.rand(len(layers), generator=gen) * 50, metrics, {"method": name, **meta}
        )
    return TraitVectors(vecs, dict(meta))


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.text(max_size=12))
metadata = st.dictionaries(
    st.text(min_size=1, max_size=8).filter(
        lambda k: k not in {"format", "layers", "methods", "method_order", "tensor_sha256", "header_sha256"}
    ),
    json_scalars,
    max_size=4,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    methods=st.lists(
        st.sampled_from(["mean_diff", "probe", "gradient", "my-method"]), min_size=1, max_size=3, unique=True
    ),
    layers=st.lists(st.integers(0, 40), min_size=1, max_size=6, unique=True).map(sorted),
    d_model=st.integers(1, 24),
    meta=metadata,
)
def test_save_load_round_trip(tmp_path, methods, layers, d_model, meta):
    original = make_vectors(
        methods, layers, d_model, {"model": {"name": "m", "n_layers": 41, "d_model": d_model}, **meta}
    )
    path = original.save(tmp_path / "v.safetensors")
    loaded = TraitVectors.load(path)
    assert loaded.methods == original.methods and loaded.layers == original.layers
    assert loaded.metadata == original.metadata
    for name in methods:
        a, b = original[name], loaded[name]
        assert torch.equal(a.directions, b.directions) and torch.equal(a.act_norm, b.act_norm)
        assert a.metrics.keys() == b.metrics.keys()
        assert all(torch.equal(a.metrics[k], b.metrics[k]) for k in a.metrics)
        assert b.metadata == a.metadata
    assert not list(tmp_path.glob(".*tmp"))  # the temp file was renamed away
    assert path.stat().st_mode & 0o044  # readable by others, like any file (mkstemp alone gives 0600)


def test_truncated_altered_and_foreign_files_are_refused(tmp_path):
    from safetensors.torch import save_file

    vecs = make_vectors(["mean_diff"], [0, 1, 2], 8, {"model": {"name": "m", "n_layers": 3, "d_model": 8}})
    path = vecs.save(tmp_path / "v.safetensors")
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) - 20])
    with pytest.raises(VectorError, match="incomplete"):
        TraitVectors.load(tmp_path / "cut.safetensors")
    flipped = bytearray(data)
    flipped[-5] ^= 0xFF
    (tmp_path / "flip.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(VectorError, match="corrupt"):
        TraitVectors.load(tmp_path / "flip.safetensors")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(VectorError, match="not tl_traits vectors"):
        TraitVectors.load(tmp_path / "foreign.safetensors")
    with pytest.raises(VectorError, match="no vectors file"):
        TraitVectors.load(tmp_path / "missing.safetensors")


def rewrite_header(path, change) -> None:
    """Rewrite a vectors file with `change(header)` applied and the tensors untouched (what a hand edit does)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as fh:
        header = json.loads(fh.metadata()["tl_traits"])
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    change(header)
    save_file(tensors, str(path), metadata={"tl_traits": header if isinstance(header, str) else json.dumps(header)})


def test_an_edited_header_is_refused(tmp_path):
    vecs = make_vectors(["mean_diff"], [10, 11, 12], 8, {"model": {"name": "m", "n_layers": 30, "d_model": 8}})
    path = vecs.save(tmp_path / "v.safetensors")
    rewrite_header(path, lambda h: h.update(layers=[10, 11, 13]))  # "12" -> "13": direction(13) would read layer 12
    with pytest.raises(VectorError, match="header .* does not match the checksum"):
        TraitVectors.load(path)


def test_a_header_without_its_checksum_is_corrupt_and_rows_are_counted(tmp_path):
    from tl_traits.core.vector_checks import header_digest

    vecs = make_vectors(["mean_diff"], [10, 11, 12], 8, {"model": {"name": "m", "n_layers": 30, "d_model": 8}})
    path = vecs.save(tmp_path / "v.safetensors")
    rewrite_header(path, lambda h: h.pop("header_sha256"))
    with pytest.raises(VectorError, match="corrupt: its header lacks header_sha256"):
        TraitVectors.load(path)

    def relisted(layers):  # a header edited and re-signed: the rows must still match the layers
        def change(h):
            h.pop("header_sha256", None)
            h.update(layers=layers)
            h["header_sha256"] = header_digest({k: v for k, v in h.items() if k != "header_sha256"})

        return change

    rewrite_header(path, relisted([10, 11, 12, 13]))
    with pytest.raises(VectorError, match="lists 4 layers but method 'mean_diff' holds 3 rows per tensor"):
        TraitVectors.load(path)
    rewrite_header(path, relisted([10, 10, 12]))
    with pytest.raises(VectorError, match="not distinct integers"):
        TraitVectors.load(path)


@pytest.mark.parametrize(
    "header, message",
    [
        ('{"format": 1, "layers": [', "is not valid JSON: Expecting value at line 1, column 26"),
        ('["a list"]', "must hold a JSON object {...}, not a list"),
    ],
)
def test_a_malformed_header_names_the_file(tmp_path, header, message):
    vecs = make_vectors(["mean_diff"], [0], 4, {"model": {"name": "m", "n_layers": 1, "d_model": 4}})
    path = vecs.save(tmp_path / "v.safetensors")
    rewrite_header(path, lambda h: None)
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    save_file(tensors, str(path), metadata={"tl_traits": header})
    with pytest.raises(VectorError, match=re.escape(f"the header of {path} {message}; extract or copy it again")):
        TraitVectors.load(path)


def test_a_header_missing_keys_is_refused(tmp_path):
    vecs = make_vectors(["mean_diff"], [0], 4, {"model": {"name": "m", "n_layers": 1, "d_model": 4}})
    path = vecs.save(tmp_path / "v.safetensors")
    rewrite_header(path, lambda h: [h.pop("tensor_sha256"), h.pop("header_sha256")])
    with pytest.raises(VectorError, match="header lacks tensor_sha256"):
        TraitVectors.load(path)


def test_model_identity_is_checked(tiny_hooked):
    ident = model_identity(tiny_hooked).to_dict()
    good = make_vectors(["mean_diff"], [0, 1], ident["d_model"], {"model": ident})
    good["mean_diff"].check_model(tiny_hooked)
    wrong_width = make_vectors(["mean_diff"], [0, 1], 576, {"model": {**ident, "d_model": 576, "name": "SmolLM2"}})
    with pytest.raises(VectorError, match="vector from another model: made on SmolLM2.*d_model 576.*d_model 32"):
        wrong_width["mean_diff"].check_model(tiny_hooked)
    renamed = make_vectors(["mean_diff"], [0, 1], ident["d_model"], {"model": {**ident, "name": "other"}})
    with pytest.raises(VectorError, match="strict=False"):
        renamed["mean_diff"].check_model(tiny_hooked)
    with pytest.warns(UserWarning, match="applied to"):
        renamed["mean_diff"].check_model(tiny_hooked, strict=False)
    refit = make_vectors(["mean_diff"], [0, 1], ident["d_model"], {"model": {**ident, "fingerprint": "0" * 16}})
    with pytest.warns(UserWarning, match="weights .* differ"):
        refit["mean_diff"].check_model(tiny_hooked)


def test_report_best_and_lookup_errors():
    vecs = make_vectors(
        ["mean_diff", "probe"], [3, 4, 5], 4, {"model": {"name": "m"}, "dataset": {"name": "joy", "n_val": 10}}
    )
    vecs["probe"].metrics["auroc"] = torch.tensor([0.5, 0.9, 0.7])
    assert vecs.best("probe") == 4
    text = vecs.report()
    assert "joy on m" in text and "probe" in text and text.count("\n") > 8
    with pytest.raises(VectorError, match="no method 'pca'"):
        vecs["pca"]
    with pytest.raises(VectorError, match="no 'probe' vector for layer 9; this one has layers 3..5"):
        vecs["probe"].direction(9)
    assert json.loads(json.dumps(vecs.metadata)) == vecs.metadata


def test_other_prompt_preparation_is_reported(tiny_hooked):
    from tl_traits.core.prompts import prepare_inputs

    ident = model_identity(tiny_hooked).to_dict()
    settings = prepare_inputs(tiny_hooked, "x").settings.to_dict()
    same = make_vectors(["mean_diff"], [0], ident["d_model"], {"model": ident, "prompt_settings": settings})
    import warnings as _w

    with _w.catch_warnings():
        _w.simplefilter("error")
        same["mean_diff"].check_model(tiny_hooked)
    other = make_vectors(
        ["mean_diff"],
        [0],
        ident["d_model"],
        {"model": ident, "prompt_settings": {**settings, "bos": not settings["bos"]}},
    )
    with pytest.warns(UserWarning, match="prepares prompts differently.*bos"):
        other["mean_diff"].check_model(tiny_hooked)


def arithmetic_pair():
    meta = {"model": {"name": "m", "n_layers": 4, "d_model": 8}, "hook": "resid_post"}
    a = make_vectors(["mean_diff"], [1, 2, 3], 8, {**meta, "dataset": {"name": "joy"}}, seed=1)["mean_diff"]
    b = make_vectors(["mean_diff"], [2, 3], 8, {**meta, "dataset": {"name": "calm"}}, seed=2)["mean_diff"]
    return a, b


def test_vector_arithmetic_adds_in_steering_units_on_shared_layers():
    a, b = arithmetic_pair()
    both = a + b
    assert both.layers == [2, 3] and both.metrics == {}
    for s in (0.3, -1.5):  # exactly what the parts add at the same strength, each at its own activation norm
        for layer in (2, 3):
            torch.testing.assert_close(
                both.layer_tensors(s)[layer], a.layer_tensors(s)[layer] + b.layer_tensors(s)[layer]
            )
            torch.testing.assert_close(
                (a - b).layer_tensors(s)[layer], a.layer_tensors(s)[layer] - b.layer_tensors(s)[layer]
            )
    torch.testing.assert_close(both.act_norm, (a.act_norm[1:] + b.act_norm) / 2)  # the unit of strength: the mean norm
    torch.testing.assert_close((2 * a).direction(1), 2 * a.direction(1))
    torch.testing.assert_close((a * 0.5).direction(1), 0.5 * a.direction(1))
    torch.testing.assert_close((-a).direction(1), -a.direction(1))
    assert (a - b).metadata["expression"] == "(joy:mean_diff) - (calm:mean_diff)"
    assert (2 * (a + b)).metadata["expression"] == "2 * ((joy:mean_diff) + (calm:mean_diff))"
    assert (a + b).metadata["model"]["name"] == "m"
    with pytest.raises(TypeError):
        a + 1.0
    with pytest.raises(TypeError):
        a * a


def test_vector_arithmetic_refuses_mixed_models_hooks_and_disjoint_layers():
    a, b = arithmetic_pair()
    other_model = TraitVector(
        "mean_diff",
        b.directions,
        b.layers,
        b.act_norm,
        {},
        {**b.metadata, "model": {"name": "x", "n_layers": 4, "d_model": 8}},
    )
    with pytest.raises(VectorError, match="different models"):
        a + other_model
    other_hook = TraitVector("mean_diff", b.directions, b.layers, b.act_norm, {}, {**b.metadata, "hook": "resid_mid"})
    with pytest.raises(VectorError, match="different hooks"):
        a - other_hook
    far = TraitVector("mean_diff", b.directions, [5, 6], b.act_norm, {}, b.metadata)
    with pytest.raises(VectorError, match="share no layer"):
        a + far


def test_twice_a_vector_steers_like_twice_the_strength(tiny_hooked):
    import tl_traits as tt

    identity = model_identity(tiny_hooked).to_dict()
    d = tiny_hooked.cfg.d_model
    vec = make_vectors(["mean_diff"], [0, 1], d, {"model": identity})["mean_diff"]
    tokens = torch.tensor([[1, 2, 3, 4]])
    with tt.steer(tiny_hooked, 2 * vec, 1, strength=0.3):
        doubled = tiny_hooked(tokens)
    with tt.steer(tiny_hooked, vec, 1, strength=0.6):
        stronger = tiny_hooked(tokens)
    torch.testing.assert_close(doubled, stronger)


def test_best_layer_never_picks_a_nan_and_breaks_ties_by_a_stated_rule():
    """Few held-out examples: every layer ties at AUROC 1.0 and every d is NaN (the old argmax picked layer 0)."""
    nan = float("nan")
    layers = list(range(10))
    metrics = {
        "auroc": torch.tensor([0.5] + [1.0] * 9),
        "accuracy": torch.tensor([0.5] + [1.0] * 9),
        "cohens_d": torch.full((10,), nan),
    }
    vec = TraitVector("mean_diff", torch.ones(10, 4), layers, torch.ones(10), metrics, {"model": {"n_layers": 10}})
    assert vec.best_layer("auroc") == 4  # all tied: the layer nearest 40% depth (3.6), not layer 0 at AUROC 0.5
    metrics["accuracy"] = torch.tensor([0.5] + [0.9] * 8 + [1.0])
    assert vec.best_layer("auroc") == 9  # AUROC tied: accuracy decides
    metrics["cohens_d"] = torch.tensor([nan] * 8 + [3.0, 2.0])
    metrics["accuracy"] = torch.ones(10)
    assert vec.best_layer("auroc") == 8  # then d, counted where it is a number
    metrics["auroc"] = torch.tensor([nan] * 9 + [0.7])
    assert vec.best_layer("auroc") == 9  # a NaN AUROC never wins


def imported_like(a: TraitVector, layers=(1, 2, 3), scale: float = 7.0) -> TraitVector:
    """An absolute-units vector (what import_gguf / import_safetensors make) on a's model."""
    gen = torch.Generator().manual_seed(5)
    return TraitVector(
        "imported",
        scale * torch.randn(len(layers), a.directions.shape[1], generator=gen),
        list(layers),
        torch.ones(len(layers)),
        {},
        {"model": a.metadata["model"], "dataset": {"name": "repeng"}},
        hook=a.hook,
        units="absolute",
    )


def test_a_sum_adds_exactly_the_parts_even_when_their_norms_differ():
    """The docstring's "exactly": the old sum averaged the norms and was 0.7% off for joy + formality."""
    a, b = arithmetic_pair()
    a.act_norm = torch.tensor([10.0, 12.0, 14.0])
    b.act_norm = torch.tensor([30.0, 40.0])
    for vec, expected in (
        (a + b, lambda s, n: a.layer_tensors(s)[n] + b.layer_tensors(s)[n]),
        (a - 2 * b, lambda s, n: a.layer_tensors(s)[n] - 2 * b.layer_tensors(s)[n]),
    ):
        for layer in (2, 3):
            torch.testing.assert_close(vec.layer_tensors(0.4)[layer], expected(0.4, layer))


def test_units_travel_through_arithmetic_and_are_never_mixed():
    a, _ = arithmetic_pair()
    imported = imported_like(a)
    assert a.units == "relative" and imported.units == "absolute"
    for derived in (1 * imported, imported * 0.5, -imported, imported + imported, imported - 2 * imported):
        assert derived.units == "absolute" and "units" not in derived.metadata  # `1 * imported` lost them
    assert (2 * a).units == "relative" and "units" not in (a + a).metadata
    torch.testing.assert_close((1 * imported).layer_tensors(0.3)[2], imported.layer_tensors(0.3)[2])
    for mixed in (lambda: a + imported, lambda: imported - a):
        with pytest.raises(
            VectorError, match="different units.*relative.*absolute|different units.*absolute.*relative"
        ) as err:
            mixed()
        assert "in_absolute_units()" in str(err.value)


def test_in_absolute_units_is_the_explicit_conversion():
    a, _ = arithmetic_pair()
    imported = imported_like(a)
    converted = a.in_absolute_units()
    assert converted.units == "absolute" and converted.layers == a.layers
    for layer in a.layers:  # the same steering at every strength
        torch.testing.assert_close(converted.layer_tensors(0.7)[layer], a.layer_tensors(0.7)[layer])
    torch.testing.assert_close(a.in_absolute_units(0.5).layer_tensors(2.0)[1], a.layer_tensors(1.0)[1])
    both = converted + imported
    for layer in (1, 2, 3):
        torch.testing.assert_close(
            both.layer_tensors(0.3)[layer], a.layer_tensors(0.3)[layer] + imported.layer_tensors(0.3)[layer]
        )
    torch.testing.assert_close(imported.in_absolute_units().directions, imported.directions)


def test_a_scale_must_be_finite_in_float32_and_numpy_scalars_are_numbers():
    """1e39 passed math.isfinite: the vector became inf, generate returned empty text, export_gguf wrote inf."""
    a, _ = arithmetic_pair()
    for bad in (1e39, -1e39, float("nan"), float("inf"), np.float64(1e300)):
        for op in (lambda bad=bad: bad * a, lambda bad=bad: a * bad):
            with pytest.raises(VectorError, match="scale of a vector"):
                op()
    with pytest.raises(VectorError, match="strength 1e\\+39 overflows float32"):
        a.layer_tensors(1e39)
    a.act_norm = torch.full((3,), 100.0)
    with pytest.raises(VectorError, match="times .* overflows float32"):
        a.layer_tensors(1e37)  # finite, but x a norm of 100 is inf in float32
    for scale in (np.float32(2.0), np.int64(2), np.float64(2.0)):
        for scaled in (scale * a, a * scale):
            torch.testing.assert_close(scaled.directions, 2 * a.directions)
            assert scaled.metadata["expression"] == "2 * (joy:mean_diff)"
    torch.testing.assert_close(a.layer_tensors(np.float32(0.5))[1], a.layer_tensors(0.5)[1])
    with pytest.raises(TypeError):
        a * "2"


def test_hook_and_units_are_typed_fields_read_from_metadata_once():
    meta = {"model": {"name": "m", "n_layers": 4, "d_model": 8}, "hook": "resid_pre", "units": "absolute"}
    vec = TraitVector("x", torch.eye(8)[:2], [1, 2], torch.ones(2), {}, meta)
    assert (
        (vec.hook, vec.units) == ("resid_pre", "absolute")
        and "hook" not in vec.metadata
        and "units" not in vec.metadata
    )
    # the caller's dict is untouched
    assert vec.stored_metadata()["hook"] == "resid_pre" and meta["hook"] == "resid_pre"
    with pytest.raises(VectorError, match="unknown units 'percent'"):
        TraitVector("x", torch.eye(8)[:2], [1, 2], torch.ones(2), {}, {}, units="percent")  # type: ignore[arg-type]
    with pytest.raises(VectorError, match="unknown hook 'resid'"):
        TraitVector("x", torch.eye(8)[:2], [1, 2], torch.ones(2), {}, {"hook": "resid"})
    with pytest.raises(VectorError, match="hook given twice"):
        TraitVector("x", torch.eye(8)[:2], [1, 2], torch.ones(2), {}, {"hook": "resid_pre"}, hook="attn_out")
