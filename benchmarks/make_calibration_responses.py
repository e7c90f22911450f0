"""Generate the judge-calibration responses: the embedded model under real steering settings, plus unsteered answers.

Round 1 (about 10 minutes on 2 CPU cores) sampled strengths up to broken text. Round 2 adds what
round 1 had too little of: fluent answers that show the trait or its opposite, from the mild
strengths the dev/test protocol finds (0.05-0.35) and from prompting, on dev questions only
(so no test question's answers reach a judge's fitting). The output is rated by reading
(docs/judges.md) and then appended to the package's calibration set. Deterministic for a seed.

    python benchmarks/make_calibration_responses.py --out /tmp/calibration-responses.jsonl
    python benchmarks/make_calibration_responses.py --round 2 --out /tmp/calibration-round2.jsonl
    python benchmarks/make_calibration_responses.py --focus alignment/sycophancy --seed 5 --out /tmp/syc5.jsonl

`--focus TRAIT` draws one trait's answers as the dev/test protocol's search makes them (round 5): the
methods and layers it compares, strengths across the range its searches choose, both directions, 64
new tokens, dev questions only, plus unsteered answers.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import tl_traits as tt
from tl_traits.core.files import write_jsonl
from tl_traits.steering.steer import Setting, sweep_generate

TRAITS = ("emotion/joy", "alignment/refusal", "style/formality", "alignment/sycophancy")
METHODS = ("mean_diff", "probe", "pca_diff")
LAYERS = (6, 10, 14, 18, 22)
# From no visible effect to broken text (units of the mean residual norm at the layer); most are mild,
# because on this model text breaks from about 1.0 and the judges matter most near that edge.
STRENGTHS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.65, 0.8, 1.0, 1.3, 2.0, 3.0)
SETTINGS_PER_TRAIT = 26
QUESTIONS_PER_SETTING = 3
UNSTEERED_PER_TRAIT = 10
MAX_NEW_TOKENS = 48


ROUND2_LAYERS = (8, 12, 15)
ROUND2_STRENGTHS = (0.05, 0.1, 0.18, 0.25, 0.35)
ROUND2_SETTINGS = 12  # per trait, half toward and half away
ROUND2_PROMPTED = 6  # per trait and pole: answers to a system prompt asking for HIGH or LOW
ROUND2_UNSTEERED = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--round", type=int, choices=(1, 2), default=1)
    parser.add_argument("--focus", help="one trait's answers as the protocol's search makes them (round 5)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    model = tt.load_model()
    if args.focus:
        rows, prefix = focus_round(model, rng, args.focus), f"focus{args.seed}"
    else:
        rows = round_one(model, rng) if args.round == 1 else round_two(model, rng)
        prefix = "gen" if args.round == 1 else "gen2"
    for i, row in enumerate(rows):
        row["id"] = f"{prefix}-{i:04d}"
    write_jsonl(args.out, rows)
    print(json.dumps({"rows": len(rows), "out": str(args.out)}))


FOCUS_METHODS = ("mean_diff", "probe", "pca_diff")
FOCUS_LAYERS = (9, 14)  # the steering benchmark's layers
FOCUS_STRENGTHS = (0.02, 0.03, 0.05, 0.07, 0.1, 0.14, 0.2)  # the range its dev searches choose from
FOCUS_SETTINGS = 14  # per direction; 2 questions each
FOCUS_UNSTEERED = 8
FOCUS_NEW_TOKENS = 64


def focus_round(model, rng: random.Random, trait: str) -> list[dict]:
    dataset = tt.load_trait(trait)
    vectors = tt.extract(model, dataset, FOCUS_METHODS, layers=list(FOCUS_LAYERS), progress=False)
    rows: list[dict] = []
    for direction in (1, -1):
        questions = list(dataset.steering_questions(direction).dev)
        for _ in range(FOCUS_SETTINGS // 2):  # two settings share one batch of two questions
            qs = rng.sample(questions, 2)
            settings, picked = [], []
            for _ in range(2):
                method, layer = rng.choice(FOCUS_METHODS), rng.choice(FOCUS_LAYERS)
                strength = rng.choice(FOCUS_STRENGTHS)
                vec = vectors[method]
                settings.append(Setting(layer, coef=direction * strength * vec.norm(layer), vector=vec))
                picked.append({"method": method, "layer": layer, "strength": strength, "direction": direction})
            texts = sweep_generate(model, None, settings, qs, max_new_tokens=FOCUS_NEW_TOKENS)
            for info, answers in zip(picked, texts):
                rows += [
                    {"trait": trait, "question": q, "response": a, "source": "steered", **info}
                    for q, a in zip(qs, answers)
                ]
    qs = rng.sample(list(dataset.steering_questions(1).dev), FOCUS_UNSTEERED)
    for q, a in zip(qs, tt.generate(model, qs, max_new_tokens=FOCUS_NEW_TOKENS)):
        rows.append({"trait": trait, "question": q, "response": a, "source": "unsteered"})
    rng.shuffle(rows)
    return rows


def round_two(model, rng: random.Random) -> list[dict]:
    rows: list[dict] = []
    for trait in TRAITS:
        dataset = tt.load_trait(trait)
        vectors = tt.extract(model, dataset, ("mean_diff", "probe"), layers=list(ROUND2_LAYERS), progress=False)
        for direction in (1, -1):
            questions = list(dataset.steering_questions(direction).dev)
            settings, picked = [], []
            for _ in range(ROUND2_SETTINGS // 2):
                method, layer, strength = (
                    rng.choice(("mean_diff", "probe")),
                    rng.choice(ROUND2_LAYERS),
                    rng.choice(ROUND2_STRENGTHS),
                )
                vec = vectors[method]
                settings.append(Setting(layer, coef=direction * strength * vec.norm(layer), vector=vec))
                picked.append({"method": method, "layer": layer, "strength": strength, "direction": direction})
            qs = rng.sample(questions, 2)
            for info, answers in zip(picked, sweep_generate(model, None, settings, qs, max_new_tokens=MAX_NEW_TOKENS)):
                rows += [
                    {"trait": trait, "question": q, "response": a, "source": "steered", **info}
                    for q, a in zip(qs, answers)
                ]
            level = "HIGH" if direction > 0 else "LOW"
            system = f"Answer in this way: {dataset.description(level)} Still answer the user's question."
            qs = rng.sample(questions, ROUND2_PROMPTED)
            for q, a in zip(qs, tt.generate(model, qs, system=system, max_new_tokens=MAX_NEW_TOKENS)):
                rows.append(
                    {"trait": trait, "question": q, "response": a, "source": "prompted", "direction": direction}
                )
        qs = rng.sample(list(dataset.steering_questions(1).dev), ROUND2_UNSTEERED)
        for q, a in zip(qs, tt.generate(model, qs, max_new_tokens=MAX_NEW_TOKENS)):
            rows.append({"trait": trait, "question": q, "response": a, "source": "unsteered"})
        print(f"{trait}: {len(rows)} rows so far", flush=True)
    return rows


def round_one(model, rng: random.Random) -> list[dict]:
    rows: list[dict] = []
    for trait in TRAITS:
        dataset = tt.load_trait(trait)
        vectors = tt.extract(model, dataset, METHODS, layers=list(LAYERS), progress=False)
        questions = list(dataset.questions)
        settings, picked = [], []
        for _ in range(SETTINGS_PER_TRAIT):
            method, layer, strength = rng.choice(METHODS), rng.choice(LAYERS), rng.choice(STRENGTHS)
            direction = 1 if rng.random() < 0.75 else -1
            vec = vectors[method]
            settings.append(Setting(layer, coef=direction * strength * vec.norm(layer), vector=vec))
            picked.append({"method": method, "layer": layer, "strength": strength, "direction": direction})
        # every setting answers the same few questions in one batch; rotate questions between batches
        for start in range(0, len(settings), 6):
            qs = rng.sample(questions, QUESTIONS_PER_SETTING)
            texts = sweep_generate(model, None, settings[start : start + 6], qs, max_new_tokens=MAX_NEW_TOKENS)
            for info, answers in zip(picked[start : start + 6], texts):
                rows += [
                    {"trait": trait, "question": q, "response": a, "source": "steered", **info}
                    for q, a in zip(qs, answers)
                ]
        plain_qs = rng.sample(questions, min(UNSTEERED_PER_TRAIT, len(questions)))
        for q, a in zip(plain_qs, tt.generate(model, plain_qs, max_new_tokens=MAX_NEW_TOKENS)):
            rows.append({"trait": trait, "question": q, "response": a, "source": "unsteered"})
        print(f"{trait}: {len(rows)} rows so far", flush=True)
    return rows


if __name__ == "__main__":
    main()
