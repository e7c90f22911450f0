"""Facts about a tokenizer that prompt preparation relies on: its BOS policy, special tokens and pad id."""

from __future__ import annotations

from typing import Any

from tl_traits.core.errors import TlTraitsError


class TokenizerError(TlTraitsError):
    """A model or tokenizer that cannot prepare inputs as asked."""


def tokenizer_and_cfg(obj: Any) -> tuple[Any, Any]:
    """(tokenizer, TL config) of a TransformerLens model, or (tokenizer, None) of a bare Hugging Face tokenizer."""
    tokenizer = getattr(obj, "tokenizer", None)
    if tokenizer is not None and hasattr(obj, "cfg"):
        return tokenizer, obj.cfg
    if hasattr(obj, "cfg"):
        raise TokenizerError(
            "this model has no tokenizer attached; load it with a tokenizer (tl_traits.load_model does)"
        )
    if not callable(getattr(obj, "convert_ids_to_tokens", None)):
        raise TokenizerError(f"expected a TransformerLens model or a Hugging Face tokenizer, got {type(obj).__name__}")
    return obj, None


def resolve_bos(tokenizer: Any, cfg: Any, explicit: bool | None) -> bool:
    """Whether inputs start with BOS: as asked, else as the TL config says, else as the tokenizer itself does."""
    if tokenizer.bos_token_id is None:
        if explicit:
            raise TokenizerError("bos=True was asked for, but this tokenizer has no BOS token")
        return False
    if explicit is not None:
        return explicit
    if cfg is not None:
        return bool(getattr(cfg, "default_prepend_bos", True))
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(probe) and probe[0] == tokenizer.bos_token_id


def uses_bos(model_or_tokenizer: Any) -> bool:
    """Whether prepared inputs for this model start with a BOS token."""
    tokenizer, cfg = tokenizer_and_cfg(model_or_tokenizer)
    return resolve_bos(tokenizer, cfg, None)


def special_tokens(tokenizer: Any) -> dict[str, int]:
    """Every special token string of the tokenizer with its id (added specials included)."""
    found: dict[str, int] = {}
    for token_id, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(added, "special", False):
            found[added.content] = int(token_id)
    for token in getattr(tokenizer, "all_special_tokens", []):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != getattr(tokenizer, "unk_token_id", None):
            found.setdefault(token, token_id)
    return found


def pad_id(tokenizer: Any, explicit: int | None = None) -> int | None:
    """The id to pad with: `explicit` if given, else the tokenizer's pad token, else its EOS; None if it has neither.

    Any id works as padding that the attention mask hides and no label counts; callers choose what
    None means (prompts pad with 0, training asks for pad_token_id=)."""
    if explicit is not None:
        return int(explicit)
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    return None
