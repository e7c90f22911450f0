"""The built-in extractors' PluginInfo records, the values of their entry points: listed without importing the
plugins; each `target` is imported on first use, and the plugin carries its record."""

from tl_traits.core.plugin_info import PluginInfo

_HERE = "tl_traits.plugins.extractors"

mean_diff = PluginInfo(
    "mean_diff",
    "difference of class means, mean(pos) - mean(neg)",
    context=("layers",),
    options=(),
    target=f"{_HERE}.mean_diff:mean_diff",
)
probe = PluginInfo(
    "probe",
    "L2 logistic regression (sklearn objective, C=1) on row-normalised activations",
    context=("layers",),
    options=("C", "max_iter", "tol"),
    target=f"{_HERE}.probe:probe",
)
gradient = PluginInfo(
    "gradient",
    "alias of mean_diff: Adam ascent on the gap between mean projections, whose only optimum is the "
    "mean_diff direction (kept for old scripts; not run by default)",
    by_default=False,
    context=("layers",),
    options=("steps", "lr", "penalty"),
    target=f"{_HERE}.gradient:gradient",
)
pca_diff = PluginInfo(
    "pca_diff",
    "first principal axis of paired differences pos[i] - neg[i]",
    context=("layers",),
    options=(),
    target=f"{_HERE}.pca_diff:pca_diff",
)
pca_center = PluginInfo(
    "pca_center",
    "first principal component of activations centred on their pair's midpoint",
    context=("layers",),
    options=(),
    target=f"{_HERE}.pca_center:pca_center",
)
random_baseline = PluginInfo(
    "random_baseline",
    "seeded random unit direction per layer (chance baseline)",
    context=("layers",),
    options=(),
    target=f"{_HERE}.random_baseline:random_baseline",
)
sae = PluginInfo(
    "sae",
    "decoder image of the top-k SAE features by mean activation difference (needs an SAE per layer)",
    requires=("sae_lens",),
    by_default=False,  # needs SAEs: runs only when asked for by name
    context=("layers", "hook", "record", "model_name"),
    options=("saes", "k"),
    target=f"{_HERE}.sae:sae",
)
_TRAINING = ("epochs", "batch_size", "lr", "beta", "factors", "max_length", "band", "direction")
bipo = PluginInfo(
    "bipo",
    "trained through the model: BiPO, a DPO loss on (prompt, positive, negative) with the vector added "
    "at a random sign (needs the model and responses; minutes per layer)",
    kinds=("trained",),
    by_default=False,
    context=("layers", "hook", "record", "progress"),
    options=_TRAINING,
    target=f"{_HERE}.trained:bipo",
)
reps = PluginInfo(
    "reps",
    "trained through the model: RePS-style, reference-free and length-normalised, both signs (needs the "
    "model and responses; minutes per layer)",
    kinds=("trained",),
    by_default=False,
    context=("layers", "hook", "record", "progress"),
    options=_TRAINING,
    target=f"{_HERE}.trained:reps",
)
