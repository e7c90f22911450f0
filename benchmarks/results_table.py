"""Collects benchmark measurements and writes them as JSON and a markdown table, atomically."""

from __future__ import annotations

import datetime as _dt
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tl_traits.core.files import atomic_write_json, atomic_write_text


@dataclass
class Results:
    """Sections of rows (dicts) plus notes; one file pair per run: `<date>-<model>.json/.md`."""

    model: str
    sections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)  # the command that measured each section
    # section -> {trait (or another key's value) -> the command that measured its rows}, for rows carried from an
    # earlier results file; written to the JSON as "sources", so a later carry keeps each trait's own command
    carried: dict[str, dict[str, str]] = field(default_factory=dict)
    measured: dict[str, list[str]] = field(default_factory=dict)  # section -> the key values this run measured
    sources: dict[str, dict[str, str]] = field(default_factory=dict)  # as written: carried and measured

    def add(
        self,
        section: str,
        rows: list[dict[str, Any]] | dict[str, Any],
        note: str | None = None,
    ) -> None:
        """Add rows to a section (a run over some traits first calls `carry_earlier` to keep the others' rows)."""
        self.sections.setdefault(section, []).extend(rows if isinstance(rows, list) else [rows])
        if note:
            self.notes[section] = note

    @property
    def file_model(self) -> str:
        """The model's name as results files spell it: `<date>-<file_model>.json`."""
        return self.model.replace("/", "_")

    def carry_earlier(
        self, out_dir: Path, section: str, rows: list[dict[str, Any]], key: str = "trait"
    ) -> list[dict[str, Any]]:
        """`rows` preceded by the rows of `section` in the newest earlier results file that holds it (any date) whose
        `key` this run did not measure: a rerun of one trait keeps the other traits' rows, and the section's command
        names the command (and file) each carried trait's rows came from. Call it before computing anything over
        all traits."""
        measured = {row.get(key) for row in rows}
        self.measured[section] = [str(value) for value in dict.fromkeys(row.get(key) for row in rows)]
        for path in sorted(Path(out_dir).glob(f"*-{self.file_model}.json"), reverse=True):
            earlier = json.loads(path.read_text())
            if section not in earlier.get("sections", {}):
                continue
            kept = [row for row in earlier["sections"][section] if row.get(key) not in measured]
            known = earlier.get("sources", {}).get(section, {})
            fallback = f"{earlier.get('commands', {}).get(section, earlier.get('command', ''))} [{path.name}]"
            for value in dict.fromkeys(str(row.get(key)) for row in kept):
                self.carried.setdefault(section, {})[value] = known.get(value, fallback)
            return kept + rows
        return rows

    def _command_of(self, name: str, command: str) -> str:
        """The section's command, followed by where each group of carried rows came from."""
        by_source: dict[str, list[str]] = {}
        for value, source in self.carried.get(name, {}).items():
            by_source.setdefault(source, []).append(value)
        carried = "; ".join(f"{', '.join(values)} from: {source}" for source, values in by_source.items())
        return f"{command} (rows carried from earlier runs: {carried})" if carried else command

    def write(self, out_dir: Path, command: str) -> tuple[Path, Path] | None:
        if not self.sections:
            return None
        stamp = _dt.date.today().isoformat()
        base = Path(out_dir) / f"{stamp}-{self.file_model}"
        self.commands = {name: self._command_of(name, command) for name in self.sections}
        self.sources = {
            name: {**carried, **{value: f"{command} [{base.name}.json]" for value in self.measured.get(name, [])}}
            for name, carried in self.carried.items()
        }
        self._merge_earlier(base.with_suffix(".json"))
        machine = (
            f"{platform.machine()}, {_cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}"
        )
        payload = {
            "date": stamp,
            "model": self.model,
            "command": command,
            "machine": machine,
            "sections": self.sections,
            "notes": self.notes,
            "commands": self.commands,
            "sources": self.sources,
        }
        json_path = atomic_write_json(base.with_suffix(".json"), payload)
        md_path = atomic_write_text(base.with_suffix(".md"), self.markdown(command, machine, stamp))
        return json_path, md_path

    def _merge_earlier(self, path: Path) -> None:
        """Keep sections an earlier run of the same day wrote that this run did not measure."""
        if not path.is_file():
            return
        earlier = json.loads(path.read_text())
        merged = {k: v for k, v in earlier.get("sections", {}).items() if k not in self.sections}
        self.notes = {**{k: v for k, v in earlier.get("notes", {}).items() if k in merged}, **self.notes}
        earlier_commands = earlier.get("commands", {})
        self.commands = {**{k: earlier_commands.get(k, earlier.get("command", "")) for k in merged}, **self.commands}
        earlier_sources = earlier.get("sources", {})
        self.sources = {**{k: earlier_sources[k] for k in merged if k in earlier_sources}, **self.sources}
        self.sections = {**merged, **self.sections}

    def markdown(self, command: str, machine: str, stamp: str) -> str:
        lines = [f"# Benchmarks: {self.model} ({stamp})", "", f"Command: `{command}`  ", f"Machine: {machine}", ""]
        for name, rows in self.sections.items():
            lines += [f"## {name}", ""]
            if self.commands.get(name, command) != command:
                lines += [f"Command: `{self.commands[name]}`", ""]
            if name in self.notes:
                lines += [self.notes[name], ""]
            lines += [*markdown_table(rows), ""]
        return "\n".join(lines)


def markdown_table(rows: list[dict[str, Any]]) -> list[str]:
    """Lines of a markdown table: every key any row has, in first-seen order."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(format_cell(row.get(c, "")) for c in columns) + " |" for row in rows]


def format_cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
        return "[" + ", ".join(format_cell(float(v)) for v in value) + "]"  # an interval, not 15 digits
    return str(value)


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
