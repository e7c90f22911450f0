"""Copy the newest results for a model into docs/benchmarks.md, under a fixed introduction.

Each section comes from the newest results file that measured it (a run of a few benchmark files
does not drop the sections other runs measured), with its date and command.
Usage: python benchmarks/publish.py [--model SmolLM2-135M-Instruct] [--summary FILE]
`--summary` is a markdown file with the findings to put above the tables (written by a person).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from tl_traits.core.files import atomic_write_text  # noqa: E402

sys.path.insert(0, str(HERE))
from results_table import markdown_table  # noqa: E402

INTRO = """# Benchmarks: the reference comparison on the embedded model

`pytest benchmarks/` (`make bench`) measures every bundled trait x every registered extractor
(detection and steering, with prompting as a steering baseline), speed and memory ratios,
the quantization study, a poison-rate sweep, SAE features against raw directions and the
executors' scaling. This page holds the newest measurement of each section for {model}, copied
from `benchmarks/results/` ({name}) by `python benchmarks/publish.py`.
How to run it and what each file measures: `benchmarks/README.md`; the plots named below are in
`benchmarks/results/`.
"""


# The headline tables first, in this order; the rest alphabetically.
HEADLINES = (
    "Steering: the best vector method per trait (chosen on dev)",
    "Steering by method (summary)",
    "Steering by method (test half)",
    "Detection out of distribution (summary)",
    "Detection out of distribution (headline)",
    "Judge calibration (held-out ratings)",
)
# Sections an older protocol measured and a newer section replaces under another name: never published again.
RETIRED = {
    "Steering by method": "Steering by method (test half)",  # settings chosen on the questions they were scored on
    "Method comparison (summary)": "Steering by method (summary)",
}


def _order(name: str) -> tuple[int, str]:
    return (HEADLINES.index(name), "") if name in HEADLINES else (len(HEADLINES), name)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="SmolLM2-135M-Instruct")
    parser.add_argument("--summary", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    found = sorted((HERE / "results").glob(f"*-{args.model}.json"))
    if not found:
        raise SystemExit(f"no results for {args.model} in {HERE / 'results'}; run pytest benchmarks/ first")
    sections: dict[str, tuple[dict, list, str | None]] = {}
    for path in found:  # oldest first: a newer file's section replaces an older one
        data = json.loads(path.read_text())
        for name, rows in data["sections"].items():
            if name not in RETIRED:
                sections[name] = (data, rows, data.get("notes", {}).get(name))
    lines = []
    for name in sorted(sections, key=_order):
        data, rows, note = sections[name]
        lines += [
            f"## {name}",
            "",
            f"Measured {data['date']} ({data['machine']}): `{data.get('commands', {}).get(name, data['command'])}`",
            "",
        ]
        if note:
            lines += [note, ""]
        lines += [*markdown_table(rows), ""]
    summary = args.summary.read_text().strip() + "\n\n" if args.summary else ""
    names = ", ".join(p.name for p in found)
    text = INTRO.format(model=args.model, name=names) + "\n" + summary + "\n".join(lines)
    return atomic_write_text(args.out, text)


if __name__ == "__main__":
    print(main())
