"""Views: token strings reach the circuitsvis page as data, never as markup or script."""

from __future__ import annotations

import json
import re

import pytest

from tl_traits.monitoring.views import token_view

EVIL = "</script><script>alert(1)</script>"


@pytest.mark.parametrize("values", [{"joy": [0.1, 0.5, -0.2]}, {"joy": [0.1, 0.5, -0.2], "refusal": [0.0, 1.0, 2.0]}])
def test_a_token_that_closes_the_script_stays_a_token(values):
    page = token_view(["Hi", EVIL, "<!--"], values)
    assert EVIL not in page and "<!--" not in page
    assert page.count("<script>") == page.count("</script>") == 1  # our one script, nothing the token opened
    props = json.loads(re.search(r"(\{\"tokens\".*\})\s*\)", page, re.S).group(1))
    assert props["tokens"] == ["Hi", EVIL, "<!--"]  # the escape reads back as the same text
