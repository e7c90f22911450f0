"""Join generated and written responses with the reader's ratings into the bundled calibration set, and split it.

The split is made once, stratified by trait and source with a fixed seed (half `fit`, half
`heldout`), and never changed afterwards: judges are fitted on `fit` and reported on `heldout`.
`--append` adds a new round of rated responses to the bundled set: the rows already there keep
their split, the new ones are split among themselves the same way.

    python benchmarks/assemble_calibration_set.py --responses gen.jsonl written.jsonl --ratings r1.jsonl r2.jsonl ...
    python benchmarks/assemble_calibration_set.py --append --responses gen2.jsonl --ratings r2-*.jsonl --second-rater s2.jsonl
"""  # noqa: E501  (command lines to copy as they are)

from __future__ import annotations

import argparse
import random
from collections import defaultdict
from pathlib import Path

from tl_traits.core.files import read_jsonl, write_jsonl

OUT = Path(__file__).resolve().parents[1] / "tl_traits" / "judging" / "calibration_data" / "responses.jsonl"
SCALES = ("coherence", "relevance", "trait")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", nargs="+", type=Path, required=True)
    parser.add_argument("--ratings", nargs="+", type=Path, required=True)
    parser.add_argument("--second-rater", type=Path, help="ratings of an overlap subset by another reader (kept apart)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--append", action="store_true", help="keep the rows already in --out (and their split); add these"
    )
    args = parser.parse_args()
    kept = [row for row in read_jsonl(args.out)] if args.append and args.out.is_file() else []
    rows = [row for path in args.responses for row in read_jsonl(path)]
    clash = {r["id"] for r in rows} & {r["id"] for r in kept}
    if clash:
        raise SystemExit(f"{len(clash)} new responses reuse ids already in {args.out}, e.g. {sorted(clash)[:3]}")
    ratings = {r["id"]: r for path in args.ratings for r in read_jsonl(path)}
    missing = [r["id"] for r in rows if r["id"] not in ratings]
    if missing:
        raise SystemExit(f"{len(missing)} responses have no rating, e.g. {missing[:5]}")
    second = {r["id"]: r for r in read_jsonl(args.second_rater)} if args.second_rater else {}
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        rated = ratings[row["id"]]
        row["ratings"] = {s: int(rated[s]) for s in SCALES}
        row["rating_note"] = rated.get("note", "")
        if row["id"] in second:
            row["second_ratings"] = {s: int(second[row["id"]][s]) for s in SCALES}
        groups[(row["trait"], row["source"])].append(row)
    rng = random.Random(args.seed)
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda r: r["id"])
        rng.shuffle(members)
        for i, row in enumerate(members):
            row["split"] = "fit" if i % 2 == 0 else "heldout"
    everything = kept + sorted(rows, key=lambda r: r["id"])
    write_jsonl(args.out, everything)
    counts = {s: sum(r["split"] == s for r in everything) for s in ("fit", "heldout")}
    print(f"{len(everything)} rated responses ({len(rows)} new) -> {args.out} ({counts})")


if __name__ == "__main__":
    main()
