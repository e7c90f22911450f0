"""Shared fixtures: the embedded model (both TL kinds), tiny random models, hand-built tokenizers."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
for _trial_setting in ("TL_TRAITS_LIMIT", "TL_TRAITS_MODEL"):  # a user's trial settings must not change what tests load
    os.environ.pop(_trial_setting, None)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "I feel happy and joyful today, what a wonderful day!",
    "Please answer the question politely and briefly.",
    "Paris is the capital of France; Berlin is the capital of Germany.",
    "Numbers like 12345 and symbols like <, >, | and ! appear in text.",
    "Ünïcødé text, emojis 🙂 and 中文 should still be encoded byte by byte.",
]


def build_gpt2_style_tokenizer(folder: Path, *, add_bos: bool = False, chat_template: str | None = None):
    """A small byte-level BPE tokenizer like GPT-2's (BOS = EOS = <|endoftext|>), saved and reloaded."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS * 4, trainer=trainer)
    if add_bos:  # a tokenizer that prepends BOS on its own, like Llama's
        backend.post_processor = processors.TemplateProcessing(
            single="<|endoftext|> $A", pair="<|endoftext|> $A $B", special_tokens=[("<|endoftext|>", 0)]
        )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>"
    )
    if chat_template:
        tok.chat_template = chat_template
    tok.save_pretrained(folder)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="session")
def embedded_folder() -> Path:
    from tl_traits.core.embedded import embedded_model_folder

    return embedded_model_folder()


@pytest.fixture(scope="session")
def smol_tokenizer(embedded_folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_folder)


@pytest.fixture(scope="session")
def bridge_model():
    import tl_traits as tt

    return tt.load_model()


def skip_without_hooked_transformer() -> None:
    from tl_traits.core.models import has_hooked_transformer

    if not has_hooked_transformer():
        pytest.skip("TransformerLens 4 has no HookedTransformer (kind='hooked' is TL 3 only)")


@pytest.fixture(scope="session")
def hooked_model():
    import tl_traits as tt

    skip_without_hooked_transformer()
    return tt.load_model(kind="hooked")


@pytest.fixture(scope="session")
def gpt2_tokenizer(tmp_path_factory):
    return build_gpt2_style_tokenizer(tmp_path_factory.mktemp("gpt2_tok"))


def build_tiny_hooked(tokenizer, *, n_ctx: int = 128):
    """A tiny random HookedTransformer (3 layers, d_model 32) built from a TL config around `tokenizer`."""
    skip_without_hooked_transformer()
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=3,
        d_model=32,
        d_head=8,
        n_heads=4,
        d_mlp=64,
        n_ctx=n_ctx,
        d_vocab=len(tokenizer),
        act_fn="gelu",
        normalization_type="LN",
        tokenizer_name=None,
        seed=0,
        model_name="tiny-random-hooked",
    )
    model = HookedTransformer(cfg, tokenizer=tokenizer)
    model.eval()
    return model


@pytest.fixture(scope="session")
def tiny_hooked(gpt2_tokenizer):
    """A tiny random HookedTransformer with the saved GPT-2-style tokenizer (no chat template)."""
    skip_without_hooked_transformer()
    return build_tiny_hooked(gpt2_tokenizer)


@pytest.fixture(scope="session")
def tiny_llama_folder(tmp_path_factory, smol_tokenizer) -> Path:
    """A tiny random Llama-family HF folder (SmolLM2's tokenizer) to boot both TL kinds from."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_llama")
    config = LlamaConfig(
        vocab_size=len(smol_tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=smol_tokenizer.bos_token_id,
        eos_token_id=smol_tokenizer.eos_token_id,
        pad_token_id=smol_tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    smol_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory, tiny_llama_folder) -> Path:
    """`tl-traits run` on the tiny random Llama: a complete output folder (report, vectors, results)."""
    from tl_traits.app.cli import main

    out = tmp_path_factory.mktemp("tiny_run") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the fault tests' runs (OMP_NUM_THREADS=1): the same sums, the same greedy tokens
    try:
        with pytest.raises(SystemExit) as done:
            main(
                [
                    "run",
                    "--model",
                    str(tiny_llama_folder),
                    "--limit",
                    "4",
                    "--questions",
                    "3",
                    "--max-new-tokens",
                    "6",
                    "--out",
                    str(out),
                    "--quiet",
                ]
            )
    finally:
        torch.set_num_threads(threads)
    assert done.value.code == 0
    return out


def pytest_collection_modifyitems(config, items):
    """On TransformerLens 4 (`make tl4`), tests of the HookedTransformer kind are skipped, with the reason."""
    from tl_traits.core.models import has_hooked_transformer

    if has_hooked_transformer():
        return
    skip = pytest.mark.skip(reason="TransformerLens 4 has no HookedTransformer (kind='hooked' is TL 3 only)")
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "hooked" in item.name.lower() or any(
            v in ("hooked", "hooked_model") for v in params.values() if isinstance(v, str)
        ):
            item.add_marker(skip)
