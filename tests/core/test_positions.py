"""The position grammar: parsing, selection against spans, clear errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tl_traits.core.positions import PositionError, parse_position
from tl_traits.core.prompts import Spans

SPANS = Spans(prompt=(0, 10), response=(10, 16), end=(16, 18))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("prompt[-1]", [9]),
        ("prompt[:]", list(range(10))),
        ("response[:5]", [10, 11, 12, 13, 14]),
        ("response[:]", list(range(10, 16))),
        ("response[-2:]", [14, 15]),
        ("response[0]", [10]),
        ("response[::2]", [10, 12, 14]),
        (" response [ 1 : 3 ] ", [11, 12]),
        ("all", list(range(18))),
    ],
)
def test_selects_the_expected_positions(spec, expected):
    assert list(parse_position(spec).select(SPANS)) == expected


@given(
    prompt_len=st.integers(1, 30),
    response_len=st.integers(0, 30),
    start=st.one_of(st.none(), st.integers(-40, 40)),
    stop=st.one_of(st.none(), st.integers(-40, 40)),
    step=st.one_of(st.none(), st.integers(1, 4)),
)
def test_slices_behave_like_python_slices(prompt_len, response_len, start, stop, step):
    spans = Spans((0, prompt_len), (prompt_len, prompt_len + response_len), (prompt_len + response_len,) * 2)
    fmt = lambda v: "" if v is None else str(v)  # noqa: E731
    spec = f"response[{fmt(start)}:{fmt(stop)}" + (f":{step}]" if step else "]")
    want = list(range(prompt_len, prompt_len + response_len))[slice(start, stop, step)]
    if want:
        assert list(parse_position(spec).select(spans)) == want
    else:
        with pytest.raises(PositionError, match="selects no tokens of example 7"):
            parse_position(spec).select(spans, 7)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("answer[:5]", "cannot parse position 'answer\\[:5\\]'"),
        ("response[a:b]", "cannot parse the index"),
        ("response[::0]", "step of 0"),
        ("response", "cannot parse position"),
    ],
)
def test_bad_specs_are_clear_errors(spec, message):
    with pytest.raises(PositionError, match=message):
        parse_position(spec)


def test_empty_response_and_out_of_range_index_name_the_example():
    no_response = Spans((0, 5), (5, 5), (5, 5))
    with pytest.raises(PositionError, match="example 3: it has no response tokens"):
        parse_position("response[:]").select(no_response, 3)
    with pytest.raises(PositionError, match="out of range for example 4: its prompt has 5 tokens"):
        parse_position("prompt[7]").select(no_response, 4)
