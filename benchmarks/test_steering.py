"""Steering benchmarks: every method (and prompting) on every trait both ways under the dev/test protocol, the
searchable settings, steered generation speed, batched sweep speed."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import pytest
from timing import interleaved

import tl_traits as tt
from tl_traits.core.files import safe_name
from tl_traits.core.generation import generate_tokens
from tl_traits.steering.evaluation import evaluate_steering
from tl_traits.steering.method_comparison import PROMPTING, compare_steering
from tl_traits.steering.protocol import SteeringProtocol
from tl_traits.steering.results import Candidate

# The dev/test protocol (SteeringProtocol): settings chosen on 16 of each trait's 28 dev questions (the search's
# cost grows with them; 2 CPU cores), every figure from all test questions with a bootstrap interval; 64 new
# tokens; strengths placed by KL and bracketed on dev.
BENCH_PROTOCOL = SteeringProtocol(dev_questions=16, max_new_tokens=64, kl_targets=(0.03, 0.1, 0.3, 1.0, 3.0), extend=1)
STEER_DEPTHS = (0.3, 0.5)  # the layers searched for every method: 30% and 50% of the depth (layers 9 and 14 of 30)
# Methods that are the same direction under another name are measured once
# (gradient = mean_diff, pca_center = pca_diff).
ALIASES = {"gradient": "mean_diff", "pca_center": "pca_diff"}
SETTINGS_DEPTH = 0.4  # the settings comparison (band, positions, centring) at one layer for mean_diff


def steering_layers_for(model) -> list[int]:
    return sorted({round(depth * (model.cfg.n_layers - 1)) for depth in STEER_DEPTHS})


def log_path(request, name: str) -> Path:
    """Where a comparison's resumable log goes: --runs-dir when given (an interrupted run resumes), else a temp dir."""
    root = request.config.getoption("--runs-dir")
    folder = Path(root) if root else Path(tempfile.mkdtemp(prefix="tl_traits-steering-"))
    return folder / "steering" / f"{name}.jsonl"


def comparison_rows(trait: str, result) -> list[dict]:
    """One row per group: the setting chosen on dev and its test-half figures with intervals."""
    rows = []
    prompting = result.outcomes.get(PROMPTING)
    for group, outcome in result.outcomes.items():
        h = result.headline(group)
        gap = outcome.gap_to(prompting) if prompting is not None and group != PROMPTING else None
        rows.append(
            {
                "trait": trait,
                "direction": "toward" if result.direction > 0 else "away",
                "method": group,
                "setting (dev)": "system prompt"
                if h["layers"] is None
                else f"{Candidate(tuple(h['layers'])).label}, {h['strength']:.3g}",
                "dev score": h["dev_score"],
                "test score": h["test_score"],
                "test 95% low": (h["test_interval"] or [None])[0],
                "test 95% high": (h["test_interval"] or [None, None])[1],
                "unsteered": h["unsteered_test_score"],
                "gain": h["gain"],
                "gain 95% low": (h["gain_interval"] or [None])[0],
                "gain 95% high": (h["gain_interval"] or [None, None])[1],
                "vs prompting": gap[0] if gap else None,
                "vs prompting 95% low": gap[1] if gap else None,
                "vs prompting 95% high": gap[2] if gap else None,
                "trait score": h["trait"],
                "unsteered trait": h["unsteered_trait"],
                **_change(outcome, "trait"),
                **_change(outcome, "coherence"),
                "coherence": h["coherence"],
                "unsteered coherence": h["unsteered_coherence"],
                "relevance": h["relevance"],
                "unsteered relevance": h["unsteered_relevance"],
            }
        )
    return rows


def _counts(n_test: dict[str, int]) -> str:
    """'100 each, refusal toward 28': how many test questions each trait and direction was scored on."""
    common = statistics.mode(n_test.values())
    others = ", ".join(f"{k} {n}" for k, n in n_test.items() if n != common)
    return f"{common} each" + (f"; {others}" if others else "")


def _change(outcome, part: str) -> dict:
    """One judged part's paired change from the unsteered test answers, with its interval (trait moved by x ...)."""
    found = outcome.gain(part)
    return {
        f"{part} change": found[0] if found else None,
        f"{part} change 95% low": found[1] if found else None,
        f"{part} change 95% high": found[2] if found else None,
    }


def example_rows(trait: str, result, n: int = 2) -> list[dict]:
    """The first test answers of the chosen vector setting beside the unsteered ones: the text behind the numbers."""
    vectors = [g for g in result.outcomes if g not in (PROMPTING, "random_baseline")]
    # chosen on dev, as in the best table
    best = max(vectors, key=lambda g: result.outcomes[g].chosen.answers.score or -1.0)
    outcome = result.outcomes[best]
    rows = []
    for i in range(n):
        rows.append(
            {
                "trait": trait,
                "direction": "toward" if result.direction > 0 else "away",
                "method": best,
                "setting": outcome.chosen.label,
                "question": outcome.baseline.questions[i],
                "unsteered": outcome.baseline.responses[i],
                "unsteered score": outcome.baseline.scores["score"][i],
                "steered": outcome.test.answers.responses[i],
                "steered score": outcome.test.answers.scores["score"][i],
            }
        )
    return rows


@pytest.mark.full
def test_steering_by_method(bench_model, bench_traits, trait_vectors, results, results_dir, request):
    """Every method (and prompting) toward and away from every trait: chosen on dev, scored on test."""
    layers = steering_layers_for(bench_model)
    rows, examples, best_rows, n_test = [], [], [], {}
    for trait in bench_traits:
        vecs = trait_vectors(trait)
        named = {m: vecs[m] for m in vecs.methods if m not in ALIASES}
        for direction in (1, -1):
            result = compare_steering(
                bench_model,
                named,
                trait,
                layers,
                direction=direction,
                protocol=BENCH_PROTOCOL,
                log=log_path(request, f"{safe_name(trait)}-{'toward' if direction > 0 else 'away'}"),
            )
            these = comparison_rows(trait, result)
            n_test[f"{trait} {'toward' if direction > 0 else 'away'}"] = len(result.baseline["test"].questions)
            rows += these
            examples += example_rows(trait, result)
            vector_rows = [r for r in these if r["method"] not in (PROMPTING, "random_baseline")]
            best = max(vector_rows, key=lambda r: r["dev score"] or -1.0)  # the best vector method, chosen on dev
            best_rows.append(
                {
                    **{
                        k: best[k]
                        for k in (
                            "trait",
                            "direction",
                            "method",
                            "setting (dev)",
                            "test score",
                            "unsteered",
                            "gain",
                            "gain 95% low",
                            "gain 95% high",
                            "vs prompting",
                            "vs prompting 95% low",
                            "vs prompting 95% high",
                            "trait change",
                            "trait change 95% low",
                            "trait change 95% high",
                            "coherence change",
                        )
                    },
                    "beats unsteered": (best["gain 95% low"] or -1.0) > 0,
                }
            )
    note = (
        f"The dev/test protocol: per trait and direction, each method's layer ({', '.join(map(str, layers))}) and "
        "strength are chosen on 16 of the trait's 28 dev questions (strengths placed at KL 0.03-3 nats per token "
        "against the unsteered model, judged in rising order until the answers break, extended one step past an "
        "end, refined around the best), then that one setting answers the trait's test questions. 64 new tokens, "
        "greedy. Prompting = a system prompt asking for the HIGH (toward) or LOW (away) description, chosen on the "
        f"same dev questions among 3 templates. Every figure is from the test questions ({_counts(n_test)}). "
        "Scores: per answer the harmonic mean of trait (in the asked direction), coherence and relevance (refusal "
        "toward: trait and coherence only), 0-100; test score with a bootstrap 95% interval; gain = the paired "
        "mean difference from the unsteered test answers, vs prompting = from prompting's test answers, each with "
        "a paired bootstrap 95% interval (2000 resamples). Judges: each trait's default (judging.defaults)."
    )
    # a run over some traits (--traits) keeps the newest earlier rows of the others, so the summary is over all
    rows = results.carry_earlier(results_dir, "Steering by method (test half)", rows)
    best_rows = results.carry_earlier(
        results_dir, "Steering: the best vector method per trait (chosen on dev)", best_rows
    )
    examples = results.carry_earlier(results_dir, "Steering: example answers (test half)", examples)
    if "Steering by method (test half)" in results.carried:
        results.carried["Steering by method (summary)"] = results.carried["Steering by method (test half)"]
        note += (
            f" This run measured {', '.join(bench_traits)}; the other traits' rows are carried from an earlier run of "
            "the same protocol (the section's command names its file), with its own test-question counts."
        )
    results.add("Steering by method (test half)", rows, note=note)
    results.add(
        "Steering: the best vector method per trait (chosen on dev)",
        best_rows,
        note="Per trait and direction, the vector method (not random) with the best dev score, and its "
        "test-half gain over the unsteered answers; 'beats unsteered' = the gain's 95% "
        "interval lies above 0.",
    )
    results.add(
        "Steering: example answers (test half)",
        examples,
        note="The first two test questions, unsteered and at the best vector method's setting chosen on dev.",
    )
    results.add(
        "Steering by method (summary)",
        steering_summary(rows),
        note=f"Means over the {len({r['trait'] for r in rows})} traits of the test-half figures above. {SUMMARY_NOTE}",
    )
    joy = next(
        (r for r in rows if r["trait"] == "emotion/joy" and r["method"] == "mean_diff" and r["direction"] == "toward"),
        None,
    )
    if joy is not None:  # the harness check: the chosen joy setting moves the trait judge toward joy
        assert (joy["trait score"] or 0) > (joy["unsteered trait"] or 0), joy


@pytest.mark.full
def test_steering_settings(bench_model, bench_traits, trait_vectors, results, results_dir, request):
    """mean_diff at one layer: a single layer against a 5-layer band, response-only
    positions and a mean-centred vector."""
    layer = round(SETTINGS_DEPTH * (bench_model.cfg.n_layers - 1))
    protocol = BENCH_PROTOCOL.with_(
        bands=(1, 5), positions=("all", "response"), centred=(False, True), dev_questions=16, test_questions=16
    )
    rows = []
    for trait in bench_traits:
        vec = trait_vectors(trait)["mean_diff"]
        result = evaluate_steering(
            bench_model,
            vec,
            trait,
            layers=[layer],
            protocol=protocol,
            log=log_path(request, f"settings-{safe_name(trait)}"),
        )
        outcome = result.outcomes["mean_diff"]
        for row in result.table():  # the table's "trait" is the trait score; the trait set's name goes first
            scores = {("trait score" if k == "trait" else k): v for k, v in row.items()}
            rows.append({"trait": trait, **scores, "chosen": row["setting"] == outcome.chosen.candidate.label})
        h = result.headline()
        rows.append(
            {
                "trait": trait,
                "setting": f"chosen: {outcome.chosen.label}",
                "test score": h["test_score"],
                "unsteered": h["unsteered_test_score"],
                "gain": h["gain"],
                "gain 95% low": (h["gain_interval"] or [None])[0],
                "gain 95% high": (h["gain_interval"] or [None, None])[1],
            }
        )
    section = "Steering settings: band, positions, centring (mean_diff)"
    rows = results.carry_earlier(results_dir, section, rows)
    results.add(
        section,
        rows,
        note=f"Toward each trait, mean_diff at layer {layer} ({SETTINGS_DEPTH:.0%} depth): every combination "
        "of a single layer or a 5-layer band (strength spread over it), all positions or response tokens "
        "only, and the vector as extracted or mean-centred (trait side's mean activation minus that of "
        "the model's own unsteered dev answers). Dev rows: each combination's best strength on 16 dev "
        "questions; the 'chosen' row: the best combination on 16 test questions, with its paired 95% "
        "interval. Same judges and scores as 'Steering by method'.",
    )


SUMMARY_NOTE = (
    "Steering score: per answer the harmonic mean of trait (in the asked direction), coherence and relevance "
    "(0-100), averaged over the test questions, at the setting chosen on dev; gain = that minus the unsteered test "
    "answers' score (paired); vs prompting = that minus prompting's test score (paired)."
)


def steering_summary(rows: list[dict]) -> list[dict]:
    """Per method, means over traits of the test score, the gain over unsteered and the gap to prompting, each way."""
    by_method: dict[str, dict[str, list]] = {}
    for row in rows:
        entry = by_method.setdefault(row["method"], {})
        way = row["direction"]
        for key, column in (("score", "test score"), ("gain", "gain"), ("vs prompting", "vs prompting")):
            entry.setdefault(f"{key} {way}", []).append(row.get(column))
        entry.setdefault("wins", []).append((row.get("gain 95% low") or -1.0) > 0)
        entry.setdefault("coherence", []).append(row["coherence"])
        entry.setdefault("relevance", []).append(row["relevance"])
    return [
        {
            "method": method,
            "mean test score toward": _avg(v.get("score toward", [])),
            "mean gain toward": _avg(v.get("gain toward", [])),
            "mean vs prompting toward": _avg(v.get("vs prompting toward", [])),
            "mean test score away": _avg(v.get("score away", [])),
            "mean gain away": _avg(v.get("gain away", [])),
            "mean vs prompting away": _avg(v.get("vs prompting away", [])),
            "gain interval above 0 (of trait x direction)": f"{sum(v['wins'])} of {len(v['wins'])}",
            "mean coherence": _avg(v.get("coherence", [])),
            "mean relevance": _avg(v.get("relevance", [])),
        }
        for method, v in by_method.items()
    ]


def _avg(values) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


@pytest.mark.full
def test_steered_generation_speed(bench_model, joy_vector, results):
    prompts = list(tt.load_trait("emotion/joy").questions[:8])

    def plain():
        return generate_tokens(bench_model, prompts, max_new_tokens=32, batch_size=8)

    def steered():
        with tt.steer(bench_model, joy_vector, 10, strength=0.4):
            return generate_tokens(bench_model, prompts, max_new_tokens=32, batch_size=8)

    plain()
    _, times, last = interleaved({"unsteered": plain, "steered (1 layer, KV cache)": steered})
    med = {k: statistics.median(sum(len(t) for t in last[k]) / s for s in v) for k, v in times.items()}
    ratio = med["steered (1 layer, KV cache)"] / med["unsteered"]
    results.add(
        "Steering: generation speed",
        [{"variant": k, "tokens/s": v, "x unsteered": v / med["unsteered"]} for k, v in med.items()],
        note="8 prompts in one batch, 32 new tokens, 3 interleaved repeats, median. Target >= 0.9x.",
    )
    assert ratio >= 0.9


@pytest.mark.full
def test_batched_sweep_vs_sequential(bench_model, joy_vector, results):
    prompts = list(tt.load_trait("emotion/joy").questions[:6])
    settings = [(8, 0.3), (10, 0.4), (12, 0.5), (14, 0.3)]

    def batched():
        return tt.sweep_generate(bench_model, joy_vector, settings, prompts, max_new_tokens=24)

    def sequential():
        out = []
        for layer, strength in settings:
            with tt.steer(bench_model, joy_vector, layer, strength=strength):
                out.append(tt.generate(bench_model, prompts, max_new_tokens=24))
        return out

    med, _, texts = interleaved({"4 settings, one batch": batched, "4 settings, one by one": sequential}, repeats=2)
    speedup = med["4 settings, one by one"] / med["4 settings, one batch"]
    results.add(
        "Steering: batched sweep",
        [{"variant": k, "median s": v} for k, v in med.items()] + [{"variant": "speedup", "median s": speedup}],
        note="6 prompts x 4 (layer, strength) settings, 24 new tokens. Target >= 2x.",
    )
    assert texts["4 settings, one batch"] == texts["4 settings, one by one"]  # same text, greedy
    assert speedup >= 2
