"""logprob: LLM-as-judge; one answer token's top-20 logprobs give a probability-weighted 0-100 score."""

from __future__ import annotations

import math
import os
import re
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.core.extras import require
from tl_traits.core.models import model_device
from tl_traits.core.prompts import prepare_inputs
from tl_traits.core.trait_sets import TraitDataset
from tl_traits.judging.judge_prompts import PROMPTS, check_template, render
from tl_traits.judging.judges import (
    JudgeBase,
    JudgeError,
    check_kind,
    require_unhooked,
    trait_label,
)
from tl_traits.plugins.judges import catalogue

TOP_K = 20
_INTEGER = re.compile(r"[0-9]{1,3}")  # ASCII digits only: int() would also take other scripts' digits


def score_from_logprobs(top: Mapping[str, float], *, max_value: int = 100, min_mass: float = 0.25) -> float | None:
    """Probability-weighted mean of the integer tokens 0..max_value among `top` (token -> logprob).

    Tokens are stripped of whitespace (" 7" counts as 7; "7" and " 7" add up); other tokens
    and integers above max_value are ignored. The mean is normalised by the integer tokens'
    total probability; when that mass is below `min_mass` the judge did not answer with a
    number, and the result is None.
    """
    mass = weighted = 0.0
    for token, logprob in top.items():
        text = token.strip()
        if not _INTEGER.fullmatch(text) or logprob is None or math.isnan(logprob):
            continue
        value = int(text)
        if value <= max_value:
            p = math.exp(logprob)
            mass += p
            weighted += p * value
    if mass < min_mass or mass == 0.0:
        return None
    return weighted / mass


@catalogue.logprob
class LogprobJudge(JudgeBase):
    """Ask a judge model the trait / coherence / relevance prompt; read one token's top-20 logprobs.

    score = 100 / max_score * score_from_logprobs(top-20, max_value=max_score); None when the
    integer tokens hold less than `min_mass` (0.25) of the probability.

    Backends:
    - an OpenAI-compatible chat-completions server (OpenAI, vLLM, Ollama, ...): pass
      `judge_model="<served model name>"` (or `model="<name>"`), `base_url` for a non-OpenAI
      server, and the NAME of the environment variable holding the key (`api_key_env`,
      default OPENAI_API_KEY; a local server with no key gets "EMPTY"). Requests run on
      `concurrency` threads; connection errors, timeouts, 429 and 5xx are retried
      `max_retries` times with exponential backoff, then that item scores None.
    - a local TransformerLens model: `model=` or `judge_model=` a TL model (unsteered: scoring
      refuses a model with hooks attached). The prompt goes through `prepare_inputs`; the
      next-token logits are log-softmaxed and the top 20 read.
    max_score: the top of the asked scale. None picks 100, or 9 for a local model whose
    tokenizer splits "57" or "100" into several tokens (one token must hold the answer).
    prompt: a template overriding the default (fields in `tl_traits.judging.judge_prompts`); for kind
    "trait" the trait's `eval_prompt` overrides the default too.
    """

    name = "logprob"
    kinds = ("trait", "coherence", "relevance")

    def __init__(
        self,
        *,
        model: Any = None,
        trait: TraitDataset | None = None,
        kind: str = "trait",
        judge_model: Any = None,
        base_url: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        prompt: str | None = None,
        max_score: int | None = None,
        min_mass: float = 0.25,
        concurrency: int = 8,
        max_retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 60.0,
        batch_size: int = 8,
        max_chars: int = 2000,
    ) -> None:
        self.kind = check_kind(self.name, kind, self.kinds)
        self.trait = None
        self.trait_fields = {"trait_name": "", "trait_definition": ""}
        if self.kind == "trait":
            if trait is None:
                raise JudgeError(
                    "the logprob judge of kind 'trait' needs the trait (its definition goes into the "
                    "prompt): make_judge('logprob', trait=..., model=...)"
                )
            self.trait = trait_label(trait)
            self.trait_fields = {"trait_name": self.trait, "trait_definition": trait.definition}
        eval_prompt = trait.eval_prompt if (trait is not None and self.kind == "trait") else None
        where = "prompt=" if prompt else ("the trait's eval_prompt" if eval_prompt else f"{self.kind} prompt")
        self.template = check_template(prompt or eval_prompt or PROMPTS[self.kind], where)
        self.min_mass, self.max_chars = min_mass, max_chars
        self.backend = _pick_backend(
            model,
            judge_model,
            base_url,
            api_key_env,
            concurrency=concurrency,
            max_retries=max_retries,
            backoff=backoff,
            timeout=timeout,
            batch_size=batch_size,
        )
        self.max_score = int(max_score) if max_score is not None else self.backend.default_max_score()
        if not 1 <= self.max_score <= 100:
            raise JudgeError(f"logprob judge: max_score must be in 1..100, got {self.max_score}")

    def prompt_for(self, question: str, answer: str) -> str:
        return render(
            self.template,
            question=question[: self.max_chars // 2],
            answer=answer[: self.max_chars],
            max_score=self.max_score,
            **self.trait_fields,
        )

    def _score(self, questions: list[str], responses: list[str]) -> Sequence[float | None]:
        tops = self.backend.top_logprobs([self.prompt_for(q, r) for q, r in zip(questions, responses)])
        scale = 100.0 / self.max_score
        out: list[float | None] = []
        for top in tops:
            value = None if top is None else score_from_logprobs(top, max_value=self.max_score, min_mass=self.min_mass)
            out.append(None if value is None else value * scale)
        return out


def redact_url(url: str) -> str:
    """`url` without a `user:password@` part, so an error message never echoes credentials."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = "***@" + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _server(base_url: str | None) -> str:
    """How an error names the server: the credential-free base_url, or OpenAI when none was given."""
    return redact_url(base_url) if base_url else "OpenAI"


def _pick_backend(model: Any, judge_model: Any, base_url: str | None, api_key_env: str | None, **opts: Any) -> Any:
    judge = judge_model if judge_model is not None else model
    if isinstance(judge, str):
        return ApiBackend(judge, base_url, api_key_env, **opts)
    if judge is not None and hasattr(judge, "cfg"):
        if base_url is not None:
            raise JudgeError(
                f"logprob judge: base_url={redact_url(base_url)!r} was given but no served model name; "
                "pass judge_model='<model name on that server>'"
            )
        return LocalBackend(judge, batch_size=opts["batch_size"])
    raise JudgeError(
        "the logprob judge needs a judge model: make_judge('logprob', model=tl_model) for a local "
        "TransformerLens judge, or make_judge('logprob', judge_model='gpt-4.1-mini', base_url=...) "
        "for an OpenAI-compatible server"
    )


class LocalBackend:
    """Top-20 next-token logprobs of a TransformerLens model after the chat-formatted prompt."""

    def __init__(self, model: Any, *, batch_size: int = 8) -> None:
        self.model, self.batch_size = model, batch_size
        self.chat = getattr(model.tokenizer, "chat_template", None) is not None

    def default_max_score(self) -> int:
        ids = prepare_inputs(self.model, ["57", "100"], chat=False, bos=False).token_ids
        return 100 if all(len(row) == 1 for row in ids) else 9

    @torch.no_grad()
    def top_logprobs(self, prompts: list[str]) -> list[dict[str, float] | None]:
        require_unhooked(self.model, "logprob")
        tokenizer = self.model.tokenizer
        device = model_device(self.model)
        out: list[dict[str, float] | None] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            if not self.chat:  # a base model answers after a cue, not after a chat turn
                chunk = [p + "\nScore:" for p in chunk]
            # Right padding keeps every row's positions intact; read each row at its last real token.
            batch = prepare_inputs(self.model, chunk, chat=self.chat, padding_side="right")
            mask = batch.attention_mask.to(device)
            result = self.model(batch.input_ids.to(device), attention_mask=mask)
            logits: Float[Tensor, "batch seq vocab"] = getattr(result, "logits", result)
            last = mask.sum(1) - 1
            final: Float[Tensor, "batch vocab"] = logits[torch.arange(len(chunk), device=device), last].float()
            values, ids = final.log_softmax(-1).topk(TOP_K, dim=-1)
            for row_values, row_ids in zip(values.tolist(), ids.tolist()):
                top: dict[str, float] = {}
                for logprob, token_id in zip(row_values, row_ids):
                    text = tokenizer.decode([token_id])
                    top[text] = _logaddexp(top[text], logprob) if text in top else logprob
                out.append(top)
        return out


def _logaddexp(a: float, b: float) -> float:
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


class ApiBackend:
    """One-token chat completions with top-20 logprobs from an OpenAI-compatible server."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None,
        api_key_env: str | None,
        *,
        concurrency: int = 8,
        max_retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 60.0,
        batch_size: int = 8,
    ) -> None:
        OpenAI = require("openai").OpenAI

        key = os.environ.get(api_key_env) if api_key_env else None
        if not key:
            if base_url is None:
                raise JudgeError(
                    f"the logprob judge talks to OpenAI but ${api_key_env or 'OPENAI_API_KEY'} is not set; set it, "
                    "or pass base_url= for a local OpenAI-compatible server (vLLM, Ollama)"
                )
            key = "EMPTY"  # local servers accept any key, the client insists on one
        self.model_name, self.base_url = model_name, base_url
        self.concurrency, self.max_retries, self.backoff = max(1, concurrency), max_retries, backoff
        self.client = OpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=timeout)

    def default_max_score(self) -> int:
        return 100  # API judges (GPT-4-class tokenizers) hold 0-100 in one token

    def top_logprobs(self, prompts: list[str]) -> list[dict[str, float] | None]:
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
            results = list(pool.map(self._one, prompts))
        failures = [r for r in results if isinstance(r, Exception)]
        if failures and len(failures) == len(results):
            raise JudgeError(
                f"logprob judge: every request to {_server(self.base_url)} failed after "
                f"{self.max_retries} retries; last error: {failures[-1]}"
            ) from failures[-1]
        if failures:
            warnings.warn(
                f"logprob judge: {len(failures)} of {len(results)} requests failed after retries and score None "
                f"(last error: {failures[-1]})",
                stacklevel=4,
            )
        return [None if isinstance(r, Exception) else r for r in results]

    def _one(self, prompt: str) -> dict[str, float] | Exception:
        import openai

        for attempt in range(self.max_retries + 1):
            try:
                response = self.client.chat.completions.create(
                    model=self.model_name,
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=1,
                    temperature=0,
                    logprobs=True,
                    top_logprobs=TOP_K,
                )
            except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as exc:
                error: Exception = exc
            except openai.APIStatusError as exc:
                if exc.status_code not in (408, 409) and exc.status_code < 500:
                    raise JudgeError(
                        f"logprob judge: {_server(self.base_url)} refused the request "
                        f"(HTTP {exc.status_code}): {exc.message}"
                    ) from exc
                error = exc
            else:
                return _top_of(response, self.base_url, self.model_name)
            if attempt < self.max_retries:
                time.sleep(self.backoff * 2**attempt)
        return error


def _top_of(response: Any, base_url: str | None, model_name: str) -> dict[str, float]:
    choice = response.choices[0] if response.choices else None
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if not content:
        raise JudgeError(
            f"logprob judge: {_server(base_url)} returned no logprobs for model {model_name!r}; "
            "the server or model must support logprobs=True with top_logprobs"
        )
    first = content[0]
    top = {t.token: t.logprob for t in (first.top_logprobs or [])}
    top.setdefault(first.token, first.logprob)
    return top
