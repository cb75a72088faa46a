"""Control characters shown as visible escapes: never raw, nothing else touched."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from apr_qa.report.visible import CONTROL, visible


@given(st.text())
def test_no_control_character_survives_and_plain_text_is_untouched(text: str) -> None:
    shown = visible(text)
    assert CONTROL.search(shown) is None
    if CONTROL.search(text) is None:
        assert shown == text


def test_each_kind_has_its_escape() -> None:
    assert visible("a\x00b\x07c\x1bd\x7fe\x85f\ud800g\th\ni") == (
        "a\\x00b\\x07c\\x1bd\\x7fe\\x85f\\ud800g\th\ni"
    )
