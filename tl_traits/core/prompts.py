"""The one place that turns text or chat messages into tokens, with exactly one BOS and known spans.

Every other module calls `prepare_inputs`; nothing else tokenizes. Rules it guarantees:
- a chat template is applied when the input is a conversation (or a string on a chat model);
- a model that uses BOS gets exactly one at the start, whether or not the template emitted it;
- special-token strings typed by a user ("<|im_start|>") stay text, never control tokens;
- the prompt tokens of an example with a response are the very tokens generation would see.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence, Union

import torch
from jaxtyping import Int
from torch import Tensor

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.tokenizers import (
    pad_id,
    resolve_bos,
    special_tokens,
    tokenizer_and_cfg,
)

Message = Mapping[str, str]
Conversation = Sequence[Message]
PromptInput = Union[str, Conversation]

# A plain chat layout for tokenizers that ship no template (base models, GPT-2 style).
PLAIN_CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% else %}Assistant:\n{{ m['content'] }}{{ eos_token }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:\n{% endif %}"
)


class PromptError(TlTraitsError):
    """Inputs that cannot be turned into tokens as asked; the message names the fix."""


@dataclass(frozen=True)
class Spans:
    """Token index ranges [start, end) of one example inside its (padded) row."""

    prompt: tuple[int, int]
    response: tuple[int, int]  # the response text tokens (empty when there is no response)
    end: tuple[int, int]  # end-of-turn tokens the template puts after the response

    def shifted(self, offset: int) -> "Spans":
        def move(span: tuple[int, int]) -> tuple[int, int]:
            return (span[0] + offset, span[1] + offset)

        return Spans(move(self.prompt), move(self.response), move(self.end))

    @property
    def length(self) -> int:
        return self.end[1] - self.prompt[0]


@dataclass(frozen=True)
class PromptSettings:
    """How prompts were prepared: recorded in artifacts so mixed tokenizations are detected."""

    chat: bool
    chat_template_sha256: str | None
    bos: bool
    bos_token_id: int | None
    tokenizer: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PreparedInputs:
    """A padded batch plus, per row, the rendered text and the prompt/response spans."""

    input_ids: Int[Tensor, "batch seq"]
    attention_mask: Int[Tensor, "batch seq"]
    rendered: list[str]
    spans: list[Spans]
    padding_side: str
    settings: PromptSettings
    token_ids: list[list[int]] = field(repr=False)  # unpadded ids per row

    def __len__(self) -> int:
        return len(self.rendered)


def prepare_inputs(
    model_or_tokenizer: Any,
    inputs: PromptInput | Sequence[PromptInput],
    responses: str | Sequence[str | None] | None = None,
    *,
    system: str | None = None,
    chat: bool | None = None,
    add_generation_prompt: bool = True,
    padding_side: str = "right",
    bos: bool | None = None,
    chat_template: str | None = None,
    parse_special: bool = False,
) -> PreparedInputs:
    """Tokenize one input or a batch: a string, a conversation, or a list of either.

    responses: an assistant response per input (or None): the response span is then filled.
        A conversation whose last message is the assistant's uses that message as response.
    chat: None picks the chat template when the tokenizer has one (or `chat_template` is
        given) and plain text otherwise; True/False force it.
    bos: None follows the model (TL's `default_prepend_bos`) or the tokenizer's own habit.
    parse_special: treat special-token strings in plain-text input as control tokens (for
        text you already rendered with a template yourself); never applies to chat content.
    padding_side: "left" for generation, "right" for capture.
    """
    tokenizer, model_cfg = tokenizer_and_cfg(model_or_tokenizer)
    items = as_batch(inputs)
    if not items:
        raise PromptError("prepare_inputs got no inputs; pass a string, a conversation, or a non-empty list")
    per_item = _match_responses(responses, len(items))
    if padding_side not in ("left", "right"):
        raise PromptError(f"padding_side must be 'left' or 'right', not {padding_side!r}")

    template = chat_template or getattr(tokenizer, "chat_template", None)
    uses_bos = resolve_bos(tokenizer, model_cfg, bos)
    bos_id = tokenizer.bos_token_id if uses_bos else None
    specials = special_tokens(tokenizer)

    context = context_length(model_cfg)
    rows: list[list[int]] = []
    rendered: list[str] = []
    spans: list[Spans] = []
    chat_used = False
    for index, (item, response) in enumerate(zip(items, per_item)):
        as_chat = (not isinstance(item, str)) or (chat if chat is not None else template is not None)
        if as_chat:
            chat_used = True
            parts = _render_chat(tokenizer, item, response, system, template, add_generation_prompt, specials, index)
        else:
            if system is not None:
                raise PromptError(
                    "a system prompt needs chat formatting: pass chat=True (with a chat template) "
                    "or put the system text into the prompt yourself"
                )
            parts = _render_plain(tokenizer, str(item), response, parse_special)  # not as_chat: item is a str
        ids, text, example_spans = _encode_parts(tokenizer, parts, specials, bos_id)
        if context is not None and len(ids) > context:
            raise PromptError(
                f"example {index} is {len(ids)} tokens, longer than the model's context of {context} tokens "
                "(past it, positions are silently wrong or the model fails deep inside); shorten or split it"
            )
        rows.append(ids)
        rendered.append(text)
        spans.append(example_spans)

    settings = PromptSettings(
        chat=chat_used,
        chat_template_sha256=hashlib.sha256(template.encode()).hexdigest() if (template and chat_used) else None,
        bos=uses_bos,
        bos_token_id=bos_id,
        tokenizer=str(getattr(tokenizer, "name_or_path", type(tokenizer).__name__)),
    )
    pad = pad_id(tokenizer)
    return _pad(rows, rendered, spans, padding_side, 0 if pad is None else pad, settings)  # masked: any id works


def context_length(model_cfg: Any) -> int | None:
    """The model's context in tokens (`cfg.n_ctx`), or None when there is no model config to ask."""
    n_ctx = getattr(model_cfg, "n_ctx", None) if model_cfg is not None else None
    return int(n_ctx) if isinstance(n_ctx, int) and n_ctx > 0 else None


# -- pieces of one example ------------------------------------------------------------------------
@dataclass
class _Part:
    text: str
    protected: list[tuple[int, int]]  # char ranges of user-supplied text inside `text`
    role: str  # "prompt" | "response" | "end"


def _render_chat(
    tokenizer: Any,
    item: PromptInput,
    response: str | None,
    system: str | None,
    template: str | None,
    add_generation_prompt: bool,
    specials: dict[str, int],
    index: int,
) -> list[_Part]:
    if template is None:
        raise PromptError(
            f"tokenizer '{getattr(tokenizer, 'name_or_path', '?')}' has no chat template, so chat "
            f"messages (example {index}) cannot be formatted. Pass chat_template=... (for instance "
            "tl_traits.core.prompts.PLAIN_CHAT_TEMPLATE) or give plain text with chat=False."
        )
    messages = [{"role": "user", "content": item}] if isinstance(item, str) else [dict(m) for m in item]
    for m in messages:
        if "role" not in m or "content" not in m or not isinstance(m["content"], str):
            raise PromptError(f"example {index}: every message needs 'role' and string 'content', got {m!r}")
    if system is not None:
        if messages and messages[0]["role"] == "system":
            raise PromptError(f"example {index} already has a system message; do not also pass system=")
        messages.insert(0, {"role": "system", "content": system})
    if response is None and messages and messages[-1]["role"] == "assistant":
        response = messages.pop()["content"]
    if not messages:
        raise PromptError(f"example {index} has no messages before the response")

    def render(msgs: list[dict[str, str]], generation: bool) -> str:
        return tokenizer.apply_chat_template(
            msgs, tokenize=False, add_generation_prompt=generation, chat_template=template
        )

    generation = add_generation_prompt or response is not None
    prompt_text = render(messages, generation)
    protected = _protected_ranges(render, messages, generation, prompt_text, specials)
    parts = [_Part(prompt_text, protected, "prompt")]
    if response is None:
        return parts
    full = render(messages + [{"role": "assistant", "content": response}], False)
    if not full.startswith(prompt_text) or not full[len(prompt_text) :].startswith(response):
        raise PromptError(
            f"example {index}: the chat template does not render the assistant turn as "
            "'<prompt with generation prompt><response><end of turn>', so prompt and response "
            "tokens cannot be separated. Pass a chat_template that does."
        )
    end_text = full[len(prompt_text) + len(response) :]
    parts.append(_Part(response, [(0, len(response))], "response"))
    parts.append(_Part(end_text, [], "end"))
    return parts


def _render_plain(tokenizer: Any, item: str, response: str | None, parse_special: bool) -> list[_Part]:
    whole = [] if parse_special else [(0, len(item))]
    parts = [_Part(item, whole, "prompt")]
    if response is not None:
        parts.append(_Part(response, [(0, len(response))], "response"))
        eos = getattr(tokenizer, "eos_token", None)
        parts.append(_Part(eos or "", [], "end"))
    return parts


def _protected_ranges(
    render: Any, messages: list[dict[str, str]], generation: bool, text: str, specials: dict[str, int]
) -> list[tuple[int, int]]:
    """Char ranges of each message's content inside `text`, the template's rendering of `messages`.

    The template is rendered once more with a placeholder per content; where gluing the
    template's own pieces around the real contents reproduces `text`, the ranges are exact.
    """
    marks = [f"\ue000{i}\ue001" for i in range(len(messages))]
    marked = render([{**m, "content": mark} for m, mark in zip(messages, marks)], generation)
    pieces = re.split("(" + "|".join(re.escape(m) for m in marks) + ")", marked)
    ranges: list[tuple[int, int]] = []
    rebuilt: list[str] = []
    cursor = 0
    for piece in pieces:
        if piece in marks:
            piece = messages[marks.index(piece)]["content"]
            ranges.append((cursor, cursor + len(piece)))
        rebuilt.append(piece)
        cursor += len(piece)
    if "".join(rebuilt) == text:
        return ranges
    # The template transforms content (trims it, say): positions are unknown. That only
    # matters when content holds special-token strings, which then cannot be kept as text.
    pattern = _special_pattern(specials)
    for m in messages:
        if specials and pattern.search(m["content"]):
            raise PromptError(
                "the chat template rewrites message content, and a message holds special-token "
                f"strings ({m['content'][:40]!r}), so its text cannot be kept apart from control "
                "tokens; remove those strings or pass a chat_template that keeps content verbatim"
            )
    return []


def _encode_parts(
    tokenizer: Any, parts: list[_Part], specials: dict[str, int], bos_id: int | None
) -> tuple[list[int], str, Spans]:
    ids: list[int] = []
    bounds: dict[str, tuple[int, int]] = {}
    for part in parts:
        start = len(ids)
        ids.extend(_encode_text(tokenizer, part.text, part.protected, specials))
        bounds[part.role] = (start, len(ids))
    text = "".join(part.text for part in parts)
    offset = 0
    if bos_id is not None and (not ids or ids[0] != bos_id):
        ids.insert(0, bos_id)
        text = tokenizer.convert_ids_to_tokens(bos_id) + text
        offset = 1
    prompt_end = bounds["prompt"][1] + offset
    response = bounds.get("response", (bounds["prompt"][1],) * 2)
    end = bounds.get("end", (response[1],) * 2)
    spans = Spans(
        prompt=(0, prompt_end),
        response=(response[0] + offset, response[1] + offset),
        end=(end[0] + offset, end[1] + offset),
    )
    return ids, text, spans


def _encode_text(tokenizer: Any, text: str, protected: list[tuple[int, int]], specials: dict[str, int]) -> list[int]:
    """Tokenize `text`, turning special-token strings into control tokens only outside `protected`."""
    if not text:
        return []
    pieces: list[tuple[str, bool]] = []  # (text, is_control_token)
    cursor = 0
    pattern = _special_pattern(specials)
    for match in pattern.finditer(text) if specials else ():
        s, e = match.span()
        if any(ps < e and s < pe for ps, pe in protected):
            continue
        if s > cursor:
            pieces.append((text[cursor:s], False))
        pieces.append((match.group(0), True))
        cursor = e
    if cursor < len(text):
        pieces.append((text[cursor:], False))

    ids: list[int] = []
    for piece, is_control in pieces:
        if is_control:
            ids.append(specials[piece])
        else:
            ids.extend(tokenizer(piece, add_special_tokens=False, split_special_tokens=True)["input_ids"])
    return ids


_PATTERN_CACHE: dict[tuple[str, ...], re.Pattern[str]] = {}


def _special_pattern(specials: dict[str, int]) -> re.Pattern[str]:
    key = tuple(sorted(specials, key=len, reverse=True))
    if key not in _PATTERN_CACHE:
        _PATTERN_CACHE[key] = re.compile("|".join(re.escape(s) for s in key) or r"(?!)")
    return _PATTERN_CACHE[key]


# -- batching ------------------------------------------------------------------------------------
def as_batch(inputs: Any) -> list[PromptInput]:
    """One input (a string or a conversation) or a list of them -> a list of inputs."""
    if isinstance(inputs, str):
        return [inputs]
    if isinstance(inputs, Mapping):
        raise PromptError("a single message must be wrapped in a list: [{'role': 'user', 'content': ...}]")
    items = list(inputs)
    if items and isinstance(items[0], Mapping):
        return [items]  # one conversation
    for i, item in enumerate(items):
        if not isinstance(item, str) and not (isinstance(item, Sequence) and all(isinstance(m, Mapping) for m in item)):
            raise PromptError(f"input {i} is a {type(item).__name__}; expected a string or a list of messages")
    return items


def _match_responses(responses: Any, n: int) -> list[str | None]:
    if responses is None:
        return [None] * n
    if isinstance(responses, str):
        responses = [responses]
    responses = list(responses)
    if len(responses) != n:
        raise PromptError(f"got {n} inputs but {len(responses)} responses; give one response (or None) per input")
    return responses


def _pad(
    rows: list[list[int]],
    rendered: list[str],
    spans: list[Spans],
    side: str,
    pad_id: int,
    settings: PromptSettings,
) -> PreparedInputs:
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    placed: list[Spans] = []
    for i, (row, sp) in enumerate(zip(rows, spans)):
        start = width - len(row) if side == "left" else 0
        input_ids[i, start : start + len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, start : start + len(row)] = 1
        placed.append(sp.shifted(start))
    return PreparedInputs(input_ids, mask, rendered, placed, side, settings, rows)
