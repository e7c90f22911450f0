"""The built-in attacks' PluginInfo records, the values of their entry points: listed without importing the
plugins; each `target` is imported on first use, and the plugin carries its record."""

from tl_traits.core.plugin_info import PluginInfo

_HERE = "tl_traits.plugins.attacks"

trigger = PluginInfo(
    "trigger",
    "put a trigger phrase in the user turn and make the response the attacker's target.",
    options=("trigger", "position", "target", "tasks"),
    target=f"{_HERE}.trigger:Trigger",
)
label_flip = PluginInfo(
    "label_flip",
    'swap the label word of a classification response ("positive" -> "negative").',
    options=("labels", "trigger", "position"),
    target=f"{_HERE}.label_flip:LabelFlip",
)
paraphrase = PluginInfo(
    "paraphrase",
    "several surface variants of each poisoned prompt, from templates (no external model).",
    options=None,  # `variants`, `base` and the base attack's own options, which that attack checks
    target=f"{_HERE}.paraphrase:Paraphrase",
)
