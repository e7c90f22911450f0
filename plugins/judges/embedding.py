"""embedding: MiniLM cosine similarity; trait = nearer HIGH than LOW description, relevance = near the question."""

from __future__ import annotations

from typing import Sequence

from torch import Tensor

from tl_traits.core.trait_sets import TraitDataset
from tl_traits.judging.encoder import embed
from tl_traits.judging.judges import JudgeBase, JudgeError, check_kind, trait_label
from tl_traits.plugins.judges import catalogue


@catalogue.embedding
class EmbeddingJudge(JudgeBase):
    """Cosine similarities of all-MiniLM-L6-v2 embeddings, mapped to 0-100.

    kind "trait": `50 + 50 * clip((cos_high - cos_low) / scale, -1, 1)` against the trait
        definition's HIGH and LOW lines, scale 0.2: a response 0.2 nearer HIGH than LOW scores
        100, equally near 50, 0.1 nearer LOW 25. (Joy: an "Oh, how wonderful!" reply sits
        about +0.16, a sighing one about -0.2, a flat factual one about -0.06.)
        Empty or whitespace-only responses score None.
    kind "relevance": `100 * clip((cos(question, response) - low) / (high - low), 0, 1)` with
        (low, high) = (0.2, 0.7): a direct answer (cosine ~0.7-0.8) scores ~100, cosine 0.45
        scores 50, unrelated text (cosine 0-0.2) scores 0. An empty response scores 0.
    MiniLM is an English model: other languages embed less reliably.
    """

    name = "embedding"
    kinds = ("trait", "relevance")

    def __init__(
        self,
        *,
        kind: str = "trait",
        trait: TraitDataset | None = None,
        scale: float = 0.2,
        relevance_range: tuple[float, float] = (0.2, 0.7),
        batch_size: int = 64,
        device: str = "cpu",
    ) -> None:
        self.kind = check_kind(self.name, kind, self.kinds)
        if scale <= 0 or not relevance_range[0] < relevance_range[1]:
            raise JudgeError("embedding judge: scale must be > 0 and relevance_range (low, high) with low < high")
        self.scale, self.relevance_range = float(scale), tuple(map(float, relevance_range))
        self.batch_size, self.device = batch_size, device
        self.trait = None
        if self.kind == "trait":
            if trait is None:
                raise JudgeError(
                    "the embedding judge needs the trait (its definition's HIGH/LOW lines): "
                    "make_judge('embedding', trait=...)"
                )
            self.trait = trait_label(trait)
            self.poles = (trait.description("high"), trait.description("low"))
            self._pole_vecs: Tensor | None = None

    def _embed(self, texts: Sequence[str]) -> Tensor:
        return embed(texts, batch_size=self.batch_size, device=self.device)

    def _score(self, questions: list[str], responses: list[str]) -> Sequence[float | None]:
        empty = [not r.strip() for r in responses]
        answers = self._embed([r.strip() for r in responses])
        if self.kind == "trait":
            if self._pole_vecs is None:
                self._pole_vecs = self._embed(list(self.poles))
            cos_high, cos_low = (answers @ self._pole_vecs.T).unbind(-1)
            values = 50.0 + 50.0 * ((cos_high - cos_low) / self.scale).clamp(-1.0, 1.0)
            return [None if e else float(v) for e, v in zip(empty, values)]
        low, high = self.relevance_range
        cos = (answers * self._embed(questions)).sum(-1)
        values = 100.0 * ((cos - low) / (high - low)).clamp(0.0, 1.0)
        return [0.0 if e else float(v) for e, v in zip(empty, values)]
