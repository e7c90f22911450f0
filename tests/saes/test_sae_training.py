"""SAE training: streamed real-token activations, sae-lens's trainer improves a TopK SAE, save/reload, clear errors."""

from __future__ import annotations

import pytest
import torch

from tl_traits.core.prompts import prepare_inputs
from tl_traits.saes.activations import activation_batches
from tl_traits.saes.sae import SAEError, load_sae, sae_hook, sae_identity
from tl_traits.saes.training import (
    SAETrainingError,
    sae_quality,
    split_corpus,
    train_sae,
)

D_MODEL, D_SAE, K, LAYER = 32, 64, 4, 1

WORDS = (
    "the cat dog fox runs jumps over lazy quick brown happy sad day night capital city France "
    "Paris Berlin numbers 12345 answer question politely briefly text symbols"
).split()


def make_corpus(n: int = 48, seed: int = 0) -> list[str]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(6, 16, (1,), generator=gen))
        out.append(" ".join(WORDS[int(i)] for i in torch.randint(0, len(WORDS), (length,), generator=gen)))
    return out


CORPUS = make_corpus()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny random HookedTransformer (3 layers, d_model 32), GPT-2-style tokenizer with a chat template, BOS on."""
    from tests.conftest import build_gpt2_style_tokenizer, build_tiny_hooked
    from tl_traits.core.prompts import PLAIN_CHAT_TEMPLATE

    tok = build_gpt2_style_tokenizer(tmp_path_factory.mktemp("sae_train_tok"), chat_template=PLAIN_CHAT_TEMPLATE)
    return build_tiny_hooked(tok, n_ctx=1024)  # room for chat-formatted trait examples


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("sae_out") / "sae"
    result = train_sae(
        tiny_model,
        LAYER,
        CORPUS,
        d_sae=D_SAE,
        k=K,
        n_tokens=16384,
        batch_tokens=128,
        lr=1e-2,
        out=out,
        seed=0,
        progress=False,
    )
    return result, out


def test_activation_batches_shapes_and_real_tokens_only(tiny_model):
    texts = CORPUS[:8]
    batches = list(
        activation_batches(tiny_model, texts, LAYER, batch_tokens=16, seq_batch=8, shuffle_seed=None, repeat=False)
    )
    assert all(b.dtype == torch.float32 and b.shape[1] == D_MODEL for b in batches)
    assert all(b.shape[0] == 16 for b in batches[:-1]) and 0 < batches[-1].shape[0] <= 16
    got = torch.cat(batches)

    # a direct run_with_cache on the same batch: real tokens only, BOS and pads left out
    batch = prepare_inputs(tiny_model, texts, chat=False, padding_side="right")
    assert batch.settings.bos  # the tiny model prepends BOS, so there is a BOS position to drop
    name = f"blocks.{LAYER}.hook_resid_post"
    _, cache = tiny_model.run_with_cache(batch.input_ids, attention_mask=batch.attention_mask, names_filter=name)
    acts = cache[name]
    lengths = batch.attention_mask.sum(1)
    assert (lengths < lengths.max()).any()  # some rows are padded
    expected = torch.cat([acts[i, 1 : int(lengths[i])] for i in range(len(texts))])
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    bos_rows = acts[:, 0]
    pad_rows = acts[batch.attention_mask == 0]
    for row in torch.cat([bos_rows, pad_rows]):
        assert not torch.isclose(got, row.expand_as(got), atol=1e-6).all(-1).any()


def test_activation_batches_shuffle_and_repeat(tiny_model):
    once = torch.cat(list(activation_batches(tiny_model, CORPUS[:6], 0, batch_tokens=8, repeat=False)))
    plain = torch.cat(
        list(activation_batches(tiny_model, CORPUS[:6], 0, batch_tokens=8, repeat=False, shuffle_seed=None))
    )
    assert once.shape == plain.shape and not torch.equal(once, plain)  # same tokens, other order
    torch.testing.assert_close(once.sum(0), plain.sum(0), rtol=1e-4, atol=1e-4)
    stream = activation_batches(tiny_model, CORPUS[:2], 0, batch_tokens=8, repeat=True)
    n = sum(next(stream).shape[0] for _ in range(3 * once.shape[0] // 8))  # more than the two texts hold
    assert n == 8 * (3 * once.shape[0] // 8)
    stream.close()


def test_train_sae_beats_an_untrained_sae(trained, tiny_model):
    from sae_lens import SAE, TopKTrainingSAE, TopKTrainingSAEConfig

    result, out = trained
    assert result.folder == out and out.is_dir()
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".partial")]
    assert result.n_train_tokens == 16384 and result.n_eval_tokens > 0 and result.train_seconds > 0
    assert 0 < result.mean_l0 <= K and 0 <= result.dead_fraction < 1

    # an untrained SAE of the same config, on the same held-out activations
    torch.manual_seed(0)
    fresh_cfg = TopKTrainingSAEConfig(d_in=D_MODEL, d_sae=D_SAE, k=K)
    fresh = TopKTrainingSAE(fresh_cfg)
    _, held = split_corpus(CORPUS, seed=0)
    acts = torch.cat(list(activation_batches(tiny_model, held, LAYER, batch_tokens=4096, repeat=False)))
    assert acts.shape[0] == result.n_eval_tokens
    before = sae_quality(fresh, acts)["explained_variance"]
    after = sae_quality(result.sae, acts)
    assert after["explained_variance"] == pytest.approx(result.explained_variance, abs=1e-5)
    assert result.explained_variance > 0.5
    assert before < 0.2 and result.explained_variance > before + 0.4
    assert isinstance(result.sae, SAE) and result.sae.cfg.architecture() == "topk"


def test_saved_sae_reloads_and_encodes_identically(trained, tiny_model):
    from sae_lens import SAE

    result, out = trained
    again = load_sae(out)
    direct = SAE.load_from_disk(out)
    x = torch.randn(20, D_MODEL)
    torch.testing.assert_close(again.encode(x), result.sae.encode(x))
    torch.testing.assert_close(direct.decode(direct.encode(x)), result.sae.decode(result.sae.encode(x)))
    ident = sae_identity(again)
    assert ident["hook_name"] == f"blocks.{LAYER}.hook_resid_post"
    assert ident["model_name"] == "tiny-random-hooked"
    assert ident["architecture"] == "topk" and ident["d_sae"] == D_SAE and ident["d_in"] == D_MODEL
    assert sae_hook(again) == (LAYER, "resid_post")
    assert again.cfg.k == K


def test_train_without_folder(tiny_model):
    result = train_sae(
        tiny_model, 0, CORPUS[:12], d_sae=16, k=2, n_tokens=64, batch_tokens=32, hook="mlp_out", progress=False
    )
    assert result.folder is None and result.hook_name == "blocks.0.hook_mlp_out"
    assert result.sae.cfg.metadata.hook_name == "blocks.0.hook_mlp_out"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"layer": 3}, "layer 3 is out of range"),
        ({"layer": -1}, "out of range"),
        ({"corpus": []}, "corpus is empty"),
        ({"corpus": ["", "  "]}, "corpus is empty"),
        ({"k": 65}, "k=65 is larger than d_sae=64"),
        ({"n_tokens": 100}, "n_tokens=100 is less than batch_tokens=128"),
        ({"hook": "resid"}, "unknown hook"),
    ],
)
def test_clear_errors(tiny_model, kwargs, match):
    args = {"layer": LAYER, "corpus": CORPUS, "d_sae": D_SAE, "k": K, "n_tokens": 1024, "batch_tokens": 128}
    args.update(kwargs)
    with pytest.raises(SAETrainingError, match=match):
        train_sae(tiny_model, args.pop("layer"), args.pop("corpus"), progress=False, **args)
    assert issubclass(SAETrainingError, SAEError)


def test_existing_folder_is_refused(tiny_model, tmp_path):
    (tmp_path / "sae").mkdir()
    with pytest.raises(SAETrainingError, match="already exists"):
        train_sae(tiny_model, 0, CORPUS, d_sae=16, k=2, n_tokens=64, batch_tokens=32, out=tmp_path / "sae")
    with pytest.raises(SAETrainingError, match="out of range"):
        next(activation_batches(tiny_model, CORPUS, 7))


def test_chat_turns_are_read_with_the_chat_template(tiny_model):
    turns = [
        {"prompt": "how was the day", "response": "happy and quick"},
        {"prompt": "name a city", "response": "Paris"},
    ]
    got = torch.cat(list(activation_batches(tiny_model, turns, LAYER, batch_tokens=8, shuffle_seed=None, repeat=False)))
    batch = prepare_inputs(tiny_model, [t["prompt"] for t in turns], [t["response"] for t in turns], chat=True)
    name = f"blocks.{LAYER}.hook_resid_post"
    _, cache = tiny_model.run_with_cache(batch.input_ids, attention_mask=batch.attention_mask, names_filter=name)
    lengths = batch.attention_mask.sum(1)
    expected = torch.cat([cache[name][i, 1 : int(lengths[i])] for i in range(2)])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    mixed = list(activation_batches(tiny_model, CORPUS[:3] + turns, LAYER, batch_tokens=8, repeat=False))
    assert sum(b.shape[0] for b in mixed) > got.shape[0]
    with pytest.raises(SAETrainingError, match="chat turns"):
        next(activation_batches(tiny_model, [{"prompt": "no response"}], LAYER))


def _count_forwards(model):
    calls = []
    handle = model.register_forward_pre_hook(lambda mod, args: calls.append(1))
    return calls, handle


def test_memory_tokens_runs_the_model_once_per_corpus(tiny_model):
    texts = CORPUS[:8]
    one_pass = sum(b.shape[0] for b in activation_batches(tiny_model, texts, LAYER, batch_tokens=8, repeat=False))
    for memory, expect_more in ((10_000, False), (one_pass - 1, True), (0, True)):
        calls, handle = _count_forwards(tiny_model)
        stream = activation_batches(tiny_model, texts, LAYER, batch_tokens=8, seq_batch=4, memory_tokens=memory)
        rows = torch.cat([next(stream) for _ in range(3 * one_pass // 8)])
        stream.close()
        handle.remove()
        first = -(-len(texts) // 4)  # forwards for one pass
        assert (len(calls) > first) is expect_more, (memory, len(calls))
        assert rows.shape == (8 * (3 * one_pass // 8), D_MODEL)


def test_stored_sae_is_what_the_extractor_uses(tiny_model, tmp_path, monkeypatch):
    import tl_traits as tt
    from tl_traits.saes.recipe import train_and_store
    from tl_traits.saes.sae import stored_saes

    monkeypatch.setenv("TL_TRAITS_CACHE", str(tmp_path))
    trait = tt.load_trait("emotion/joy").limit(8)
    with pytest.raises(SAEError, match="none are stored.*tl-traits train-sae"):
        tt.extract(tiny_model, trait, "sae", layers=[LAYER], progress=False)
    record = train_and_store(
        tiny_model, layer=LAYER, d_sae=D_SAE, k=K, n_tokens=1024, lr=1e-2, corpus=CORPUS, progress=False
    )
    folder = stored_saes(tiny_model.cfg.model_name)[LAYER]
    assert record["folder"] == str(folder) and (folder / "training.json").is_file()
    assert (folder / "feature_density.png").stat().st_size > 1000
    vecs = tt.extract(tiny_model, trait, ["mean_diff", "sae"], layers=[LAYER], progress=False)
    assert vecs["sae"].metadata["sae"][str(LAYER)]["path"] == str(folder.resolve())
    with pytest.raises(SAEError, match=r"no SAE for layers \[0\]"):
        tt.extract(tiny_model, trait, "sae", layers=[0, LAYER], progress=False)
    with pytest.raises(SAETrainingError, match="already exists.*--force"):
        train_and_store(tiny_model, layer=LAYER, d_sae=D_SAE, k=K, n_tokens=1024, corpus=CORPUS, progress=False)
    old = (folder / "training.json").read_text()
    again = train_and_store(
        tiny_model, layer=LAYER, d_sae=D_SAE, k=K, n_tokens=1024, seed=1, corpus=CORPUS, force=True, progress=False
    )
    assert again["seed"] == 1 and (folder / "training.json").read_text() != old
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # no .training / .old left


def test_train_sae_command(tiny_llama_folder, tmp_path, monkeypatch):
    import json

    from tl_traits.app.cli import EXIT_BAD_INPUT, main

    monkeypatch.setenv("TL_TRAITS_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"text": t} for t in CORPUS[:20]] + [{"prompt": "say hi", "response": "hi there"}] * 4
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = [
        "train-sae",
        "--model",
        str(tiny_llama_folder),
        "--layer",
        "1",
        "--d-sae",
        "64",
        "--k",
        "4",
        "--tokens",
        "2048",
        "--corpus",
        str(corpus),
        "--out",
        str(tmp_path / "sae"),
        "--json",
        "-q",
    ]
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 0
    record = json.loads((tmp_path / "sae" / "training.json").read_text())
    assert record["corpus"] == {"description": "given by the user", "plain_texts": 20, "chat_turns": 4}
    assert record["n_train_tokens"] == 2048 and 0 < record["mean_l0"] <= 4
    with pytest.raises(SystemExit) as refused:
        main(args)
    assert refused.value.code == EXIT_BAD_INPUT
    stamp = (tmp_path / "sae" / "training.json").stat().st_mtime_ns
    with pytest.raises(SystemExit) as skipped:
        main([*args, "--if-missing"])
    assert skipped.value.code == 0 and (tmp_path / "sae" / "training.json").stat().st_mtime_ns == stamp
    (tmp_path / "bad.jsonl").write_text('{"title": "x"}\n')
    with pytest.raises(SystemExit) as bad:
        main([*args[:-4], "--corpus", str(tmp_path / "bad.jsonl"), "--out", str(tmp_path / "sae2"), "-q"])
    assert bad.value.code == EXIT_BAD_INPUT and not (tmp_path / "sae2").exists()
