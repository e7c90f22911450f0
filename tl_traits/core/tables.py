"""Table: rows of results that print as an aligned text table and convert to dicts or a pandas DataFrame."""

from __future__ import annotations

import math
from typing import Any, Iterator, Mapping, Sequence


class Table(Sequence[dict[str, Any]]):
    """A list of row dicts (index it, iterate it) that prints aligned, numbers rounded for reading.

    `formats` maps a column to a format spec ("+.1f", ".2f"); other floats print with 3 significant
    decimals. `to_dicts()` gives the raw values, `to_pandas()` a DataFrame (needs pandas).
    """

    def __init__(
        self,
        rows: Sequence[Mapping[str, Any]],
        *,
        columns: Sequence[str] | None = None,
        title: str = "",
        formats: Mapping[str, str] | None = None,
        note: str = "",
    ) -> None:
        self.rows = [dict(r) for r in rows]
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(row))
        self.columns = list(columns) if columns is not None else list(seen)
        self.title, self.note = title, note
        self.formats = dict(formats or {})

    def __getitem__(self, index: Any) -> Any:
        return self.rows[index]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __eq__(self, other: object) -> bool:
        return self.rows == (other.rows if isinstance(other, Table) else other)

    def to_dicts(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.rows]

    def to_pandas(self) -> Any:
        from tl_traits.core.extras import require

        pandas = require("pandas")
        return pandas.DataFrame(self.rows, columns=self.columns)

    def cell(self, column: str, value: Any) -> str:
        """One value as the table prints it."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, float):
            return format(value, self.formats.get(column, ".3g" if abs(value) < 1e-3 and value else ".3f"))
        if isinstance(value, (tuple, list)):  # an interval (low, high) prints as low..high
            joiner = ".." if len(value) == 2 and all(isinstance(v, (int, float)) for v in value) else ", "
            return joiner.join(self.cell(column, v) for v in value)
        return str(value)

    def __str__(self) -> str:
        cells = [[self.cell(c, row.get(c)) for c in self.columns] for row in self.rows]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(self.columns)]
        numeric = [all(_looks_numeric(r[i]) for r in cells) and bool(cells) for i in range(len(self.columns))]

        def line(values: Sequence[str]) -> str:
            return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

        out = [self.title] if self.title else []
        out += [line(self.columns), line(["-" * w for w in widths])] + [line(r) for r in cells]
        if self.note:
            out.append(self.note)
        return "\n".join(out)

    def __repr__(self) -> str:
        return str(self)

    def markdown(self) -> str:
        """The table as markdown (for docs and reports)."""
        head = "| " + " | ".join(self.columns) + " |"
        rule = "|" + "---|" * len(self.columns)
        body = ["| " + " | ".join(self.cell(c, row.get(c)) for c in self.columns) + " |" for row in self.rows]
        return "\n".join([head, rule, *body])


def _looks_numeric(text: str) -> bool:
    stripped = text.replace(",", "").replace(" ", "")
    if stripped in ("-", ""):
        return True
    try:
        [float(part) for part in stripped.split("..")]
        return True
    except ValueError:
        return False
