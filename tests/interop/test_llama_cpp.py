"""The llama.cpp round trip: a vector exported as a GGUF control vector steers the embedded model's own
GGUF in llama.cpp (llama-cpp-python) as tl_traits steers the TransformerLens model.

Run with `make llamacpp` (it builds llama-cpp-python); skipped where it is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tl_traits as tt
from tl_traits.core.embedded import embedded_gguf_path
from tl_traits.interop.llama_cpp import apply_control_vectors

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: `make llamacpp` builds it")

LAYER, STRENGTH = 12, 0.3  # the CLI's default steering layer on this model; a strength that keeps the text fluent
NEW_TOKENS = 40


@pytest.fixture(scope="module")
def joy_vector(bridge_model):
    trait = tt.load_trait("emotion/joy").limit(24)
    return tt.extract(bridge_model, trait, "mean_diff", layers=[LAYER - 1, LAYER, LAYER + 1], progress=False)[
        "mean_diff"
    ]


@pytest.fixture(scope="module")
def llama():
    llm = llama_cpp.Llama(
        model_path=str(embedded_gguf_path()), n_ctx=512, n_threads=2, seed=0, logits_all=True, verbose=False
    )
    yield llm
    llm.close()


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x - x.max() - np.log(np.exp(x - x.max()).sum())


def _llama_last_logprobs(llm, ids: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    return _log_softmax(np.array(llm.scores[llm.n_tokens - 1]))


def test_llama_cpp_adds_direction_k_where_tl_traits_adds_layer_k(tmp_path, bridge_model, joy_vector, llama):
    ids = tt.prepare_inputs(bridge_model, "What do you think about Mondays?").input_ids[0].tolist()
    path = tt.export_gguf(joy_vector, tmp_path / "joy.gguf", layers=[LAYER], strength=STRENGTH)
    plain = _llama_last_logprobs(llama, ids)
    apply_control_vectors(llama, [(path, 1.0)])
    try:
        shift_llama = _llama_last_logprobs(llama, ids) - plain
    finally:
        apply_control_vectors(llama, None)
    assert np.allclose(_llama_last_logprobs(llama, ids), plain, atol=1e-4)  # cleared

    def shift_tl(layer: int) -> np.ndarray:
        with torch.no_grad():
            base = bridge_model(torch.tensor([ids]))[0, -1].log_softmax(-1).double().numpy()
            with tt.steer(bridge_model, joy_vector, layer, strength=STRENGTH):
                return bridge_model(torch.tensor([ids]))[0, -1].log_softmax(-1).double().numpy() - base

    def cosine(a, b):
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    by_layer = {layer: cosine(shift_llama, shift_tl(layer)) for layer in (LAYER - 1, LAYER, LAYER + 1)}
    print(f"\ncosine of llama.cpp's log-prob shift to tl_traits' at layers {by_layer}")
    # the Q4_1 kernels add noise, so not 1.0; an off-by-one layer numbering would match a neighbour best
    assert by_layer[LAYER] > 0.97
    assert by_layer[LAYER] > max(by_layer[LAYER - 1], by_layer[LAYER + 1]) + 0.05


def test_steered_text_moves_joy_in_llama_cpp_as_in_tl_traits(tmp_path, bridge_model, joy_vector, llama):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    questions = list(tt.load_trait("emotion/joy").questions[:8])
    path = tt.export_gguf(joy_vector, tmp_path / "joy.gguf", layers=[LAYER], strength=1.0)

    def llama_texts(scale: float | None) -> list[str]:
        apply_control_vectors(llama, [(path, scale)] if scale else None)
        texts = []
        for question in questions:
            ids = tt.prepare_inputs(bridge_model, question).input_ids[0].tolist()
            out = []
            for token in llama.generate(ids, temp=0.0, reset=True):
                if token == llama.token_eos() or len(out) >= NEW_TOKENS:
                    break
                out.append(token)
            texts.append(llama.detokenize(out).decode("utf-8", errors="replace"))
        apply_control_vectors(llama, None)
        return texts

    vader = SentimentIntensityAnalyzer()

    def mean_compound(texts: list[str]) -> float:
        return float(np.mean([vader.polarity_scores(t)["compound"] for t in texts]))

    # llama.cpp's scale on a file exported at strength 1 is the project's strength
    llama_shift = mean_compound(llama_texts(STRENGTH)) - mean_compound(llama_texts(None))
    plain = tt.generate(bridge_model, questions, max_new_tokens=NEW_TOKENS)
    with tt.steer(bridge_model, joy_vector, LAYER, strength=STRENGTH):
        steered = tt.generate(bridge_model, questions, max_new_tokens=NEW_TOKENS)
    tl_shift = mean_compound(steered) - mean_compound(plain)
    print(
        f"\nVADER compound shift, {len(questions)} joy questions, layer {LAYER}, strength {STRENGTH}, "
        f"{NEW_TOKENS} greedy tokens: llama.cpp {llama_shift:+.3f}, tl_traits {tl_shift:+.3f}"
    )
    assert llama_shift > 0.1 and tl_shift > 0.1
    assert 0.5 < llama_shift / tl_shift < 2.0
