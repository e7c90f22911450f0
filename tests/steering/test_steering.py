"""steer(): identity at strength 0, no hooks left behind, positions, operators, nesting, sweeps."""

from __future__ import annotations

import pytest
import torch

import tl_traits as tt
from tl_traits.core.generation import generate_tokens
from tl_traits.core.hook_names import hook_name
from tl_traits.core.vectors import VectorError
from tl_traits.steering.steer import Setting, SteeringError

QUESTIONS = ["How was your day?", "What do you think about Mondays?"]


@pytest.fixture(scope="module")
def joy(bridge_model):
    trait = tt.load_trait("emotion/joy").limit(24)
    return tt.extract(bridge_model, trait, "mean_diff", layers=[4, 8, 10, 12], progress=False)["mean_diff"]


def hooks_attached(model) -> int:
    points = {id(p): p for p in model.hook_dict.values()}  # the bridge lists aliases twice
    return sum(len(p.fwd_hooks) for p in points.values())


@pytest.mark.parametrize("model_fixture", ["bridge_model", "hooked_model"])
def test_strength_zero_is_token_identical(request, joy, model_fixture):
    model = request.getfixturevalue(model_fixture)
    questions, n = (QUESTIONS, 16) if model_fixture == "bridge_model" else (QUESTIONS[:1], 8)
    base = generate_tokens(model, questions, max_new_tokens=n)
    with tt.steer(model, joy, [8, 10], strength=0.0, check_model=model_fixture == "bridge_model"):
        steered = generate_tokens(model, questions, max_new_tokens=n)
    assert steered == base
    assert hooks_attached(model) == 0


def test_steering_changes_text_and_leaves_no_hook_even_on_error(bridge_model, joy):
    base = tt.generate(bridge_model, QUESTIONS, max_new_tokens=16)
    with tt.steer(bridge_model, joy, 10, strength=0.5):
        assert hooks_attached(bridge_model) == 1
        steered = tt.generate(bridge_model, QUESTIONS, max_new_tokens=16)
    assert steered != base
    with pytest.raises(RuntimeError, match="boom"):
        with tt.steer(bridge_model, joy, [8, 10], strength=0.5):
            raise RuntimeError("boom")
    assert hooks_attached(bridge_model) == 0
    assert tt.generate(bridge_model, QUESTIONS, max_new_tokens=16) == base


def _final_logits(model, steering=()):
    tokens = tt.prepare_inputs(model, QUESTIONS[0]).input_ids
    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=list(steering))[0, -1]


def test_nested_blocks_compose_and_hooks_list_form(bridge_model, joy):
    with tt.steer(bridge_model, joy, 10, coef=3.0):
        with tt.steer(bridge_model, joy, 10, coef=2.0):
            nested = _final_logits(bridge_model)
        inner_gone = _final_logits(bridge_model)
    once = _final_logits(bridge_model, tt.steer(bridge_model, joy, 10, coef=5.0))
    torch.testing.assert_close(nested, once, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(
        inner_gone, _final_logits(bridge_model, tt.steer(bridge_model, joy, 10, coef=3.0)), rtol=1e-4, atol=1e-3
    )
    assert hooks_attached(bridge_model) == 0


def test_strength_is_relative_to_the_recorded_norm(bridge_model, joy):
    by_strength = _final_logits(bridge_model, tt.steer(bridge_model, joy, 12, strength=0.3))
    by_coef = _final_logits(bridge_model, tt.steer(bridge_model, joy, 12, coef=0.3 * joy.norm(12)))
    torch.testing.assert_close(by_strength, by_coef)


def test_ablation_projects_the_direction_out(bridge_model, joy):
    seen = {}
    name = hook_name(10)
    record = (name, lambda act, hook: seen.__setitem__("h", act.detach().clone()))
    tokens = tt.prepare_inputs(bridge_model, QUESTIONS[0]).input_ids
    v = joy.direction(10)
    with torch.no_grad():
        bridge_model.run_with_hooks(
            tokens, fwd_hooks=list(tt.steer(bridge_model, joy, 10, operator="ablate")) + [record]
        )
        assert (seen["h"] @ v).abs().max() < 1e-3
        bridge_model.run_with_hooks(
            tokens, fwd_hooks=list(tt.steer(bridge_model, joy, 10, operator="ablate_then_add", coef=7.0)) + [record]
        )
        torch.testing.assert_close(seen["h"] @ v, torch.full(seen["h"].shape[:2], 7.0), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("which", ["response", "prompt"])
def test_positions_limit_where_the_vector_is_added(bridge_model, joy, which):
    """positions='response' leaves the prompt's activations untouched (and 'prompt' the reverse)."""
    later = hook_name(14)
    calls = []

    def record(act, hook):
        calls.append(act.detach().clone())

    def run(steering):
        calls.clear()
        with bridge_model.hooks(fwd_hooks=[(later, record)]):
            if steering is None:
                generate_tokens(bridge_model, QUESTIONS[:1], max_new_tokens=4)
            else:
                with steering:
                    generate_tokens(bridge_model, QUESTIONS[:1], max_new_tokens=4)
        return list(calls)

    base = run(None)
    steered = run(tt.steer(bridge_model, joy, 10, strength=1.0, positions=which))
    assert len(base) == len(steered) and base[0].shape[1] > 1 and steered[1].shape[1] == 1
    prompt_same = torch.allclose(base[0], steered[0])
    if which == "response":
        assert prompt_same  # the prompt forward was not steered
        assert not torch.allclose(base[1], steered[1])  # generated tokens are
    else:
        assert not prompt_same
        # the first generated step differs only through the (steered) prompt's keys and values
        assert not torch.allclose(base[1], steered[1])


def test_batched_sweep_equals_settings_one_by_one(bridge_model, joy):
    settings = [(8, 0.4), (10, 0.6), (12, -0.4), (10, 0.0)]
    swept = tt.sweep_generate(bridge_model, joy, settings, QUESTIONS, max_new_tokens=10)
    for (layer, strength), texts in zip(settings, swept):
        with tt.steer(bridge_model, joy, layer, strength=strength):
            assert tt.generate(bridge_model, QUESTIONS, max_new_tokens=10) == texts
    assert swept[3] == tt.generate(bridge_model, QUESTIONS, max_new_tokens=10)
    assert hooks_attached(bridge_model) == 0


def test_a_sweep_over_several_vectors_equals_each_alone(bridge_model, joy):
    probe = tt.extract(bridge_model, "emotion/joy", "probe", position="response[:]", layers=[10, 12], progress=False)[
        "probe"
    ]
    settings = [
        Setting(10, strength=0.5),
        Setting(10, strength=0.5, vector=probe),
        Setting(12, strength=0.4, vector=probe),
    ]
    swept = tt.sweep_generate(bridge_model, joy, settings, QUESTIONS, max_new_tokens=10)
    for s, texts in zip(settings, swept):
        with tt.steer(bridge_model, s.vector or joy, s.layer, strength=s.strength):
            assert tt.generate(bridge_model, QUESTIONS, max_new_tokens=10) == texts
    assert swept[0] != swept[1]  # the two vectors at layer 10 really differ
    with pytest.raises(SteeringError, match="setting 0 has no vector"):
        tt.sweep_generate(bridge_model, None, [Setting(10, strength=0.5)], QUESTIONS)


def test_a_sweep_mixes_bands_and_positions_like_steer_does(bridge_model, joy):
    """A band spreads its strength over its layers; a response-only setting leaves the prompt alone; in one batch."""
    settings = [
        Setting((8, 10), strength=0.8),
        Setting(10, strength=0.5, positions="response"),
        Setting(12, strength=0.4),
    ]
    swept = tt.sweep_generate(bridge_model, joy, settings, QUESTIONS, max_new_tokens=10)
    with tt.steer(bridge_model, joy, [8, 10], strength=0.8, spread=True):
        assert tt.generate(bridge_model, QUESTIONS, max_new_tokens=10) == swept[0]
    with tt.steer(bridge_model, joy, [8, 10], strength=0.4):  # spread = each layer at half the strength
        assert tt.generate(bridge_model, QUESTIONS, max_new_tokens=10) == swept[0]
    with tt.steer(bridge_model, joy, 10, strength=0.5, positions="response"):
        assert tt.generate(bridge_model, QUESTIONS, max_new_tokens=10) == swept[1]
    with tt.steer(bridge_model, joy, 12, strength=0.4):
        assert tt.generate(bridge_model, QUESTIONS, max_new_tokens=10) == swept[2]
    with pytest.raises(SteeringError, match="positions must be one of"):
        tt.sweep_generate(bridge_model, joy, [Setting(10, strength=0.5, positions="middle")], QUESTIONS)


def test_a_mean_centred_vector_is_the_trait_side_minus_the_neutral_answers(bridge_model, joy):
    from tl_traits.core.capture import capture
    from tl_traits.steering.centring import mean_centred

    trait = tt.load_trait("emotion/joy").limit(6)
    answers = tt.generate(bridge_model, QUESTIONS, max_new_tokens=8)
    toward = mean_centred(bridge_model, joy, trait, QUESTIONS, answers, 1)
    away = mean_centred(bridge_model, joy, trait, QUESTIONS, answers, -1)
    options = dict(layers=joy.layers, position="response[:]", progress=False)
    expected = capture(bridge_model, list(trait.positive), **options).acts.mean(0) - capture(
        bridge_model, list(zip(QUESTIONS, answers)), **options
    ).acts.mean(0)
    expected = expected / expected.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(toward.directions, expected, atol=1e-5, rtol=1e-4)
    assert torch.equal(toward.act_norm, joy.act_norm) and toward.metadata["centred_from"] == "mean_diff"
    cos = (toward.directions * joy.directions).sum(-1)
    assert bool((cos > 0.1).all()) and bool((cos < 0.9).all())  # toward joy, but not the mean difference
    assert not torch.allclose(toward.directions, -away.directions)  # away is the negative side's own centring


def test_bad_steering_arguments(bridge_model, tiny_hooked, joy):
    with pytest.raises(SteeringError, match="not both"):
        tt.steer(bridge_model, joy, 10, strength=1.0, coef=2.0)
    with pytest.raises(SteeringError, match="give strength"):
        tt.steer(bridge_model, joy, 10)
    with pytest.raises(SteeringError, match="layer 30 is out of range"):
        tt.steer(bridge_model, joy, 30, strength=1.0)
    with pytest.raises(VectorError, match="no 'mean_diff' vector for layer 5"):
        tt.steer(bridge_model, joy, 5, strength=1.0)
    with pytest.raises(VectorError, match="vector from another model"):
        tt.steer(tiny_hooked, joy, 1, strength=1.0)
    with pytest.raises(SteeringError, match="in residual units: pass coef"):
        tt.steer(bridge_model, torch.ones(576), 10, strength=1.0)
    with pytest.raises(SteeringError, match="shape \\[d_model\\] = \\[576\\]"):
        tt.steer(bridge_model, torch.ones(10), 10, coef=1.0)
    with pytest.raises(SteeringError, match="positions must be"):
        tt.steer(bridge_model, joy, 10, strength=1.0, positions="middle")
    with pytest.raises(SteeringError, match="no tensor for layer"):
        tt.steer(bridge_model, {10: joy.direction(10)}, 11)


def test_raw_tensors_and_layer_dicts_keep_their_magnitude(bridge_model, joy):
    def logits(steering):
        return _final_logits(bridge_model, steering)

    tripled = joy.direction(10) * 3
    by_trait_vector = logits(tt.steer(bridge_model, joy, 10, coef=6.0))
    close = dict(rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logits(tt.steer(bridge_model, tripled, 10, coef=2.0)), by_trait_vector, **close)
    torch.testing.assert_close(logits(tt.steer(bridge_model, joy.direction(10) * 6, 10)), by_trait_vector, **close)
    torch.testing.assert_close(logits(tt.steer(bridge_model, {10: tripled}, coef=2.0)), by_trait_vector, **close)
    torch.testing.assert_close(
        logits(tt.steer(bridge_model, tripled, 10, coef=2.0, normalize=True)),
        logits(tt.steer(bridge_model, joy, 10, coef=2.0)),
        **close,
    )
    # two layers from one dict, each with its own tensor, equal the two added one after the other
    both = logits(tt.steer(bridge_model, {10: tripled, 12: -joy.direction(12)}))
    with tt.steer(bridge_model, tripled, 10):
        nested = logits(tt.steer(bridge_model, -joy.direction(12), 12))
    torch.testing.assert_close(both, nested, **close)
    assert not torch.allclose(both, by_trait_vector)
