"""The quantization study end to end on a tiny random Llama: tables, skipped backends, files, CLI."""

from __future__ import annotations

import json

import pytest
import torch

import tl_traits as tt
from tl_traits.app.cli import main
from tl_traits.quantization.quantizer import Quantizer
from tl_traits.quantization.study import quantization_study


@pytest.fixture(scope="module")
def tiny_bridge(tiny_llama_folder):
    return tt.load_model(tiny_llama_folder)


@pytest.fixture(scope="module")
def unavailable():
    name = "test-needs-cuda"
    tt.quantizers.register(name, obj=Quantizer(name, "never here", lambda m: (m, {}), lambda: (False, "needs CUDA")))
    yield name
    tt.quantizers.unregister(name)


@pytest.fixture(scope="module")
def study(tiny_bridge, unavailable):
    before = {k: v.clone() for k, v in tiny_bridge.state_dict().items()}
    result = quantization_study(
        tiny_bridge,
        "emotion/joy",
        backends=["int8", "int4", unavailable],
        methods=["mean_diff", "probe"],
        limit=8,
        steer=True,
        questions=2,
        max_new_tokens=4,
        drift_examples=4,
    )
    after = tiny_bridge.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the float32 model is untouched
    return result


def test_table_has_every_backend_and_method(study, unavailable):
    rows = study.table()
    assert [(r["backend"], r["method"]) for r in rows] == [
        ("float32", "mean_diff"),
        ("float32", "probe"),
        ("int8", "mean_diff"),
        ("int8", "probe"),
        ("int4", "mean_diff"),
        ("int4", "probe"),
        (unavailable, None),
    ]
    assert rows[-1]["skipped"] == "needs CUDA"
    for r in rows[:-1]:
        assert -1.0 <= r["min_cosine"] <= r["mean_cosine"] <= 1.0 + 1e-6
    assert rows[0]["mean_cosine"] == 1.0 and rows[0]["max_drift"] == 0.0


def test_int8_bends_less_than_int4(study):
    by = {r.backend: r for r in study.backends}
    assert by["int8"].info["backend"] == "int8" and by["int4"].info["backend"] == "int4"
    assert max(by["int8"].drift) < max(by["int4"].drift)
    assert 0 < by["int8"].drift[-1]
    assert sum(by["int8"].cosine["mean_diff"]) >= sum(by["int4"].cosine["mean_diff"]) - 1e-6


def test_reference_auroc_matches_extraction(study, tiny_bridge):
    vecs = tt.extract(tiny_bridge, tt.load_trait("emotion/joy").limit(8), ["mean_diff"], progress=False)
    assert study.reference.reference_auroc["mean_diff"] == pytest.approx(vecs["mean_diff"].metrics["auroc"].tolist())


def test_steering_rows_for_every_backend(study):
    for result in [study.reference, *study.backends]:
        if result.skipped:
            assert result.steering is None
            continue
        assert [r["setting"] for r in result.search] == [f"mean_diff, layer {layer}" for layer in study.steering_layers]
        assert result.steering["layers"][0] in study.steering_layers  # chosen on this model's own dev questions
        assert result.steering["strength"] > 0 and "unsteered_test_score" in result.steering  # a tiny random model's
        # answers may have no letters at all, which the trait judge leaves unscored


def test_save_writes_json_markdown_and_plot(study, tmp_path):
    paths = study.save(tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["trait"] == "emotion/joy" and len(data["table"]) == 7
    assert paths["md"].read_text().count("\n| int8 |") == 2
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.json", "study.md", "study.png"]


def test_unknown_backend_fails_before_any_work(tiny_bridge):
    with pytest.raises(LookupError, match="int3"):
        quantization_study(lambda: pytest.fail("loaded the model"), "emotion/joy", backends=["int3"])


def test_cli_quant_study(capsys, tiny_llama_folder, tmp_path):
    with pytest.raises(SystemExit) as done:
        main(
            [
                "quant-study",
                "emotion/joy",
                "--model",
                str(tiny_llama_folder),
                "--backends",
                "int8",
                "--methods",
                "mean_diff",
                "--no-steer",
                "--limit",
                "6",
                "--json",
                "--quiet",
                "-o",
                str(tmp_path),
            ]
        )
    result = json.loads(capsys.readouterr().out)
    assert done.value.code == 0
    assert [r["backend"] for r in result["table"]] == ["float32", "int8"]
    assert (tmp_path / "study.png").is_file()


def test_judges_run_on_the_float32_model(tiny_bridge, monkeypatch):
    """A quantized model must not grade its own text: every judge is built on the reference."""
    import tl_traits.quantization.study as qs

    seen = []
    real = qs.make_judge

    def spy(spec, **kwargs):
        seen.append(kwargs.get("model"))
        return real(spec, **kwargs)

    monkeypatch.setattr(qs, "make_judge", spy)
    quantization_study(
        tiny_bridge,
        "emotion/joy",
        backends=["int8"],
        methods=["mean_diff"],
        limit=6,
        questions=1,
        max_new_tokens=3,
        drift_examples=2,
    )
    assert len(seen) == 2 and all(m is tiny_bridge for m in seen)


def test_retained_steering_is_the_score_gain_relative_to_float32():
    from tl_traits.quantization.study import BackendResult, QuantStudy

    def steering(layer, gain):  # a headline: the setting chosen on dev and its test figures; unsteered 40
        return {
            "layers": [layer],
            "strength": 0.1,
            "test_score": 40 + gain,
            "unsteered_test_score": 40.0,
            "gain": gain,
            "gain_interval": [gain - 3, gain + 3],
            "trait": 60.0,
            "unsteered_trait": 50.0,
        }

    ref = BackendResult("float32", cosine={"mean_diff": [1.0, 1.0]}, drift=[0.0, 0.0], steering=steering(8, 20))
    int8 = BackendResult("int8", cosine={"mean_diff": [0.9, 0.8]}, drift=[0.1, 0.2], steering=steering(4, 5))
    study = QuantStudy("emotion/joy", [4, 8], ["mean_diff"], "mean_diff", [4, 8], ref, [int8], {})
    rows = {r["backend"]: r for r in study.table()}
    assert rows["float32"]["retained"] == 1.0 and rows["int8"]["retained"] == pytest.approx(5 / 20)
    assert rows["int8"]["score_gain"] == pytest.approx(5) and rows["int8"]["steering_layer"] == 4  # its own dev choice
    assert "+5.0 (+2.0 to +8.0)" in study.to_markdown()
    lost = BackendResult("float32", cosine={"mean_diff": [1.0, 1.0]}, drift=[0.0, 0.0], steering=steering(8, -2))
    assert all(
        r["retained"] is None
        for r in QuantStudy("emotion/joy", [4, 8], ["mean_diff"], "mean_diff", [4, 8], lost, [int8], {}).table()
    )  # float32 gains nothing: undefined
