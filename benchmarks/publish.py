"""Copy the newest full results table for a model into docs/benchmarks.md, under a fixed introduction.

Usage: python benchmarks/publish.py [--model SmolLM2-135M-Instruct] [--summary FILE]
`--summary` is a markdown file with the findings to put above the tables (written by a person).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from tl_traits.files import atomic_write_text  # noqa: E402

INTRO = """# Benchmarks: the reference comparison on the embedded model

`pytest benchmarks/` (`make bench`) measures every bundled trait x every registered extractor
(detection and steering, with prompting as a steering baseline), speed and memory ratios,
the quantization study and a poison-rate sweep. This page is the newest full table for
{model}, copied from `benchmarks/results/{name}` by `python benchmarks/publish.py`.
How to run it and what each file measures: `benchmarks/README.md`; the plots named below are in
`benchmarks/results/`.
"""


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="SmolLM2-135M-Instruct")
    parser.add_argument("--summary", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    found = sorted((HERE / "results").glob(f"*-{args.model}.md"))
    if not found:
        raise SystemExit(f"no results for {args.model} in {HERE / 'results'}; run pytest benchmarks/ first")
    latest = found[-1]
    body = latest.read_text().split("\n", 1)[1]  # drop the file's own title
    summary = args.summary.read_text().strip() + "\n\n" if args.summary else ""
    text = INTRO.format(model=args.model, name=latest.name) + "\n" + summary + body.lstrip()
    return atomic_write_text(args.out, text)


if __name__ == "__main__":
    print(main())
