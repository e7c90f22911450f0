"""The JSONL record of one steering evaluation: a header, the unsteered answers, KL ladders and runs, line by line.

A rerun with the same header reads recorded answers back instead of generating them again; a line
cut off by a crash is dropped; a log of another evaluation or of an older format is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tl_traits.core.files import parse_jsonl
from tl_traits.steering.errors import EvaluationError
from tl_traits.steering.results import JudgedSet, Run
from tl_traits.steering.strength_scale import KLPoint

FORMAT = "tl_traits.steering/2"


class SteeringLog:
    """Appends whole lines and fsyncs each; reads a log back (header, baselines, ladders, runs)."""

    def __init__(self, path: str | os.PathLike[str] | None, header: dict[str, Any] | None) -> None:
        self.path = Path(path) if path is not None else None
        self.header = json.loads(json.dumps(header)) if header is not None else None
        self.baseline: dict[str, JudgedSet] = {}
        self.ladders: dict[str, list[KLPoint]] = {}
        self.runs: list[Run] = []
        self._index: dict[tuple[str, str, float, str], Run] = {}
        if self.path is not None and self.path.is_file() and self.path.stat().st_size > 0:
            self._read()
        elif self.path is not None:
            if self.header is None:
                raise EvaluationError(f"no steering log at {self.path}")
            self._append({"type": "header", "format": FORMAT, **self.header})

    def _read(self) -> None:
        assert self.path is not None
        data = self.path.read_bytes()
        whole = data[: data.rfind(b"\n") + 1]  # a line cut off mid-write (even mid-character): drop the fragment
        if self.header is not None and len(whole) != len(data):
            with self.path.open("r+b") as fh:
                fh.truncate(len(whole))
        try:
            text = whole.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EvaluationError(
                f"{self.path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                "it is not a steering log: pass another log path"
            ) from exc
        lines = [row for _, row in parse_jsonl(text, str(self.path), EvaluationError)]
        if not lines or lines[0].get("type") != "header":
            raise EvaluationError(f"{self.path} is not a steering log (no header line); pass another log path")
        recorded = {k: v for k, v in lines[0].items() if k not in ("type", "format")}
        if lines[0].get("format") != FORMAT:
            raise EvaluationError(
                f"{self.path} was written by an earlier tl_traits (before the dev/test steering protocol, format "
                f"{lines[0].get('format', 1)!r}); it can be neither resumed nor read. Pass a new log path and rerun"
            )
        if self.header is None:
            self.header = recorded
        elif self.header != recorded:
            differs = sorted(k for k in set(recorded) | set(self.header) if recorded.get(k) != self.header.get(k))
            if differs == ["judge_versions"]:
                raise EvaluationError(
                    f"{self.path} was judged by another version of its judges "
                    f"({recorded.get('judge_versions') or 'none recorded'} vs now {self.header.get('judge_versions')}: "
                    "a judge was refitted since). Rejudge its answers with "
                    "tl_traits.steering.rejudge.rejudge_log(path, model), which generates nothing, "
                    "or use a new log path"
                )
            raise EvaluationError(
                f"{self.path} records another evaluation (differs in {', '.join(differs)}); use a new log path"
            )
        for line in lines[1:]:
            kind = line.get("type")
            if kind == "baseline":
                self.baseline[line["split"]] = JudgedSet.from_dict(line["answers"])
            elif kind == "ladder":
                self.ladders[line["candidate"]] = [KLPoint(float(s), float(k)) for s, k in line["points"]]
            elif kind == "run":
                self._keep(Run.from_dict(line))

    def _keep(self, run: Run) -> None:
        if run.key() not in self._index:
            self.runs.append(run)
        self._index[run.key()] = run

    def _append(self, obj: dict[str, Any]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:  # one whole line per write: a crash loses at most that line
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def write_baseline(self, split: str, answers: JudgedSet) -> None:
        self.baseline[split] = answers
        self._append({"type": "baseline", "split": split, "answers": answers.to_dict()})

    def write_ladder(self, candidate_key: str, points: list[KLPoint]) -> None:
        self.ladders[candidate_key] = points
        self._append({"type": "ladder", "candidate": candidate_key, "points": [[p.strength, p.kl] for p in points]})

    def write_run(self, run: Run) -> None:
        self._keep(run)
        self._append({"type": "run", **run.to_dict()})

    def find(self, key: tuple[str, str, float, str]) -> Run | None:
        return self._index.get(key)
