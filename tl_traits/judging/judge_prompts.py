"""The LLM-judge prompt templates (trait, coherence, relevance), as format strings with named fields.

A trait's `eval_prompt` (its `steering.json`) replaces `TRAIT_PROMPT` for that trait; each prompt is one user message.
"""

from __future__ import annotations

import string

from tl_traits.judging.judges import JudgeError

# Fields a template may use (every one is always offered; a template uses any subset):
# - {question}: the question the response answers ("" when there is none);
# - {answer}: the response being judged (cut to the judge's `max_chars`);
# - {trait_name}: the trait's short name, e.g. "joy" ("" for coherence / relevance judges);
# - {trait_definition}: the whole definition.txt, HIGH/LOW lines included ("" likewise);
# - {max_score}: the top of the scale: 100, or 9 for a judge model whose tokenizer splits
#   numbers into digits (a one-token answer must hold the whole number).
# Write literal braces doubled: {{ and }}.
FIELDS = ("question", "answer", "trait_name", "trait_definition", "max_score")

TRAIT_PROMPT = """\
You are rating how strongly a response shows one trait.

Trait: {trait_name}
{trait_definition}

Question: "{question}"
Response: "{answer}"

Score 0 when the response shows the opposite of the trait (the LOW description) and \
{max_score} when it shows the trait fully (the HIGH description). Judge only the trait, not \
accuracy or quality.
Reply with a single integer from 0 to {max_score} and nothing else."""

COHERENCE_PROMPT = """\
You are checking whether a text is coherent, fluent language.

Question: "{question}"
Response: "{answer}"

Score 0 for broken text: gibberish, words run together, or a phrase repeated over and over. \
Score about half of {max_score} for rambling text that contradicts itself or goes nowhere. \
Score {max_score} for clear, well-formed sentences with a logical flow. A response cut off \
mid-sentence is fine: rate the text that is there. Offensive or odd content can still be \
fully coherent; rate only the language.
Reply with a single integer from 0 to {max_score} and nothing else."""

RELEVANCE_PROMPT = """\
You are checking whether a response engages with the question it was given.

Question: "{question}"
Response: "{answer}"

Score 0 when the response ignores the question and talks about something unrelated, and \
{max_score} when it addresses the question directly. Answering, declining, or discussing \
the topic all count as engaging; do not rate correctness or tone.
Reply with a single integer from 0 to {max_score} and nothing else."""

PROMPTS = {"trait": TRAIT_PROMPT, "coherence": COHERENCE_PROMPT, "relevance": RELEVANCE_PROMPT}


def check_template(template: str, where: str = "judge prompt") -> str:
    """The template itself, or a ValueError naming a field it uses that is not offered."""
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise JudgeError(f"{where} is not a valid format string ({exc}); write literal braces doubled") from exc
    unknown = sorted(n for n in used if n.split(".")[0].split("[")[0] not in FIELDS)
    if unknown:
        raise JudgeError(
            f"{where} uses field(s) {', '.join('{' + n + '}' for n in unknown)}; "
            f"available: {', '.join('{' + f + '}' for f in FIELDS)}"
        )
    return template


def render(template: str, **fields: object) -> str:
    """Fill a template; every field in FIELDS must be given (unused ones are fine)."""
    missing = [f for f in FIELDS if f not in fields]
    if missing:
        raise JudgeError(f"render() needs all fields; missing {missing}")
    return template.format(**fields)
