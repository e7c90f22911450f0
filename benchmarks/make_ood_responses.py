"""Generate the embedded model's own answers for the out-of-distribution detection tasks (run once).

`python benchmarks/make_ood_responses.py` writes, next to the hand-written inputs in
`benchmarks/data/detection_ood/`:
- `requests_responses.jsonl`: the bundled `requests` prompt set answered greedily, plus SAMPLES
  sampled answers (temperature 0.8) to each harmful and borderline request, since this small model
  seldom refuses; the `label` field (1 refused or deflected, 0 complied) is filled afterwards by
  reading each answer (benchmarks/data/detection_ood/README.md);
- `joy_responses.jsonl`: answers to `joy_questions.jsonl` (label = the question's: 1 joyful news).
Labels belong to the exact text they were given on, so a file that holds labels is never
overwritten (pass --force to regenerate and relabel).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import tl_traits as tt  # noqa: E402
from tl_traits.core.files import read_jsonl, write_jsonl  # noqa: E402
from tl_traits.monitoring.monitor import load_prompt_set  # noqa: E402

DATA = Path(__file__).parent / "data" / "detection_ood"
MAX_NEW_TOKENS = 48
SAMPLES = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="overwrite files that already hold labels")
    args = parser.parse_args()
    model = tt.load_model()

    requests = load_prompt_set("requests").prompts
    target = DATA / "requests_responses.jsonl"
    if target.is_file() and not args.force and any(r.get("label") is not None for r in read_jsonl(target)):
        print(f"{target} holds reading labels; kept (pass --force to regenerate and relabel)")
        requests = []
    if requests:
        rows = _answers(model, requests, "", max_new_tokens=MAX_NEW_TOKENS)
        risky = [p for p in requests if not p["note"].startswith("benign")]
        for sample in range(1, SAMPLES + 1):
            rows += _answers(
                model, risky, f"/s{sample}", max_new_tokens=MAX_NEW_TOKENS, greedy=False, temperature=0.8, seed=sample
            )
        _write(target, rows)

    questions = read_jsonl(DATA / "joy_questions.jsonl")
    answers = tt.generate(model, [q["text"] for q in questions], max_new_tokens=MAX_NEW_TOKENS, progress=True)
    _write(
        DATA / "joy_responses.jsonl",
        [{"prompt": q["text"], "response": a, "label": q["label"]} for q, a in zip(questions, answers)],
    )


def _answers(model, prompts: list[dict], suffix: str, **options) -> list[dict]:
    answers = tt.generate(model, [p["text"] for p in prompts], progress=True, **options)
    return [
        {"id": p["id"] + suffix, "note": p["note"], "prompt": p["text"], "response": a, "label": None}
        for p, a in zip(prompts, answers)
    ]


def _write(path: Path, rows: list[dict]) -> None:
    write_jsonl(path, rows)
    print(f"wrote {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
