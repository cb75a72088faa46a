"""apr-qa's own server refuses what the API does not accept with a 400, never a crash:
whatever body arrives, parsing it gives fields or :class:`BadRequest`."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apr_qa.serve.app import BadRequest, parse_request

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(body=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
def test_any_body_parses_or_is_a_bad_request(body: bytes) -> None:
    for chat in (True, False):
        try:
            fields = parse_request(body, chat, cap=64)
        except BadRequest:
            continue
        assert 0 <= fields["max_tokens"] <= 64
        assert 0 <= fields["min_tokens"] <= fields["max_tokens"]
        assert (fields["messages"] is not None) == chat


@pytest.mark.parametrize(
    ("body", "chat"),
    [
        (b'{"messages": []}', True),
        (b'{"messages": [{"role": "user"}]}', True),
        (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}', True),
        (b'{"prompt": 3}', False),
        (b'{"prompt": "hi", "min_tokens": -1}', False),
        (b'{"prompt": "hi", "min_tokens": "8"}', False),
        (b"[1, 2]", False),
        (b'{"prompt": "hi"', False),
    ],
)
def test_requests_the_api_refuses_are_bad_requests(body: bytes, chat: bool) -> None:
    with pytest.raises(BadRequest):
        parse_request(body, chat, cap=64)


def test_a_huge_max_tokens_is_bounded_by_the_cap() -> None:
    body = json.dumps({"prompt": "hi", "max_tokens": 1_000_000}).encode()
    assert parse_request(body, False, cap=64)["max_tokens"] == 64


def test_min_tokens_is_taken_and_bounded_by_max_tokens() -> None:
    body = json.dumps({"prompt": "hi", "max_tokens": 8, "min_tokens": 8}).encode()
    assert parse_request(body, False, cap=64)["min_tokens"] == 8
    body = json.dumps({"prompt": "hi", "max_tokens": 4, "min_tokens": 8}).encode()
    assert parse_request(body, False, cap=64)["min_tokens"] == 4
    assert parse_request(b'{"prompt": "hi"}', False, cap=64)["min_tokens"] == 0
