"""Table: rows that print aligned, index like a list of dicts, and convert to dicts and a DataFrame."""

from __future__ import annotations

from tl_traits.core.tables import Table


def test_a_table_prints_aligned_with_rounded_numbers_and_intervals():
    table = Table(
        [
            {"layer": 12, "score": 74.6123456, "gain": 3.2, "interval": (1.04, 5.5), "note": None},
            {"layer": 9, "score": 70.0, "gain": -1.25, "interval": (-4.0, 1.0), "note": "ok"},
        ],
        title="dev search",
        formats={"score": ".1f", "gain": "+.1f", "interval": ".1f"},
    )
    lines = str(table).splitlines()
    assert lines[0] == "dev search"
    assert len(set(map(len, lines[1:3]))) == 1  # header and rule line up
    assert "74.6" in lines[3] and "74.6123" not in lines[3] and "+3.2" in lines[3] and "1.0..5.5" in lines[3]
    assert lines[3].split()[-1] == "-"  # None prints as a dash
    assert table[0]["layer"] == 12 and len(table) == 2 and [r["layer"] for r in table] == [12, 9]
    assert table.to_dicts()[1]["interval"] == (-4.0, 1.0)
    assert table == table.to_dicts()
    frame = table.to_pandas()
    assert list(frame.columns) == ["layer", "score", "gain", "interval", "note"] and frame["score"].iloc[1] == 70.0
    assert table.markdown().splitlines()[1] == "|---|---|---|---|---|"
