"""perplexity: coherence from the unsteered model's loss on the response, discounted for repetition."""

from __future__ import annotations

import math
from typing import Any, Sequence

from tl_traits.judging.judges import JudgeBase, JudgeError, check_kind, require_unhooked
from tl_traits.judging.likelihood import response_likelihood
from tl_traits.plugins.judges import catalogue


@catalogue.perplexity
class PerplexityJudge(JudgeBase):
    """Coherence = fluency x repetition factor, 0-100, from the model's own next-token loss.

    nll: mean negative log-likelihood (nats/token) of the response tokens and the end-of-turn
        token after them, given the chat-formatted question (through `prepare_inputs`).
    fluency = 100 * exp(-max(0, nll - floor) / scale), floor 3.0, scale 2.5: nll <= 3 scores
        100, nll 4 scores 67, 5 scores 45, 6 scores 30, 10 (word salad) scores 6. (SmolLM2-135M
        puts plain answers at nll 1.5-2.5, odd styles at 3-4, word salad near 10.)
    repetition factor = min(1, d / min_distinct) ** 2, d = mean of distinct-2 and distinct-3
        over the response tokens, min_distinct 0.6: ordinary text (d > 0.6) keeps its score, a
        sentence said 4 times (d ~0.34) keeps 0.32 of it, "the the the ..." (d ~0.08) 0.02.
        Loops have a LOW nll (a model predicts its own repetition well), hence this factor.
    Empty or whitespace-only responses score 0.

    Pass the UNSTEERED model and score outside any `steer` block: scoring refuses a model
    with hooks attached. A small English model also finds other languages improbable, so
    non-English text scores low; judge those with the logprob judge instead.
    """

    name = "perplexity"
    kind = "coherence"
    kinds = ("coherence",)

    def __init__(
        self,
        *,
        model: Any = None,
        kind: str = "coherence",
        floor: float = 3.0,
        scale: float = 2.5,
        min_distinct: float = 0.6,
        batch_size: int = 8,
        max_chars: int = 4000,
    ) -> None:
        self.kind = check_kind(self.name, kind, self.kinds)
        if model is None or not hasattr(model, "cfg"):
            raise JudgeError(
                "the perplexity judge needs the unsteered TransformerLens model whose loss it reads: "
                "make_judge('perplexity', model=model)"
            )
        if scale <= 0 or not 0 < min_distinct <= 1 or batch_size < 1:
            raise JudgeError("perplexity judge: scale > 0, 0 < min_distinct <= 1 and batch_size >= 1 are needed")
        self.model = model
        self.floor, self.scale, self.min_distinct = float(floor), float(scale), float(min_distinct)
        self.batch_size, self.max_chars = batch_size, max_chars

    def coherence(self, nll: float, distinct: float) -> float:
        fluency = 100.0 * math.exp(-max(0.0, nll - self.floor) / self.scale)
        return fluency * min(1.0, distinct / self.min_distinct) ** 2

    def _score(self, questions: list[str], responses: list[str]) -> Sequence[float | None]:
        require_unhooked(self.model, self.name)
        scores: list[float | None] = [0.0] * len(responses)
        todo = [i for i, r in enumerate(responses) if r.strip()]
        todo.sort(key=lambda i: len(questions[i]) + len(responses[i]))  # similar lengths share a batch
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            measured = self.measure([questions[i] for i in chunk], [responses[i][: self.max_chars] for i in chunk])
            for i, (nll, distinct) in zip(chunk, measured):
                scores[i] = self.coherence(nll, distinct)
        return scores

    def measure(self, questions: list[str], responses: list[str]) -> list[tuple[float, float]]:
        """(mean nll, mean of distinct-2/3) per response, one forward pass for the batch."""
        return response_likelihood(self.model, questions, responses)
